"""Big statements through both doors: classified off the event loop, within a size and a
time budget. One session's huge statement must not stall anybody else's queries; a statement
over a budget is refused with an error naming the setting, and its session goes on."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest
from support.gateway import ALICE, GatewayProcess, write_config
from support.mariadb import mysql_connection_toml, through, throwaway_database
from support.postgres import pg_connection_toml
from support.rules import rule_toml
from support.servers import free_port

pytestmark = [pytest.mark.needs_postgres, pytest.mark.needs_mariadb]

MAX_SIZE = 3_000_000
TIMEOUT = 1.5  # gateway.parse_timeout of the gateway under test

RULES = rule_toml("no-drop", statements=["drop"]) + rule_toml(
    "review-big", action="review", statements=["insert"], tables=["held_big"], approvers=["dba"], timeout="2s"
)


def in_list(size: int) -> str:
    """`SELECT 'x' IN ('v0000001', ...)`: about `size` characters, cheap for either server,
    seconds of work for either classifier."""
    return "SELECT 'x' IN (" + ",".join(f"'v{i:07d}'" for i in range(size // 11)) + ")"


@pytest.fixture(scope="module")
def gw(pg_target: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with throwaway_database("hoop_big") as mydb:
        g = write_config(
            tmp_path_factory.mktemp("biggw"),
            # A loader session sends about a gigabyte of statement text in a few seconds: more
            # than the default recording_bytes_per_session, which would end it.
            ALICE
            + RULES
            + pg_connection_toml(pg_target)
            + mysql_connection_toml(mydb)
            + "\n[limits]\nrecording_bytes_per_session = 1099511627776\n",
            listen={"postgres": free_port(), "mysql": free_port()},
            settings=f"max_statement_size = {MAX_SIZE}\nparse_timeout = {TIMEOUT}\n",
        )
        g.env["HOOP_TEST_PG_PASSWORD"] = pg_target["password"]
        g.start()
        g.issue_tokens("alice")
        yield g
        g.stop()


class Session:
    """One client session of either door, with the same small API."""

    def __init__(self, gw: GatewayProcess, door: str) -> None:
        token = gw.tokens["alice"]
        self.door = door
        self.conn: Any
        if door == "postgres":
            self.conn = psycopg.connect(gw.dsn("alice", token), autocommit=True, connect_timeout=10)
        else:
            self.conn = through(gw, read_timeout=120, client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)

    def run(self, sql: str) -> list[Any]:
        cur = self.conn.cursor()
        cur.execute(sql)
        rows = list(cur.fetchall()) if cur.description else []
        while self.door == "mysql" and cur.nextset():
            pass
        return rows

    def refused(self, sql: str) -> str:
        """Run `sql`, expecting the gateway to refuse it; the error text."""
        with pytest.raises((psycopg.Error, pymysql.err.MySQLError)) as err:
            self.run(sql)
        return str(err.value)

    def close(self) -> None:
        self.conn.close()


DOORS = ["postgres", "mysql"]


@pytest.mark.parametrize("door", DOORS)
def test_other_sessions_answer_while_one_sends_huge_statements(gw: GatewayProcess, door: str) -> None:
    probe, loader = Session(gw, door), Session(gw, door)
    big = in_list(2_000_000)
    stop = threading.Event()
    outcomes: list[str] = []

    def load() -> None:
        while not stop.is_set():
            try:
                loader.run(big)
                outcomes.append("answered")
            except (psycopg.Error, pymysql.err.MySQLError) as exc:
                outcomes.append(str(exc))

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    slowest, slow_at = 0.0, ""
    try:
        end = time.monotonic() + 8
        while time.monotonic() < end:
            start = time.monotonic()
            assert probe.run("SELECT 1") == [(1,)]
            if time.monotonic() - start > slowest:
                slowest, slow_at = time.monotonic() - start, time.strftime("%H:%M:%S")
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(60)
    assert outcomes, "the loader's first 2 MB statement never came back"
    # Answered, or refused for its time budget: never anything else.
    assert all(o == "answered" or "gateway.parse_timeout" in o for o in outcomes), outcomes
    assert slowest < 1.0, f"a SELECT 1 of another session waited {slowest:.2f} s (until {slow_at})"
    assert loader.run("SELECT 2") == [(2,)]
    probe.close()
    loader.close()


@pytest.mark.parametrize("door", DOORS)
def test_big_statement_is_judged_like_any_other(gw: GatewayProcess, door: str) -> None:
    """Off the loop is not around the rules: a big text is classified in full and a DROP at its
    end is refused, while the same text without it runs."""
    s = Session(gw, door)
    table = f"keep_{secrets.token_hex(4)}"
    s.run(f"CREATE TABLE {table} (id int)")
    s.run(f"INSERT INTO {table} VALUES (7)")
    big = in_list(100_000)  # well past the inline size, well within the time budget
    assert s.run(big) in ([(False,)], [(0,)])
    message = s.refused(f"{big}; DROP TABLE {table}")
    assert "refused by Hoop" in message
    assert s.run(f"SELECT id FROM {table}") == [(7,)]  # the table is still there
    # The same text again is decided from what the pool found the first time.
    s.refused(f"{big}; DROP TABLE {table}")
    assert s.run(f"SELECT id FROM {table}") == [(7,)]
    s.close()


@pytest.mark.parametrize("door", DOORS)
def test_big_statement_under_review_is_held_like_any_other(gw: GatewayProcess, door: str) -> None:
    """Classified in the pool, then held for approval in the same session: nobody approves
    within the rule's 2 s, so it is refused and nothing was inserted."""
    s = Session(gw, door)
    s.run("CREATE TABLE IF NOT EXISTS held_big (v varchar(20))")
    mark = secrets.token_hex(4)
    big = "INSERT INTO held_big VALUES " + ",".join(f"('{mark}{i:05d}')" for i in range(5_000))
    assert len(big) > 50_000
    message = s.refused(big)
    assert "review-big" in message and "not approved in time" in message
    assert s.run(f"SELECT count(*) FROM held_big WHERE v LIKE '{mark}%'") == [(0,)]
    s.close()


