"""psql, psycopg and pgbench through a real `hoop serve` to the real PostgreSQL server."""

from __future__ import annotations

import json
import signal
import socket
import struct
import subprocess
import time

import psycopg
import pytest

pytestmark = pytest.mark.needs_postgres


@pytest.fixture
def gw(make_gateway):  # type: ignore[no-untyped-def]
    return make_gateway()


def test_psql_describe_copy_and_transactions(gw, tmp_path) -> None:  # type: ignore[no-untyped-def]
    token = gw.token("alice")
    script = f"""
CREATE TABLE items (id int PRIMARY KEY, name text);
COPY items FROM STDIN;
1\tapple
2\tpear
\\.
\\copy items to '{tmp_path}/items.csv' csv
\\d items
BEGIN;
SELECT * FROM no_such_table;
SELECT 1;
ROLLBACK;
SELECT count(*) AS n FROM items;
"""
    result = gw.psql("alice", token, None, input=script)
    out = result.stdout + result.stderr
    assert "COPY 2" in out
    assert (tmp_path / "items.csv").read_text() == "1,apple\n2,pear\n"
    assert 'Table "public.items"' in out and "name" in out
    assert 'relation "no_such_table" does not exist' in out
    assert "current transaction is aborted" in out
    assert "ROLLBACK" in out
    assert " n \n---\n 2\n" in out
    gw.psql("alice", token, "DROP TABLE items")


def test_psql_cancel_returns_quickly(gw) -> None:  # type: ignore[no-untyped-def]
    token = gw.token("alice")
    import os

    proc = subprocess.Popen(
        ["psql", gw.dsn("alice", token).replace(f"password={token} ", ""), "-X", "-c", "SELECT pg_sleep(30)"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PGPASSWORD": token},
    )
    time.sleep(1.0)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)  # psql sends a CancelRequest on Ctrl-C
    _, err = proc.communicate(timeout=10)
    assert time.monotonic() - started < 2.0
    assert "canceling statement due to user request" in err


def test_psql_tls_require(gw) -> None:  # type: ignore[no-untyped-def]
    token = gw.token("alice")
    result = gw.psql("alice", token, None, "-c", "\\conninfo", "-c", "SELECT 41 + 1 AS answer", sslmode="require")
    assert "SSL connection" in result.stdout
    assert "42" in result.stdout


def test_psycopg_binary_pipeline_cancel_and_server_cursor(gw) -> None:  # type: ignore[no-untyped-def]
    token = gw.token("alice")
    with psycopg.connect(gw.dsn("alice", token), autocommit=True) as conn:
        cur = conn.cursor(binary=True)
        cur.execute("SELECT %b::int4 + 1, %b::bytea, %s::numeric", (41, b"\x00\xff", "1.5"))
        assert cur.fetchone() == (42, b"\x00\xff", __import__("decimal").Decimal("1.5"))
        with conn.pipeline():
            c1 = conn.execute("SELECT 1")
            c2 = conn.execute("SELECT %s::text", ("two",))
            c3 = conn.execute("SELECT generate_series(1, 3)")
        assert c1.fetchone() == (1,) and c2.fetchone() == ("two",) and len(c3.fetchall()) == 3
        with conn.transaction():
            with conn.cursor(name="big") as named:
                named.execute("SELECT g FROM generate_series(1, 5000) g")
                assert len(named.fetchmany(100)) == 100
                assert sum(1 for _ in named) == 4900
        import threading

        timer = threading.Timer(0.5, conn.cancel)
        timer.start()
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(30)")
        assert time.monotonic() - started < 2.0
        assert conn.execute("SELECT 'still usable'").fetchone() == ("still usable",)


def test_listen_notify_and_notices(gw) -> None:  # type: ignore[no-untyped-def]
    token = gw.token("alice")
    notices: list[str] = []
    with (
        psycopg.connect(gw.dsn("alice", token), autocommit=True) as a,
        psycopg.connect(gw.dsn("alice", token), autocommit=True) as b,
    ):
        a.add_notice_handler(lambda d: notices.append(d.message_primary))
        a.execute("LISTEN hoop_test")
        b.execute("NOTIFY hoop_test, 'hello'")
        a.execute("CREATE TEMP TABLE IF NOT EXISTS notice_me (x int)")
        a.execute("CREATE TEMP TABLE IF NOT EXISTS notice_me (x int)")
        got = list(a.notifies(timeout=2, stop_after=1))
        assert got and got[0].payload == "hello"
        assert any("already exists" in n for n in notices)


