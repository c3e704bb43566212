"""OIDC end to end: `hoop login` (device and browser flows) against a provider on loopback,
then the real psql through a real `hoop serve` with the ID token as the password."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from oidc_provider import OIDCProvider
from support.gateway import HOOP, GatewayProcess, write_config
from support.servers import require

pytestmark = pytest.mark.needs_postgres
SECRET = "CANARY-oidc-client-secret-9d2b"


@pytest.fixture
def provider():  # type: ignore[no-untyped-def]
    with OIDCProvider(
        client_secret=SECRET, users={"olivia": ["dev"], "mallory": ["contractors"]}, auto_user="olivia"
    ) as p:
        yield p


@pytest.fixture
def gw(provider: OIDCProvider, tmp_path: Path):  # type: ignore[no-untyped-def]
    require("127.0.0.1", 5432, "PostgreSQL")
    body = f'''
[auth.oidc]
issuer = "{provider.issuer}"
client_id = "hoop"
client_secret = "${{HOOP_TEST_OIDC_SECRET}}"
jwks_min_refresh = 0

[[connections]]
name = "pg"
type = "postgres"
host = "127.0.0.1"
port = 5432
database = "test"
username = "postgres"
sslmode = "disable"
groups = ["dev"]
'''
    root = tmp_path / "gw"
    root.mkdir()
    gateway = write_config(root, body)
    gateway.env["HOOP_TEST_OIDC_SECRET"] = SECRET
    gateway.env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "SSH_CONNECTION", "PGSSLMODE", "PGPASSWORD"):
        gateway.env.pop(var, None)
    gateway.start()
    yield gateway
    gateway.stop()


def psql(gw: GatewayProcess, user: str, token: str, sql: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [
            "psql",
            f"host=127.0.0.1 port={gw.ports['postgres']} user={user} dbname=pg sslmode=require",
            "-X",
            "-A",
            "-t",
            "-c",
            sql,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PGPASSWORD": token, "PGCONNECT_TIMEOUT": "10"},
    )
    gw.outputs += [result.stdout, result.stderr]
    return result


def device_login(gw: GatewayProcess, provider: OIDCProvider) -> str:
    """`hoop login --device`, approving the code it prints the way a person would."""
    proc = subprocess.Popen(
        HOOP + ["login", "--device", "-c", str(gw.config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=gw.env,
        cwd=gw.root,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert "enter the code" in line, line
    code = line.rsplit(" ", 1)[-1].strip()
    with urllib.request.urlopen(f"{provider.issuer}/device?user_code={code}", timeout=5) as resp:
        assert resp.status == 200
    out, err = proc.communicate(timeout=30)
    gw.outputs += [line, out, err]
    assert proc.returncode == 0, err
    return out


def test_device_login_then_psql_via_hoop_env_and_hoop_psql(gw: GatewayProcess, provider: OIDCProvider) -> None:
    out = device_login(gw, provider)
    assert "logged in as olivia (groups: dev)" in out
    cred = Path(gw.env["XDG_CONFIG_HOME"]) / "hoop" / "credentials.json"
    assert stat.S_IMODE(cred.stat().st_mode) == 0o600

    exports = gw.cli("env", "pg").stdout
    assert "export PGUSER=olivia" in exports and "export PGDATABASE=pg" in exports
    assert f"export PGPORT={gw.ports['postgres']}" in exports
    env = dict(line[len("export ") :].split("=", 1) for line in exports.splitlines() if line.startswith("export "))
    assert psql(gw, "olivia", env["PGPASSWORD"], "select 40 + 2").stdout.strip() == "42"

    # psql's own -c follows CONNECTION, so hoop's -c CONFIG goes before the subcommand.
    argv = ["-c", str(gw.config), "psql", "pg", "-X", "-A", "-t", "-c", "select 'via hoop psql'"]
    result = subprocess.run(HOOP + argv, capture_output=True, text=True, env=gw.env, cwd=gw.root, timeout=30)
    assert (result.returncode, result.stdout.strip()) == (0, "via hoop psql"), result.stderr


def test_browser_login_with_a_scripted_browser(gw: GatewayProcess, provider: OIDCProvider, tmp_path: Path) -> None:
    browser = tmp_path / "browser.py"
    browser.write_text("import sys, urllib.request\nurllib.request.urlopen(sys.argv[1], timeout=10).read()\n")
    result = gw.cli("login", "--browser", "--timeout", "20", env={"BROWSER": f"{sys.executable} {browser} %s"})
    assert "logged in as olivia" in result.stdout
    assert "code_challenge_method=S256" in result.stderr  # the URL shown to the user


def test_gateway_accepts_id_tokens_and_refuses_bad_ones(gw: GatewayProcess, provider: OIDCProvider) -> None:
    assert psql(gw, "olivia", provider.mint("olivia"), "select current_user").stdout.strip() == "postgres"

    expired = provider.mint("olivia", exp=int(time.time()) - 600, iat=int(time.time()) - 900)
    assert "token expired at" in psql(gw, "olivia", expired, "select 1").stderr
    assert "wrong audience" in psql(gw, "olivia", provider.mint("olivia", aud="x"), "select 1").stderr

    # Key rotation at the provider while the gateway runs: new tokens work without a restart.
    old = provider.mint("olivia")
    provider.rotate()
    assert psql(gw, "olivia", provider.mint("olivia"), "select 'rotated'").stdout.strip() == "rotated"
    assert "unknown key id" in psql(gw, "olivia", old, "select 1").stderr

    # Groups come from each new token: a user who left `dev` loses `pg` at the next login.
    provider.users["olivia"] = ["contractors"]
    assert "no such connection" in psql(gw, "olivia", provider.mint("olivia"), "select 1").stderr
    logins = gw.audit("--action", "oidc.login", until=lambda events: '"contractors"' in json.dumps(events))
    assert '"contractors"' in json.dumps(logins)

    failures = json.dumps(gw.audit("--action", "oidc.login_failure", until=lambda e: "wrong audience" in json.dumps(e)))
    assert "token expired" in failures and "wrong audience" in failures


def test_canary_id_token_and_client_secret_never_leak(gw: GatewayProcess, provider: OIDCProvider) -> None:
    token = provider.mint("olivia")
    assert psql(gw, "olivia", token, "select 1").returncode == 0
    bad = provider.mint("olivia", aud="x")
    psql(gw, "olivia", bad, "select 1")
    gw.stop()  # flush the journal
    blobs = b"".join(p.read_bytes() for p in gw.root.rglob("*") if p.is_file() and p.name != "hoop.toml")
    assert b"oidc.login" in blobs  # the search covers the store
    for secret in (token, bad, token.split(".")[2], SECRET):
        assert secret.encode() not in blobs, "credential found in the gateway's files or log"
        assert all(secret not in out for out in gw.outputs)


def test_groups_from_the_claim_decide_approver_rights(gw: GatewayProcess, provider: OIDCProvider) -> None:
    """A review rule for approvers in `dba`: an OIDC user in `dba` (per the token) approves,
    one without it is refused, and the requester cannot approve their own statement."""
    gw.stop()
    gw.config.write_text(
        gw.config.read_text()
        + """
