"""Through the running gateway, with the connection left at its default `sslmode`: an impostor
answering at the database address never receives the stored password, the client gets an
error naming the reason, and the password appears nowhere the gateway writes (log, audit,
store, recordings, CLI output)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pymysql
import pytest
from support.gateway import ALICE, GatewayProcess, write_config
from support.impostors import MysqlImpostor, PgImpostor, server_tls, serving
from support.servers import free_port

from hoop.core.tlscert import write_self_signed

CANARY = f"CANARY-{secrets.token_hex(10)}"


def _connection(kind: str, port: int, extra: str = "") -> str:
    return f"""
[[connections]]
name = "db"
type = "{kind}"
host = "127.0.0.1"
port = {port}
database = "d"
username = "gw"
password = "${{IMPOSTOR_TEST_PASSWORD}}"
groups = ["dev"]
connect_timeout = 5
{extra}
"""


def _gateway(root: Path, body: str, door: str) -> GatewayProcess:
    root.mkdir()
    gw = write_config(root, ALICE + body, listen={door: free_port()})
    gw.env["IMPOSTOR_TEST_PASSWORD"] = CANARY
    gw.start()
    gw.issue_tokens("alice")
    return gw


def _assert_nowhere(gw: GatewayProcess, *client_output: str) -> None:
    gw.cli("audit", "--json")
    for session in json.loads(gw.cli("sessions", "--json").stdout):
        gw.cli("replay", str(session["id"]), check=False)
    gw.stop()
    haystacks = [("client", text.encode()) for text in client_output]
    haystacks += [("cli output", out.encode()) for out in gw.outputs]
    haystacks += [(str(p), p.read_bytes()) for p in Path(gw.root).rglob("*") if p.is_file()]
    assert any(name.endswith("gateway.log") for name, _ in haystacks)
    for name, data in haystacks:
        assert CANARY.encode() not in data, f"the password is in {name}"


@pytest.mark.parametrize("sslmode", [None, "require"])
@pytest.mark.parametrize("method", ["password", "md5"])
def test_postgres_impostor_gets_no_password(tmp_path: Path, method: str, sslmode: str | None) -> None:
    cert, key = write_self_signed(tmp_path / "imp.crt", tmp_path / "imp.key", names=("127.0.0.1",), days=1)
    with serving(PgImpostor(method=method, tls=server_tls(cert, key))) as impostor:
        extra = f'sslmode = "{sslmode}"' if sslmode else ""
        gw = _gateway(tmp_path / "gw", _connection("postgres", impostor.port, extra), "postgres")
        try:
            result = gw.psql("alice", gw.tokens["alice"], "SELECT 1", connection="db")
            events = gw.audit("--action", "upstream.failure", until=bool)
        finally:
            gw.stop()
    assert not impostor.leaked(CANARY, "gw") and impostor.passwords == []
    assert result.returncode != 0 and "connection 'db'" in result.stderr, result.stderr
    if sslmode is None:
        assert "certificate verify failed" in result.stderr, result.stderr
    else:
        assert "identity is not verified (sslmode=require)" in result.stderr, result.stderr
    assert events and "verif" in events[0]["detail"]["reason"]
    _assert_nowhere(gw, result.stdout, result.stderr)


def _mysql_login(gw: GatewayProcess) -> None:
    """alice logs in to connection `db` through the gateway's MySQL door (no TLS to the gateway)."""
    pymysql.connect(
        host="127.0.0.1",
        port=gw.ports["mysql"],
        user="alice",
        password=gw.tokens["alice"],
        database="db",
        ssl_disabled=True,
        connect_timeout=10,
    )


@pytest.mark.parametrize("switch_to_clear", [False, True])
def test_mysql_impostor_gets_no_password(tmp_path: Path, switch_to_clear: bool) -> None:
    with serving(MysqlImpostor(switch_to_clear=switch_to_clear, password=CANARY.encode())) as impostor:
        gw = _gateway(tmp_path / "gw", _connection("mysql", impostor.port), "mysql")
        try:
            with pytest.raises(pymysql.err.MySQLError) as info:
                _mysql_login(gw)
            gw.audit("--action", "upstream.failure", until=bool)
        finally:
            gw.stop()
    assert not impostor.leaked(CANARY) and impostor.decrypted == [] and not impostor.accepted
    assert "connection 'db'" in str(info.value) and "TLS" in str(info.value), info.value
    _assert_nowhere(gw, str(info.value))


def test_mysql_pinned_key_reaches_the_genuine_server(tmp_path: Path) -> None:
    genuine = MysqlImpostor(password=CANARY.encode())
    pinned = genuine.public_key_file(tmp_path / "db_public_key.pem")
    with serving(genuine):
        extra = f'sslmode = "disable"\nserver_public_key = "{pinned}"'
        gw = _gateway(tmp_path / "gw", _connection("mysql", genuine.port, extra), "mysql")
        try:
            with pytest.raises(pymysql.err.MySQLError):
                # the genuine server logs the gateway in; the fake then fails the session setup
                _mysql_login(gw)
        finally:
            gw.stop()
    assert genuine.accepted
    _assert_nowhere(gw)
