"""The gateway logs in upstream with md5 and SCRAM itself, and the credential never leaks."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import pytest


def _conn(name: str, cluster, user: str, password_env: str, extra: str = "") -> str:  # type: ignore[no-untyped-def]
    return f'''
[[connections]]
name = "{name}"
type = "postgres"
host = "127.0.0.1"
port = {cluster.port}
database = "test"
username = "{user}"
password = "${{{password_env}}}"
groups = ["dev"]
connect_timeout = 5
{extra}
'''


@pytest.fixture
def canary_role(pg_cluster):  # type: ignore[no-untyped-def]
    """scram_user with a canary password for the duration of one test (pg_hba admits it by name)."""
    password = f"CANARY-{secrets.token_hex(12)}"
    role = "scram_user"
    pg_cluster.psql(f"SET password_encryption = 'scram-sha-256'; ALTER ROLE {role} PASSWORD '{password}'")
    yield role, password
    pg_cluster.psql(f"ALTER ROLE {role} PASSWORD '{pg_cluster.passwords[role]}'")


def test_md5_and_scram_upstream_logins(make_gateway, pg_cluster) -> None:  # type: ignore[no-untyped-def]
    # md5 goes only to a verified server (the cluster's certificate names localhost); SCRAM
    # may go over TLS that is not verified, bound to the channel.
    verified = f'sslrootcert = "{pg_cluster.cafile}"'
    conns = _conn("md5db", pg_cluster, "md5_user", "PW_MD5", verified).replace('"127.0.0.1"', '"localhost"') + _conn(
        "scramdb", pg_cluster, "scram_user", "PW_SCRAM", 'sslmode = "require"'
    )
    gw = make_gateway(connections=conns, start=False)
    gw.env.update(PW_MD5=pg_cluster.passwords["md5_user"], PW_SCRAM=pg_cluster.passwords["scram_user"])
    gw.start()
    token = gw.token("alice")
    md5 = gw.psql("alice", token, "SELECT current_user", connection="md5db")
    assert "md5_user" in md5.stdout, md5.stderr
    scram = gw.psql(
        "alice", token, "SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", connection="scramdb"
    )
    assert " scram_user   | t" in scram.stdout, scram.stderr
    starts = gw.audit("--action", "session.start", until=lambda events: len(events) >= 2)
    assert {e["detail"]["upstream_auth"] for e in starts} == {"md5", "scram-sha-256-plus"}


def test_canary_credential_never_leaks(make_gateway, pg_cluster, canary_role, tmp_path) -> None:  # type: ignore[no-untyped-def]
    role, password = canary_role
    wrong = f"CANARY-wrong-{secrets.token_hex(8)}"
    conns = (
        _conn("good", pg_cluster, role, "PW_GOOD", 'sslmode = "require"')
        + _conn("plain", pg_cluster, role, "PW_GOOD", 'sslmode = "disable"')
        + _conn("bad", pg_cluster, role, "PW_BAD", 'sslmode = "require"')
    )
    gw = make_gateway(connections=conns, start=False)
    gw.env.update(PW_GOOD=password, PW_BAD=wrong)
    gw.start()
    token = gw.token("alice")
    results = [
        gw.psql("alice", token, "SELECT current_user"),  # default connection "pg" is not this one: unknown
        gw.psql("alice", token, "SELECT current_user", connection="good"),
        gw.psql("alice", token, "SELECT current_setting('password_encryption')", connection="plain"),
        gw.psql("alice", token, "SELECT * FROM pg_authid", connection="good"),
        gw.psql("alice", token, "SELECT 1/0", connection="good"),
        gw.psql("alice", token, f"SELECT '{role}' AS who, 'no secret here'", connection="good"),
        gw.psql("alice", token, "SELECT 1", connection="bad"),  # upstream refuses the credential
        gw.psql("alice", token, "SELECT 1", connection="bad", sslmode="require"),
    ]
    assert role in results[1].stdout
    assert "connection 'bad'" in results[6].stderr and "28P01" not in results[6].stdout
    time.sleep(0.5)
    for args in (["sessions", "--json"], ["audit", "--json"], ["token", "list"], ["audit", "verify"], ["check"]):
        gw.cli(*args)
    for session in json.loads(gw.cli("sessions", "--json").stdout):
        gw.cli("replay", str(session["id"]), check=False)
    gw.stop()

    haystacks: list[tuple[str, bytes]] = []
    for r in results:
        haystacks += [("psql stdout", r.stdout.encode()), ("psql stderr", r.stderr.encode())]
    haystacks += [("cli output", out.encode()) for out in gw.outputs]
    for path in Path(gw.root).rglob("*"):
        if path.is_file() and path.name != "hoop.toml":
            haystacks.append((str(path), path.read_bytes()))
    assert any("hoop.db" in name for name, _ in haystacks)
    assert any(name.endswith(".jsonl") for name, _ in haystacks)
    for secret in (password, wrong):
        for name, data in haystacks:
            assert secret.encode() not in data, f"credential found in {name}"
