"""SQL over `ssh USER+CONN@gateway 'SQL'`: the statement goes through the gateway's own
PostgreSQL or MySQL door, the result is printed like `psql -A` / `mariadb -B`, and the exit
status says whether anything failed or was refused."""

from __future__ import annotations

import json
import select
import subprocess
from typing import Any

import psycopg
import pymysql
import pytest
from support.waiting import eventually


@pytest.fixture(scope="module")
def held_tables() -> None:
    """`sqlexec_held` (one row, n = 0) on both servers: UPDATEs of it are held for group ops."""
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True) as pg:
        pg.execute("DROP TABLE IF EXISTS sqlexec_held")
        pg.execute("CREATE TABLE sqlexec_held (id int PRIMARY KEY, n int NOT NULL)")
        pg.execute("INSERT INTO sqlexec_held VALUES (1, 0)")
    my = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", database="test", autocommit=True)
    with my.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS sqlexec_held")
        cur.execute("CREATE TABLE sqlexec_held (id int PRIMARY KEY, n int NOT NULL)")
        cur.execute("INSERT INTO sqlexec_held VALUES (1, 0)")
    my.close()


# -- PostgreSQL ------------------------------------------------------------------------------


def test_exec_select_prints_one_and_exits_zero(gateway):
    r = gateway.ssh("alice+db", "select 1")
    assert (r.returncode, r.stdout, r.stderr) == (0, b"?column?\n1\n(1 row)\n", b"")