[[rules]]
name = "hold-oidc-updates"
action = "review"
statements = ["update", "create", "drop"]
tables = ["oidc_hold"]
approvers = ["dba"]
timeout = "30s"
"""
    )
    gw.start()
    provider.users["dora"] = ["dev", "dba"]
    subprocess.run(
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "test",
            "-X",
            "-q",
            "-c",
            "DROP TABLE IF EXISTS oidc_hold; CREATE TABLE oidc_hold (id int, v int); "
            "INSERT INTO oidc_hold VALUES (1, 0)",
        ],
        check=True,
        capture_output=True,
    )
    held = subprocess.Popen(
        [
            "psql",
            f"host=127.0.0.1 port={gw.ports['postgres']} user=olivia dbname=pg sslmode=require",
            "-X",
            "-c",
            "UPDATE oidc_hold SET v = 1 WHERE id = 1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PGPASSWORD": provider.mint("olivia")},
    )
    try:
        deadline = time.time() + 15
        pending: list[dict[str, object]] = []
        while not pending and time.time() < deadline:
            pending = json.loads(gw.cli("approvals", "--json").stdout)
            time.sleep(0.1)
        assert pending, "the update was not held"
        request_id = str(pending[0]["id"])
        own = gw.cli("approve", request_id, "--token", provider.mint("olivia"), check=False)
        assert own.returncode == 1 and "your own request" in own.stderr
        provider.users["mallory"] = ["contractors"]
        outsider = gw.cli("approve", request_id, "--token", provider.mint("mallory"), check=False)
        assert outsider.returncode == 1 and "only members of dba" in outsider.stderr
        gw.cli("approve", request_id, "--token", provider.mint("dora"))
        out, err = held.communicate(timeout=15)
        assert "UPDATE 1" in out, err
    finally:
        if held.poll() is None:
            held.kill()
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "test", "-X", "-q", "-c", "DROP TABLE IF EXISTS oidc_hold"],
            capture_output=True,
        )


def test_oidc_groups_map_to_roles_and_hoop_login_is_the_token(
    gw: GatewayProcess, provider: OIDCProvider, tmp_path: Path
) -> None:
    """[roles] names provider groups like local ones; `hoop whoami` without --token uses the
    credential `hoop login` stored."""
    gw.stop()
    gw.config.write_text(gw.config.read_text() + '\n[roles]\nadmin = ["platform"]\nauditor = ["audit"]\n')
    gw.start()
    provider.users["olivia"] = ["dev", "platform"]
    assert "token" in gw.cli("whoami", check=False).stderr  # not logged in yet
    browser = tmp_path / "browser.py"
    browser.write_text("import sys, urllib.request\nurllib.request.urlopen(sys.argv[1], timeout=10).read()\n")
    gw.cli("login", "--browser", "--timeout", "20", env={"BROWSER": f"{sys.executable} {browser} %s"})
    me = json.loads(gw.cli("whoami", "--json").stdout)
    assert (me["user"], me["roles"]) == ("olivia", ["admin"])
    provider.users["ivy"] = ["audit"]
    ivy = json.loads(gw.cli("whoami", "--json", "--token", provider.mint("ivy")).stdout)
    assert (ivy["user"], ivy["roles"]) == ("ivy", ["auditor"])
    mallory = gw.cli(
        "rules",
        "disable",
        "guard",
        "builtin-server-files",
        "--reason",
        "x",
        "--token",
        provider.mint("mallory"),
        check=False,
    )
    assert mallory.returncode == 1 and "only admins may change rules" in mallory.stderr