@pytest.mark.parametrize("door", DOORS)
def test_over_size_statement_is_refused_and_session_goes_on(gw: GatewayProcess, door: str) -> None:
    s = Session(gw, door)
    start = time.monotonic()
    message = s.refused(in_list(MAX_SIZE + 100_000))
    assert "gateway.max_statement_size" in message and str(MAX_SIZE) in message
    assert time.monotonic() - start < TIMEOUT  # refused on its size, not parsed first
    assert s.run("SELECT 1") == [(1,)]
    s.close()


def _slow_text(door: str) -> str:
    # Tens of thousands of tiny statements: under the size budget, many seconds to classify.
    return "SELECT 1;" * 250_000 if door == "postgres" else in_list(2_500_000)


@pytest.mark.parametrize("door", DOORS)
def test_over_time_statement_is_refused_and_others_keep_being_served(gw: GatewayProcess, door: str) -> None:
    s, other = Session(gw, door), Session(gw, door)
    result: list[str] = []
    thread = threading.Thread(target=lambda: result.append(s.refused(_slow_text(door))), daemon=True)
    thread.start()
    time.sleep(0.3)
    start = time.monotonic()
    while thread.is_alive() and time.monotonic() - start < 30:
        assert other.run("SELECT 3") == [(3,)]
        time.sleep(0.05)
    thread.join(5)
    assert result and "gateway.parse_timeout" in result[0], result
    assert s.run("SELECT 4") == [(4,)]  # the refused session goes on
    assert other.run("SELECT 5") == [(5,)]
    s.close()
    other.close()


def test_big_statement_through_the_extended_protocol(gw: GatewayProcess) -> None:
    """Parse of a big text waits for the pool the same way as a simple Query does."""
    token = gw.tokens["alice"]
    big = in_list(100_000)
    with psycopg.connect(gw.dsn("alice", token), autocommit=True) as conn:
        for _ in range(2):  # prepared once, executed again from what was kept
            assert conn.execute(big, prepare=True).fetchall() == [(False,)]
        with pytest.raises(psycopg.Error, match="gateway.max_statement_size"):
            conn.execute(in_list(MAX_SIZE + 100_000), prepare=True)
        assert conn.execute("SELECT 1", prepare=True).fetchall() == [(1,)]


def _parse_workers(pid: int) -> set[int]:
    """The gateway's child processes that are parse workers."""
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children = [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            try:
                if b"hoop.core.parsepool" in Path(f"/proc/{child}/cmdline").read_bytes():
                    out.add(child)
            except OSError:
                pass
    return out


def test_parse_workers_start_on_demand_and_stop_with_the_gateway(make_gateway) -> None:  # type: ignore[no-untyped-def]
    g = make_gateway()
    assert g.proc is not None
    try:
        assert _parse_workers(g.proc.pid) == set()
        with psycopg.connect(g.dsn("alice", g.token("alice")), autocommit=True) as conn:
            conn.execute("SELECT 1").fetchall()
            assert _parse_workers(g.proc.pid) == set()  # small statements stay inline
            assert conn.execute(in_list(50_000)).fetchall() == [(False,)]
            workers = _parse_workers(g.proc.pid)
            assert len(workers) == 1
    finally:
        g.stop()
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{w}").exists() for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(Path(f"/proc/{w}").exists() for w in workers)


def test_a_cancel_while_a_big_statement_waits_for_the_pool_refuses_it(
    pg_target: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """psql's Ctrl-C (a CancelRequest) while the statement is still being classified: it never
    runs, the client gets the server's 57014, and the session goes on."""
    g = write_config(
        tmp_path_factory.mktemp("cancelgw"),
        ALICE + pg_connection_toml(pg_target),
        settings="parse_timeout = 60\n",  # the statement below takes seconds to classify
    )
    g.env["HOOP_TEST_PG_PASSWORD"] = pg_target["password"]
    g.start()
    try:
        g.issue_tokens("alice")
        conn = psycopg.connect(g.dsn("alice", g.tokens["alice"]), autocommit=True, connect_timeout=10)
        table = f"cancel_{secrets.token_hex(4)}"
        conn.execute(f"CREATE TABLE {table} (v text)")
        big = f"INSERT INTO {table} VALUES " + ",".join(f"('{i:08d}')" for i in range(250_000))
        outcome: list[BaseException | None] = []

        def insert() -> None:
            try:
                conn.execute(big)
                outcome.append(None)
            except psycopg.Error as exc:
                outcome.append(exc)

        worker = threading.Thread(target=insert)
        worker.start()
        time.sleep(0.5)
        conn.cancel()
        worker.join(60)
        assert outcome and isinstance(outcome[0], psycopg.errors.QueryCanceled), outcome
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)
        conn.close()
    finally:
        g.stop()