def test_exec_prints_like_psql_unaligned(gateway):
    r = gateway.ssh(
        "alice+db", "select 1 as a, null as b, 'x|y' as c, true as t; select 2 as n; select 0 as z where false"
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode() == "a|b|c|t\n1||x|y|t\n(1 row)\nn\n2\n(1 row)\nz\n(0 rows)\n"


def test_exec_with_a_terminal_prints_the_same_rows(gateway):
    r = gateway.ssh("alice+db", "select 40 + 2 as answer", extra=("-tt",))
    assert r.returncode == 0, r.stderr
    assert b"answer\r\n42\r\n(1 row)\r\n" in r.stdout


def test_exec_error_goes_to_stderr_and_exits_one(gateway):
    r = gateway.ssh("alice+db", "select nope")
    assert r.returncode == 1
    assert r.stdout == b""
    assert b'ERROR: column "nope" does not exist' in r.stderr


def test_exec_refusal_names_the_rule_and_exits_one(gateway):
    r = gateway.ssh("alice+db", "drop table sqlexec_keep")
    assert r.returncode == 1
    assert r.stdout == b""
    assert b"ERROR: " in r.stderr and b"sql-no-drop" in r.stderr


def test_exec_empty_statement_is_a_usage_error(gateway):
    r = gateway.ssh("alice+db", "  ")
    assert r.returncode == 2
    assert b"usage: ssh alice+db@gateway 'SQL'" in r.stderr


def test_exec_never_shows_the_login_token(gateway):
    r = gateway.ssh("alice+db", "select current_setting('application_name') as app")
    assert r.stdout == b"app\nhoop ssh\n(1 row)\n"

    def issued() -> dict[str, Any]:  # the audit is written in the background
        rows = _query(
            gateway,
            "SELECT detail FROM audit WHERE action = 'token.issue' AND detail LIKE '%ssh sql shell%' "
            "ORDER BY id DESC LIMIT 1",
        )
        assert rows, "no token.issue audited yet"
        return dict(json.loads(rows[0]["detail"]))

    detail = eventually(issued)
    assert detail.get("purpose") == "ssh sql shell"
    secret = f"hoop_{detail['token_id']}_".encode()  # the one-login token's own prefix
    assert secret not in r.stdout + r.stderr
    for path in gateway.dir.rglob("*"):
        if path.is_file():
            assert secret not in path.read_bytes(), path


def test_exec_statements_are_recorded_under_the_user(gateway):
    r = gateway.ssh("alice+db", "select 'recorded-through-exec' as tag")
    assert r.returncode == 0, r.stderr

    def recorded() -> None:
        rows = _query(
            gateway,
            "SELECT s.user FROM statements t JOIN sessions s ON s.id = t.session_id WHERE t.text LIKE ?",
            ("%recorded-through-exec%",),
        )
        assert [row["user"] for row in rows] == ["alice"]

    eventually(recorded)


def test_held_exec_shows_the_hold_then_runs_when_approved(gateway, held_tables):
    client, approval, first_err = _held(gateway, "alice+db", "update sqlexec_held set n = n + 1 where id = 1")
    assert f"held for approval #{approval} by rule hold-sql-updates".encode() in first_err
    _decide(gateway, "approve", approval)
    out, err = client.communicate(timeout=20)
    assert client.returncode == 0, err
    assert out == b"UPDATE 1\n"


def test_denied_exec_exits_one_with_the_reason(gateway, held_tables):
    client, approval, _ = _held(gateway, "alice+db", "update sqlexec_held set n = n - 1 where id = 1")
    _decide(gateway, "deny", approval, "--reason", "not-on-friday")
    out, err = client.communicate(timeout=20)
    assert client.returncode == 1
    assert out == b""
    assert b"ERROR: " in err and b"not-on-friday" in err


def test_statements_on_stdin_run_in_the_shell_and_the_status_counts_errors(gateway):
    ok = gateway.ssh("alice+db", input=b"select 6*7 as answer;\n")
    assert ok.returncode == 0, ok.stderr
    assert b"42" in ok.stdout
    failed = gateway.ssh("alice+db", input=b"select nope;\nselect 'after' as still;\n")
    assert failed.returncode == 1
    assert b'ERROR: column "nope" does not exist' in failed.stderr
    assert b"after" in failed.stdout, "like psql without ON_ERROR_STOP, later statements still run"


def test_lobby_connect_without_terminal_reads_statements_from_stdin(gateway):
    r = gateway.ssh("alice", "connect db", input=b"select 'from-the-lobby' as via;\n")
    assert r.returncode == 0, r.stderr
    assert b"from-the-lobby" in r.stdout


# -- MySQL ---------------------------------------------------------------------------------


def test_mysql_exec_prints_like_mariadb_batch(gateway):
    r = gateway.ssh("alice+mdb", "select 1 as a, null as b, 'x\\ty\\nz\\\\w' as c; select 2 as n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode() == "a\tb\tc\n1\tNULL\tx\\ty\\nz\\\\w\nn\n2\n"


def test_mysql_exec_error_exits_one(gateway):
    r = gateway.ssh("alice+mdb", "select nope")
    assert r.returncode == 1
    assert r.stdout == b""
    assert b"ERROR: " in r.stderr and b"Unknown column 'nope'" in r.stderr


def test_mysql_exec_refusal_names_the_rule(gateway):
    r = gateway.ssh("alice+mdb", "drop table sqlexec_keep")
    assert r.returncode == 1
    assert b"sql-no-drop" in r.stderr


def test_mysql_held_exec_shows_the_hold_then_runs_when_approved(gateway, held_tables):
    client, approval, first_err = _held(gateway, "alice+mdb", "update sqlexec_held set n = n + 1 where id = 1")
    assert f"held for approval #{approval}".encode() in first_err
    _decide(gateway, "approve", approval)
    out, err = client.communicate(timeout=20)
    assert client.returncode == 0, err
    assert out == b""


def test_mysql_denied_exec_exits_one_with_the_reason(gateway, held_tables):
    client, approval, _ = _held(gateway, "alice+mdb", "update sqlexec_held set n = n - 1 where id = 1")
    _decide(gateway, "deny", approval, "--reason", "not-on-monday")
    out, err = client.communicate(timeout=20)
    assert client.returncode == 1
    assert b"not-on-monday" in err


# -- helpers ---------------------------------------------------------------------------------


def _held(gateway: Any, login: str, sql: str) -> tuple[subprocess.Popen[bytes], int, bytes]:
    """Start `ssh login 'sql'`, wait for its approval request, and read what the client shows
    on stderr before anyone decides (the hold must be visible while it waits)."""
    client = subprocess.Popen(gateway.ssh_args(login) + [sql], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        approval = _pending(gateway, sql)
        assert client.stderr is not None
        seen = b""
        while b"held for approval" not in seen:
            ready, _, _ = select.select([client.stderr], [], [], 10)
            assert ready, f"the hold was not shown while waiting: {seen!r}"
            chunk = client.stderr.read1(4096)  # type: ignore[attr-defined]
            assert chunk, f"stderr closed before the hold was shown: {seen!r}"
            seen += chunk
    except BaseException:
        client.kill()
        raise
    return client, approval, seen


def _pending(gateway: Any, statement: str) -> int:
    def held() -> int:
        out = gateway.run_hoop("approvals", "--json")
        rows = json.loads(out.stdout or "[]") if out.returncode == 0 else []
        pending = [r for r in rows if r["status"] == "pending" and r["statement"] == statement]
        assert pending, "the statement was not held"
        return int(pending[0]["id"])

    return int(eventually(held, timeout=20))


def _decide(gateway: Any, verb: str, approval: int, *extra: str) -> None:
    out = gateway.run_hoop(verb, str(approval), *extra, "--token", gateway.token("bob"))
    assert out.returncode == 0, out.stderr


def _query(gateway: Any, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    import sqlite3

    db = sqlite3.connect(gateway.dir / "data" / "hoop.db")
    db.row_factory = sqlite3.Row
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()