def test_pgbench_select_only(gw, pg_target) -> None:  # type: ignore[no-untyped-def]
    import os

    init = subprocess.run(
        [
            "pgbench",
            "-i",
            "-s",
            "1",
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            "5432",
            "-U",
            pg_target["role"],
            pg_target["database"],
        ],
        capture_output=True,
        text=True,
    )
    assert init.returncode == 0, init.stderr
    token = gw.token("alice")
    for mode in ("simple", "extended", "prepared"):
        run = subprocess.run(
            [
                "pgbench",
                "-S",
                "-n",
                "-c",
                "4",
                "-j",
                "2",
                "-t",
                "200",
                "-M",
                mode,
                "-h",
                "127.0.0.1",
                "-p",
                str(gw.ports["postgres"]),
                "-U",
                "alice",
                "pg",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "PGPASSWORD": token, "PGSSLMODE": "disable"},
        )
        assert run.returncode == 0, run.stderr
        assert "number of failed transactions: 0" in run.stdout
        assert "number of transactions actually processed: 800/800" in run.stdout


def test_bad_credentials_and_connections(gw) -> None:  # type: ignore[no-untyped-def]
    token = gw.token("alice")
    wrong = gw.psql("alice", token[:-4] + "AAAA", "SELECT 1")
    assert "28P01" in wrong.stderr or "authentication failed" in wrong.stderr
    with pytest.raises(psycopg.OperationalError) as excinfo:
        psycopg.connect(gw.dsn("alice", "hoop_nope_nope"))
    assert "authentication failed" in str(excinfo.value)
    unknown = gw.psql("alice", token, "SELECT 1", connection="nope")
    mallory = gw.token("mallory")
    forbidden = gw.psql("mallory", mallory, "SELECT 1", connection="pg")
    assert "no such connection for you ('nope')" in unknown.stderr
    assert "no such connection for you ('pg')" in forbidden.stderr

    expiring = gw.token("alice", ttl="1s")
    time.sleep(1.2)
    assert "token expired" in gw.psql("alice", expiring, "SELECT 1").stderr
    revoked = gw.token("alice")
    token_id = revoked.split("_")[1]
    assert gw.psql("alice", revoked, "SELECT 1").returncode == 0
    gw.cli("token", "revoke", token_id)
    assert "token revoked" in gw.psql("alice", revoked, "SELECT 1").stderr
    listed = json.loads(gw.cli("token", "list", "--json").stdout)
    assert {t["id"]: t["state"] for t in listed}[token_id] == "revoked"


def _startup(user: str, db: str) -> bytes:
    body = struct.pack("!i", 196608) + b"user\0" + user.encode() + b"\0database\0" + db.encode() + b"\0\0"
    return struct.pack("!i", len(body) + 4) + body


def _login_raw(gw, token: str) -> socket.socket:  # type: ignore[no-untyped-def]
    s = socket.create_connection(("127.0.0.1", gw.ports["postgres"]), timeout=5)
    s.sendall(_startup("alice", "pg"))
    assert s.recv(9)[:1] == b"R"  # AuthenticationCleartextPassword
    pw = token.encode() + b"\0"
    s.sendall(b"p" + struct.pack("!i", len(pw) + 4) + pw)
    buf = b""
    while b"Z\x00\x00\x00\x05" not in buf:
        chunk = s.recv(65536)
        assert chunk, buf
        buf += chunk
    return s


def _read_all(s: socket.socket) -> bytes:
    out = b""
    while True:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        out += chunk
    return out


def test_malformed_and_oversized_messages_close_only_that_client(gw) -> None:  # type: ignore[no-untyped-def]
    token = gw.token("alice")
    with psycopg.connect(gw.dsn("alice", token), autocommit=True) as bystander:
        # garbage during startup
        s = socket.create_connection(("127.0.0.1", gw.ports["postgres"]), timeout=5)
        s.sendall(struct.pack("!i", 12) + b"\x00\x09\x00\x00garbage!")
        assert b"08P01" in _read_all(s)
        s.close()
        # a claimed length beyond the configured maximum after login
        s = _login_raw(gw, token)
        s.sendall(b"Q" + struct.pack("!I", 0x7FFFFFF0) + b"SELECT 1")
        reply = _read_all(s)
        assert b"08P01" in reply and b"exceeds the limit" in reply
        s.close()
        # a Query without its NUL terminator
        s = _login_raw(gw, token)
        s.sendall(b"Q" + struct.pack("!I", 12) + b"SELECT 1")
        reply = _read_all(s)
        assert b"08P01" in reply
        s.close()
        assert bystander.execute("SELECT 'fine'").fetchone() == ("fine",)


