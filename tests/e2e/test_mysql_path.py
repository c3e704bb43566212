"""The MySQL door end to end: the real `hoop serve`, the real MariaDB, the real `mariadb`
client, PyMySQL, aiomysql and mysql-connector (for server-side prepared statements)."""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from core.sql import corpus_mysql
from support.gateway import ADMINS, GatewayProcess
from support.mariadb import (
    gateway_ca,
    mariadb_client,
    mysql_connection_toml,
    mysql_gateway,
    through,
    throwaway_database,
    throwaway_user,
)
from support.rules import rules_toml

from hoop.core.pipeline import Pipeline, Subject
from hoop.core.sql import PreparedStatements
from hoop.core.sql.textmode import mysql_mode

pytestmark = pytest.mark.needs_mariadb

USERS = """
[[users]]
name = "alice"
groups = ["dev"]

[[users]]
name = "bob"
groups = ["dev", "dba"]

[[users]]
name = "sec"
groups = ["dev", "security"]
"""


def gateway_rules() -> str:
    # the gateway seeds the built-in rules itself
    out = [rules_toml(r for r in corpus_mysql.RULES if not r.name.startswith("builtin-"))]
    out.append("""[[rules]]
name = "review-held"
action = "review"
statements = ["insert"]
tables = ["held_t"]
approvers = ["dba"]
timeout = "60s"

[[rules]]
name = "review-quick"
action = "review"
statements = ["insert"]
tables = ["quick_t"]
approvers = ["dba"]
timeout = "2s"

[[masking]]
name = "pii-columns"
columns = ["customers.email", "customers.ssn"]
style = "redact"
exempt = ["security"]

[[masking]]
name = "pii-content"
detectors = ["email", "us_ssn"]
style = "partial"
exempt = ["security"]
""")
    return "\n".join(out)


@pytest.fixture(scope="module")
def maria() -> Iterator[dict[str, str]]:
    """A per-run database and user; the user's password is a canary."""
    with (
        throwaway_database(
            "hoop_t",
            "CREATE TABLE users (id INT PRIMARY KEY, name VARCHAR(40), user VARCHAR(40), active INT)",
            "CREATE TABLE orders (id INT PRIMARY KEY, user_id INT, uid INT, total INT)",
            "CREATE TABLE staging LIKE users",
            "CREATE TABLE banned (id INT, reason VARCHAR(20))",
            "CREATE TABLE actions (`delete` INT)",
            "CREATE TABLE drop_log (what TEXT)",
            "CREATE TABLE `drop` (x INT)",
            "CREATE TABLE held_t (id INT)",
            "CREATE TABLE quick_t (id INT)",
            "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20))",
            "CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(40), email VARCHAR(80), ssn VARCHAR(11),"
            " note VARCHAR(80), age INT)",
            "INSERT INTO customers VALUES (1, 'Zed Secret', 'zed.secret@example.com', '123-45-6789',"
            " 'call me at noon', 41), (2, 'Decoy', 'nobody@example.org', '234-56-7891', 'order #12-34', 7)",
            "CREATE VIEW v_customers AS SELECT id, email AS contact, ssn, name FROM customers",
        ) as name,
        throwaway_user("hoop_app", name, password=f"CANARY-my-{secrets.token_hex(8)}") as (user, password),
    ):
        yield {"user": user, "db": name, "password": password}


@pytest.fixture(scope="module")
def gw(maria: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    conn = mysql_connection_toml(maria["db"], username=maria["user"], password="${HOOP_TEST_MY_PASSWORD}")
    bad = mysql_connection_toml(None, name="mybad", username=maria["user"], password="${HOOP_TEST_MY_WRONG}")
    env = {
        "HOOP_TEST_MY_PASSWORD": maria["password"],
        "HOOP_TEST_MY_WRONG": f"CANARY-wrong-{secrets.token_hex(8)}",
    }
    with mysql_gateway(
        tmp_path_factory.mktemp("mygw"),
        USERS + ADMINS + conn + bad + gateway_rules(),
        users=("alice", "bob", "sec"),
        env=env,
    ) as g:
        yield g


def connect(gw: GatewayProcess, user: str = "alice", db: str = "my", **kw: Any) -> pymysql.Connection:
    return through(gw, user, db, tls=True, client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS, **kw)


def mariadb(gw: GatewayProcess, sql: str, user: str = "alice", *args: str) -> subprocess.CompletedProcess[str]:
    return mariadb_client(gw, user, sql, "--comments", "-N", "-B", *args)


def run_all(cur: Any, sql: str) -> list[Any]:
    cur.execute(sql)
    out = [cur.fetchall()]
    while cur.nextset():
        out.append(cur.fetchall())
    return out


# -- relay fidelity ------------------------------------------------------------------------


def test_mariadb_client_multi_results_and_warnings(gw: GatewayProcess) -> None:
    r = mariadb(gw, "SELECT 1 AS a; SELECT 2, 'two'; SELECT 1/0; SHOW WARNINGS")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:3] == ["1", "2\ttwo", "NULL"]
    assert "Division by 0" in r.stdout
    bad = mariadb(gw, "SELECT 1", "alice", "--skip-ssl")  # loopback without TLS: RSA path still works
    assert bad.returncode == 0, bad.stderr


def test_pymysql_affected_rows_insert_id_and_rollback(gw: GatewayProcess) -> None:
    conn = connect(gw)
    cur = conn.cursor()
    cur.execute("INSERT INTO t (v) VALUES ('a'), ('b'), ('c')")
    assert cur.rowcount == 3 and cur.lastrowid >= 1
    first = cur.lastrowid
    cur.execute("UPDATE t SET v = 'z' WHERE id >= %s", (first + 1,))
    assert cur.rowcount == 2
    assert run_all(cur, "SELECT 1; SELECT COUNT(*) FROM t") == [((1,),), ((3,),)]
    cur.execute("BEGIN")
    cur.execute("INSERT INTO t (v) VALUES ('tx')")
    with pytest.raises(pymysql.err.ProgrammingError):
        cur.execute("INSERT INTO no_such_table VALUES (1)")
    cur.execute("ROLLBACK")
    cur.execute("SELECT COUNT(*) FROM t WHERE v = 'tx'")
    assert cur.fetchone() == (0,)
    conn.ping()
    conn.select_db("information_schema")  # COM_INIT_DB
    cur.execute("SELECT DATABASE()")
    assert cur.fetchone() == ("information_schema",)
    conn.close()


def test_aiomysql_and_field_list(gw: GatewayProcess) -> None:
    import aiomysql

    async def go() -> Any:
        ctx = ssl.create_default_context(cafile=gateway_ca(gw))
        ctx.check_hostname = False
        conn = await aiomysql.connect(
            host="127.0.0.1", port=gw.ports["mysql"], user="alice", password=gw.tokens["alice"], db="my", ssl=ctx
        )
        async with conn.cursor() as cur:
            await cur.execute("SELECT 40 + 2, 'x'")
            rows = await cur.fetchall()
        conn.close()
        return rows

    assert asyncio.run(go()) == ((42, "x"),)
    conn = connect(gw)
    conn._execute_command(pymysql.constants.COMMAND.COM_FIELD_LIST, "users\0")  # COM_FIELD_LIST
    names = []
    while True:
        pkt = conn._read_packet()
        if pkt.is_eof_packet():
            break
        names.append(pkt.read_length_coded_string() and pkt)  # catalog; fields follow
    assert len(names) == 4
    conn.ping()
    conn.close()


def _connector(gw: GatewayProcess) -> Any:
    """mysql-connector (a test dependency: the one client here with server-side prepares)."""
    import mysql.connector as connector

    return connector.connect(
        host="127.0.0.1",
        port=gw.ports["mysql"],
        user="alice",
        password=gw.tokens["alice"],
        database="my",
        ssl_ca=gateway_ca(gw),
        ssl_verify_cert=False,
        use_pure=True,
        autocommit=True,
    )


def test_prepared_statements_binary_rows(gw: GatewayProcess) -> None:
    import datetime
    import decimal

    conn = _connector(gw)
    cur = conn.cursor(prepared=True)
    cur.execute("CREATE TABLE IF NOT EXISTS bin_t (id INT, d DATETIME, f DOUBLE, s VARCHAR(20), n DECIMAL(8,2))")
    cur.execute(
        "INSERT INTO bin_t VALUES (?, ?, ?, ?, ?)", (7, datetime.datetime(2020, 1, 2, 3, 4, 5), 1.5, "hi", "3.14")
    )
    assert cur.rowcount == 1
    cur.execute("SELECT * FROM bin_t WHERE id = ?", (7,))
    assert cur.fetchall() == [(7, datetime.datetime(2020, 1, 2, 3, 4, 5), 1.5, "hi", decimal.Decimal("3.14"))]
    cur.execute("SELECT id, email, ssn, note, CONCAT(email, '') FROM customers WHERE id = ?", (1,))
    row = cur.fetchall()[0]
    assert row[0] == 1 and row[3] == "call me at noon"
    assert "zed.secret" not in repr(row) and "6789" not in str(row[2]) and "123-45" not in repr(row)
    conn.close()