def test_upstream_down_names_connection_not_credential(make_gateway, pg_target) -> None:  # type: ignore[no-untyped-def]
    from support.servers import free_port

    dead = free_port()
    conns = f"""
[[connections]]
name = "dead"
type = "postgres"
host = "127.0.0.1"
port = {dead}
database = "x"
username = "y"
password = "${{HOOP_TEST_PG_PASSWORD}}"
groups = ["dev"]
connect_timeout = 2
"""
    gw = make_gateway(connections=conns)
    token = gw.token("alice")
    result = gw.psql("alice", token, "SELECT 1", connection="dead")
    assert "connection 'dead'" in result.stderr
    assert pg_target["password"] not in result.stderr


def test_sessions_replay_and_audit(gw) -> None:  # type: ignore[no-untyped-def]
    token = gw.token("alice")
    gw.psql("alice", token, "SELECT 'replay-me' AS marker")
    gw.psql("alice", token, "SELECT * FROM missing_table_xyz")
    deadline = time.monotonic() + 10  # the journal writes in batches: wait for both sessions' ends
    while True:
        sessions = json.loads(gw.cli("sessions", "--json").stdout)
        if len(sessions) >= 2 and all(s["ended"] for s in sessions) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    first = min(sessions, key=lambda s: s["id"])
    assert first["user"] == "alice" and first["connection"] == "pg" and first["protocol"] == "postgres"
    assert first["statements"] == 1 and first["status"] == "closed" and first["ended"]
    replay = gw.cli("replay", str(first["id"])).stdout
    assert "SELECT 'replay-me' AS marker" in replay and "SELECT 1" in replay
    second = gw.cli("replay", str(max(s["id"] for s in sessions))).stdout
    assert "missing_table_xyz" in second and "does not exist" in second
    events = json.loads(gw.cli("audit", "--json").stdout)
    actions = [e["action"] for e in events]
    for expected in ("config.load", "token.issue", "session.start", "statement", "session.end"):
        assert expected in actions
    stmt = next(e for e in events if e["action"] == "statement" and "replay-me" in e["detail"]["text"])
    assert stmt["actor"] == "alice" and stmt["detail"]["decision"] == "allow"
    assert gw.cli("audit", "verify").returncode == 0


def test_bad_config_stops_serve(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import sys

    config = tmp_path / "hoop.toml"
    config.write_text(
        '[listen]\npostgres = "127.0.0.1:1"\n[[connections]]\nname = "pg"\ntype = "postgres"\n'
        'host = "h"\nusername = "u"\npasword = "x"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "hoop.cli", "serve", "-c", str(config)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert f"{config}: connections[0].pasword: unknown key" in result.stderr


def test_kill_disconnects_the_client_and_is_audited(make_gateway) -> None:  # type: ignore[no-untyped-def]
    gw = make_gateway('[[rules]]\nname = "hold"\naction = "review"\nstatements = ["truncate"]\napprovers = ["dba"]\n')
    alice, bob = gw.token("alice"), gw.token("bob")
    import os

    victim = subprocess.Popen(
        [
            "psql",
            f"host=127.0.0.1 port={gw.ports['postgres']} user=alice dbname=pg sslmode=disable",
            "-X",
            "-c",
            "SELECT pg_sleep(30)",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PGPASSWORD": alice},
    )
    deadline = time.monotonic() + 10
    live: list[dict[str, object]] = []
    while not live and time.monotonic() < deadline:
        live = [s for s in json.loads(gw.cli("sessions", "--json").stdout) if s["status"] == "open"]
        time.sleep(0.2)
    assert live, "the session never showed up"
    session_id = str(live[0]["id"])
    refused = gw.cli("kill", session_id, "--reason", "no", "--token", alice, check=False)
    assert refused.returncode == 1 and "only admins and approvers may kill sessions" in refused.stderr
    started = time.monotonic()
    gw.cli("kill", session_id, "--reason", "runaway query", "--token", bob)
    _, err = victim.communicate(timeout=10)
    assert time.monotonic() - started < 5
    assert "terminated by an administrator: runaway query" in err
    kills = gw.audit("--action", "session.kill", until=bool)
    assert kills and kills[0]["actor"] == "bob" and kills[0]["detail"]["reason"] == "runaway query"