def test_prepared_statement_is_judged_again_after_a_rule_change(gw: GatewayProcess) -> None:
    import mysql.connector as connector

    conn = _connector(gw)
    cur = conn.cursor(prepared=True)
    cur.execute("CREATE TABLE IF NOT EXISTS judged_t (id INT)")
    query = "SELECT COUNT(*) FROM judged_t WHERE id = ?"
    cur.execute(query, (1,))  # prepared once; the client re-executes the same statement id below
    assert cur.fetchall() == [(0,)]
    gw.admin("rules", "add", "guard", input='name = "no-judged"\naction = "block"\ntables = ["judged_t"]\n')
    deadline = time.monotonic() + 3
    while True:
        try:
            cur.execute(query, (1,))
            cur.fetchall()
        except connector.Error as exc:
            assert "no-judged" in str(exc)
            break
        assert time.monotonic() < deadline, "the prepared statement slipped past the new rule"
        time.sleep(0.1)
    conn.close()


def test_kill_query_from_second_connection(gw: GatewayProcess) -> None:
    victim, killer = connect(gw), connect(gw)
    assert victim.thread_id() != killer.thread_id() and victim.thread_id() >= 1000

    def kill() -> None:
        time.sleep(0.5)
        killer.cursor().execute(f"KILL QUERY {victim.thread_id()}")

    killing = threading.Thread(target=kill)
    killing.start()
    started = time.monotonic()
    with pytest.raises(pymysql.err.OperationalError) as err:
        victim.cursor().execute("SELECT SLEEP(30)")
    assert time.monotonic() - started < 2.5
    assert err.value.args[0] == 1317
    killing.join(10)  # the killer connection is used below: never from two threads at once
    with pytest.raises(pymysql.err.OperationalError) as unknown:
        killer.cursor().execute("KILL QUERY 1")  # a raw upstream id is never accepted
    assert unknown.value.args[0] == 1094
    victim.ping()
    victim.close()
    killer.close()


def test_bad_login_and_unknown_connection(gw: GatewayProcess) -> None:
    with pytest.raises(pymysql.err.OperationalError) as e1:
        pymysql.connect(
            host="127.0.0.1",
            port=gw.ports["mysql"],
            user="alice",
            password="nope",
            database="my",
            ssl={"ca": gateway_ca(gw), "check_hostname": False},
        )
    assert e1.value.args[0] == 1045
    with pytest.raises(pymysql.err.OperationalError) as e2:
        connect(gw, db="nosuch")
    assert e2.value.args[0] == 1044
    with pytest.raises(pymysql.err.OperationalError) as e3:
        connect(gw, db="mybad")
    assert "connection 'mybad'" in e3.value.args[1]
    assert connect(gw).cursor().execute("SELECT 1") == 1  # others unaffected


def _packet(payload: bytes, seq: int = 0) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes((seq,)) + payload


def _err_reply(sock: Any) -> tuple[int, str, bool]:
    """Everything the gateway sends until it closes or pauses: (error code, message, closed)."""
    sock.settimeout(2.0)
    data, closed = b"", False
    try:
        while chunk := sock.recv(65536):
            data += chunk
        closed = True
    except TimeoutError:
        pass
    assert data[4:5] == b"\xff", data  # an ERR packet
    return int.from_bytes(data[5:7], "little"), data[13:].decode(), closed


def test_malformed_packets_get_mysql_errors_and_close_only_that_client(gw: GatewayProcess) -> None:
    bystander = connect(gw)
    for first, problem in [
        (_packet(b"\x01\x02", 1), "truncated handshake response"),
        (b"GET / HTTP/1.1\r\nHost: gateway\r\n\r\n", "too large"),  # not MySQL at all
    ]:
        with socket.create_connection(("127.0.0.1", gw.ports["mysql"]), timeout=5) as raw:
            raw.recv(65536)  # the gateway's greeting
            raw.sendall(first)
            code, message, closed = _err_reply(raw)
        assert (code, closed) == (1043, True) and problem in message, message
        assert "bad handshake" in message
    # After login: an unknown command is refused and the session goes on; an empty packet ends it.
    victim = connect(gw)
    victim._sock.sendall(_packet(b"\x7f"))
    code, message, closed = _err_reply(victim._sock)
    assert (code, closed) == (1047, False) and "0x7f is not supported" in message
    with victim.cursor() as cur:
        assert cur.execute("SELECT 2") == 1 and cur.fetchall() == ((2,),)
    victim._sock.sendall(_packet(b""))
    code, message, closed = _err_reply(victim._sock)
    assert (code, closed) == (1043, True) and "empty packet" in message
    with bystander.cursor() as cur:  # everyone else is served as before
        assert cur.execute("SELECT 1") == 1
    bystander.close()
    assert connect(gw).cursor().execute("SELECT 1") == 1
    assert len(gw.audit("--action", "login.protocol_error", until=lambda events: len(events) >= 2)) >= 2
    problems = gw.audit("--action", "session.protocol_error", until=bool)
    assert any("empty packet" in json.dumps(e) for e in problems)


# -- guardrails and approvals --------------------------------------------------------------


def test_guardrail_corpus_through_pymysql(gw: GatewayProcess) -> None:
    expect = Pipeline(corpus_mysql.RULES)
    subject = Subject("alice", frozenset({"dev"}), "my", "mysql")
    conn = connect(gw)
    wrong: list[str] = []
    door_mode = mysql_mode("utf8mb4", "STRICT_TRANS_TABLES")  # PyMySQL's charset, the server's modes
    for sql in corpus_mysql.BLOCK:
        if expect.check(subject, sql, None, door_mode).action == "allow":
            continue  # blocked only while the string mode is unknown: the door knows it
        decision = expect.check(subject, sql)
        try:
            run_all(conn.cursor(), sql)
            wrong.append(f"ran: {sql}")
        except pymysql.err.MySQLError as exc:
            if decision.sqlstate:  # a syntax error: answered as the server answers it
                if exc.args[0] != 1064 or "refused by Hoop" in str(exc):
                    wrong.append(f"{sql}: {exc}")
            elif "refused by Hoop" not in str(exc) or f"rule {decision.rule} " not in str(exc):
                wrong.append(f"{sql}: {exc}")
    prepared = PreparedStatements()
    for sql in corpus_mysql.ALLOW:
        assert expect.check(subject, sql, prepared).action == "allow", sql
        try:
            run_all(conn.cursor(), sql)
        except pymysql.err.MySQLError as exc:
            if "refused by Hoop" in str(exc) or conn.open is False:
                wrong.append(f"{sql}: {exc}")
            if not conn.open:
                conn = connect(gw)
    assert not wrong, "\n".join(wrong)
    assert len(corpus_mysql.BLOCK) >= 50 and len(corpus_mysql.ALLOW) >= 40


def test_guardrails_through_mariadb_client(gw: GatewayProcess) -> None:
    for sql in (
        "/*!50000 DROP TABLE users */",
        "SELECT 1; DROP TABLE users",
        "DELETE FROM users",
        "SELECT LOAD_FILE('/etc/passwd')",
        "PREPARE s FROM 'DROP TABLE users'",
    ):
        r = mariadb(gw, sql)
        assert r.returncode != 0 and "refused by Hoop: rule " in r.stderr, (sql, r.stderr)
    ok = mariadb(gw, "SELECT COUNT(*) FROM users WHERE 1")
    assert ok.returncode == 0 and ok.stdout.strip().isdigit(), ok.stderr


def _held(gw: GatewayProcess, text: str) -> int:
    for _ in range(150):
        out = gw.cli("approvals", "--json", check=False)
        rows = json.loads(out.stdout or "[]") if out.returncode == 0 else []
        pending = [r for r in rows if r["status"] == "pending" and r["statement"] == text]
        if pending:
            return int(pending[0]["id"])
        time.sleep(0.1)
    raise AssertionError(f"{text!r} was not held")


def _in_thread(fn: Any) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["ok"] = fn()
        except Exception as exc:  # noqa: BLE001 - handed to the test thread
            box["err"] = exc

    t = threading.Thread(target=run)
    t.start()
    return t, box


def test_held_statement_approved_denied_and_timed_out(gw: GatewayProcess) -> None:
    conn = connect(gw)
    t, box = _in_thread(lambda: conn.cursor().execute("INSERT INTO held_t VALUES (1)"))
    approval = _held(gw, "INSERT INTO held_t VALUES (1)")
    own = gw.cli("approve", str(approval), "--token", gw.tokens["alice"], check=False)
    assert own.returncode != 0  # not an approver, and it is her own request
    gw.cli("approve", str(approval), "--token", gw.tokens["bob"])
    t.join(30)
    assert box.get("ok") == 1, box
    t, box = _in_thread(lambda: conn.cursor().execute("INSERT INTO held_t VALUES (2)"))
    approval = _held(gw, "INSERT INTO held_t VALUES (2)")
    gw.cli("deny", str(approval), "--reason", "not today", "--token", gw.tokens["bob"])
    t.join(30)
    assert isinstance(box.get("err"), pymysql.err.MySQLError) and "denied: not today" in str(box["err"])
    with pytest.raises(pymysql.err.MySQLError) as late:
        conn.cursor().execute("INSERT INTO quick_t VALUES (1)")
    assert late.value.args[0] == 1317 and "not approved in time" in late.value.args[1]
    cur = conn.cursor()
    cur.execute("SELECT (SELECT COUNT(*) FROM held_t), (SELECT COUNT(*) FROM quick_t)")
    assert cur.fetchone() == (1, 0)


def test_client_leaving_while_held_abandons_the_request(gw: GatewayProcess) -> None:
    conn = connect(gw)
    t, box = _in_thread(lambda: conn.cursor().execute("INSERT INTO held_t VALUES (9)"))
    approval = _held(gw, "INSERT INTO held_t VALUES (9)")
    conn._sock.shutdown(socket.SHUT_RDWR)  # the client vanishes mid-wait
    t.join(10)
    deadline = time.monotonic() + 5
    status = ""
    while status != "abandoned" and time.monotonic() < deadline:
        rows = json.loads(gw.cli("approvals", "--json", "--all").stdout)
        status = next(r["status"] for r in rows if r["id"] == approval)
        time.sleep(0.1)
    assert status == "abandoned"
    late = gw.cli("approve", str(approval), "--token", gw.tokens["bob"], check=False)
    assert late.returncode != 0 and "no longer pending" in late.stderr
    cur = connect(gw).cursor()
    cur.execute("SELECT COUNT(*) FROM held_t WHERE id = 9")
    assert cur.fetchone() == (0,)


# -- masking -------------------------------------------------------------------------------


def test_masking_text_protocol_aliases_star_view_computed(gw: GatewayProcess) -> None:
    cur = connect(gw).cursor()
    cur.execute("SELECT * FROM customers ORDER BY id")
    rows = cur.fetchall()
    cur.execute(
        "SELECT c.email AS e, ssn AS s, UPPER(email) AS u, CONCAT('ssn: ', ssn) AS cs, note, name, age "
        "FROM customers c ORDER BY id"
    )
    aliased = cur.fetchall()
    cur.execute("SELECT * FROM v_customers ORDER BY id")
    view = cur.fetchall()
    everything = repr((rows, aliased, view))
    for secret in ("zed.secret", "ZED.SECRET", "123-45-6789", "234-56-7891", "nobody@"):
        assert secret not in everything
    assert rows[0][1] == "Zed Secret" and rows[0][4] == "call me at noon" and rows[1][4] == "order #12-34"
    assert rows[0][5] == 41 and aliased[0][5] == "Zed Secret" and view[0][3] == "Zed Secret"
    exempt = connect(gw, user="sec").cursor()
    exempt.execute("SELECT email FROM customers WHERE id = 1")
    assert exempt.fetchone() == ("zed.secret@example.com",)
    r = mariadb(gw, "SELECT email, note FROM v_customers JOIN customers USING (id) WHERE id = 1")
    assert "zed.secret" not in r.stdout and "call me at noon" in r.stdout, r.stderr


# -- credentials ---------------------------------------------------------------------------


def test_canary_credential_never_leaks(gw: GatewayProcess, maria: dict[str, str]) -> None:
    connect(gw).cursor().execute("SELECT CURRENT_USER(), 1/0")
    for sql in ("SELECT user, authentication_string FROM mysql.user", "SELECT 1", "SHOW GRANTS"):
        mariadb(gw, sql)
    with pytest.raises(pymysql.err.OperationalError):
        connect(gw, db="mybad")
    time.sleep(0.5)
    for args in (["sessions", "--json"], ["audit", "--json"], ["audit", "verify"]):
        gw.cli(*args, check=False)
    gw.stop()  # flushes the journal; this test runs last in the module
    haystacks = [("cli", o.encode()) for o in gw.outputs]
    for path in Path(gw.root).rglob("*"):
        if path.is_file() and path.name != "hoop.toml":
            haystacks.append((str(path), path.read_bytes()))
    assert any(name.endswith(".jsonl") for name, _ in haystacks)
    for secret in (maria["password"], gw.env["HOOP_TEST_MY_WRONG"]):
        for name, data in haystacks:
            assert secret.encode() not in data, f"credential found in {name}"
