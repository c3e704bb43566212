"""The same events through the PostgreSQL, MySQL and SSH exec doors store the same records.

Each test drives one event through one door with its real client (psycopg, PyMySQL, `ssh`)
and compares what the gateway stored about the session (its row, its statements, the audit
events about it and its recording's q/r frames), reduced by `Records.stored`, with ONE
expected shape written once for all three doors. An SSH exec session always carries its
command, so "open and close" is checked together with the allowed statement.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from support.doors import Answer, Door, Mysql, Postgres, Records, Ssh, Stored, uniform_gateway
from support.gateway import GatewayProcess
from support.mariadb import throwaway_database
from support.sshd import Sshd, keygen, throwaway_sshd
from support.waiting import eventually

Make = Callable[[Path], GatewayProcess]  # a started gateway with the three doors under this folder
pytestmark = [pytest.mark.needs_postgres, pytest.mark.needs_mariadb, pytest.mark.needs_sshd]

START, STATEMENT = "session.start", "statement"
ASKED, APPROVED, DENIED = "approval.request", "approval.approve", "approval.deny"
ALLOWED = ("allow", "", False)  # (decision, rule, whether an error was recorded)
CUT_SHORT = ("allow", "", True)  # allowed, and ended by something other than its own completion

# What every door stores for each event.
EXPECTED = {
    "allowed": Stored("closed", (ALLOWED,), (START, STATEMENT, "session.end closed"), "qr"),
    "blocked": Stored("closed", (("block", "no-drop", True),), (START, STATEMENT, "session.end closed"), "qr"),
    "approved": Stored(
        "closed",
        (("review:approved", "hold-writes", False),),
        (START, ASKED, APPROVED, STATEMENT, "session.end closed"),
        "qr",
    ),
    "denied": Stored(
        "closed",
        (("review:denied", "hold-writes", True),),
        (START, ASKED, DENIED, STATEMENT, "session.end closed"),
        "qr",
    ),
    "killed": Stored("killed", (CUT_SHORT,), (START, "session.kill", STATEMENT, "session.end killed"), "qr"),
    "upstream-lost": Stored("upstream-lost", (CUT_SHORT,), (START, STATEMENT, "session.end upstream-lost"), "qr"),
}


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    with throwaway_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with throwaway_database("uniform") as name:
        yield name


@pytest.fixture(scope="module")
def alice_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """alice's key pair for the SSH door."""
    key = tmp_path_factory.mktemp("alice") / "key"
    keygen(key)
    return key


@pytest.fixture(scope="module")
def make(pg_target: dict[str, str], database: str, sshd: Sshd, alice_key: Path) -> Iterator[Make]:
    """Factory: a started gateway with the three doors under `root`, tokens for alice and bob."""
    public = alice_key.with_suffix(".pub").read_text().strip()
    started: list[GatewayProcess] = []

    def start(root: Path) -> GatewayProcess:
        gw = uniform_gateway(root, public, pg_target, database, sshd)
        started.append(gw)
        gw.start()
        gw.issue_tokens("alice", "bob")
        return gw

    yield start
    for gw in started:
        gw.stop()


@pytest.fixture(scope="module")
def gw(make: Make, tmp_path_factory: pytest.TempPathFactory) -> GatewayProcess:
    return make(tmp_path_factory.mktemp("gw"))


@pytest.fixture(scope="module", params=["postgres", "mysql", "ssh"])
def door(
    request: pytest.FixtureRequest,
    gw: GatewayProcess,
    pg_target: dict[str, str],
    pg_admin: Any,
    database: str,
    alice_key: Path,
) -> Iterator[Door]:
    if request.param == "postgres":
        door: Door = Postgres(gw, pg_target, pg_admin)
    elif request.param == "mysql":
        door = Mysql(gw, database)
    else:
        door = Ssh(gw, alice_key)
    yield door
    if isinstance(door, Ssh):
        door.cleanup()


@pytest.fixture
def records(gw: GatewayProcess) -> Records:
    return Records(gw)


def stores(records: Records, last: int, door: Door, expected: Stored) -> dict[str, Any]:
    """The one session stored after `last`: of `door`'s protocol, with `expected` records once
    the journal has written them. Returns its row."""
    session = records.session_after(last)
    assert session["protocol"] == door.protocol

    def same() -> None:
        stored = records.stored(session["id"], door.setup)
        assert stored == expected, f"the {door.protocol} door stored {stored}"

    eventually(same)
    return session


def pending(gw: GatewayProcess, text: str) -> int:
    """The id of the approval request for `text`, once there is one."""

    def request() -> int:
        rows = [r for r in json.loads(gw.cli("approvals", "--json").stdout) if r["statement"] == text]
        assert len(rows) == 1, f"requests for {text!r}: {rows}"
        return int(rows[0]["id"])

    return eventually(request)


def _assert_listed(gw: GatewayProcess, session_id: int, status: str) -> None:
    """`hoop sessions`, as a user runs it, lists the session with `status`."""
    lines = gw.cli("sessions").stdout.splitlines()
    [line] = [line for line in lines[1:] if line.split()[0] == str(session_id)]
    assert status in line.split(), "\n".join(lines[:1] + [line])


def test_allowed_statement_in_a_session_opened_and_closed(door: Door, records: Records) -> None:
    last = records.last_id()
    answer = door.ask(door.allowed)
    assert answer.ok, answer
    stores(records, last, door, EXPECTED["allowed"])


def test_a_session_the_client_ends_is_always_closed(door: Door, records: Records) -> None:
    """The server's goodbye can reach the gateway before the client's own end of input: it is
    the goodbye answered, never an upstream lost (that race stored 1 session in 6 wrongly)."""
    last = records.last_id()
    for _ in range(20):
        assert door.ask(door.allowed).ok

    def all_closed() -> None:
        rows = records.query("SELECT status FROM sessions WHERE id > ?", last)
        assert [r["status"] for r in rows] == ["closed"] * 20

    eventually(all_closed)


def test_blocked_statement_is_refused_and_recorded(door: Door, records: Records) -> None:
    last = records.last_id()
    answer = door.ask(door.blocked)
    assert (answer.ok, answer.code) == (False, door.refused), answer
    assert "no-drop" in answer.said
    session = stores(records, last, door, EXPECTED["blocked"])
    [row] = records.query("SELECT error FROM statements WHERE session_id = ? AND decision = 'block'", session["id"])
    assert "rule no-drop blocks" in row["error"]


def test_held_statement_approved_runs(door: Door, gw: GatewayProcess, records: Records) -> None:
    last = records.last_id()
    text, what = door.held()
    answer = door.start(text)
    gw.cli("approve", str(pending(gw, text)), "--token", gw.tokens["bob"])
    assert answer.result(30).ok, answer.result()
    assert door.ran(what)
    stores(records, last, door, EXPECTED["approved"])


def test_held_statement_denied_does_not_run(door: Door, gw: GatewayProcess, records: Records) -> None:
    last = records.last_id()
    text, what = door.held()
    answer = door.start(text)
    gw.cli("deny", str(pending(gw, text)), "--token", gw.tokens["bob"], "--reason", "not during the freeze")
    refused = answer.result(30)
    assert (refused.ok, refused.code) == (False, door.refused), refused
    assert "not during the freeze" in refused.said
    assert not door.ran(what)
    stores(records, last, door, EXPECTED["denied"])


def running(door: Door, records: Records) -> tuple[int, Future[Answer]]:
    """A session running a long statement: its id and the client's answer to come."""
    last = records.last_id()
    text = door.long()
    answer = door.start(text)
    door.running(text)
    return records.session_after(last)["id"], answer


def test_killed_session(door: Door, gw: GatewayProcess, records: Records) -> None:
    last = records.last_id()
    session_id, answer = running(door, records)
    started = time.monotonic()
    gw.cli("kill", str(session_id), "--reason", "uniform test", "--token", gw.tokens["bob"])
    assert not answer.result(30).ok
    assert time.monotonic() - started < 10  # ended by the kill, not by the statement's end
    eventually(lambda: _assert_listed(gw, session_id, "killed"))
    stores(records, last, door, EXPECTED["killed"])


def test_upstream_lost(door: Door, records: Records) -> None:
    last = records.last_id()
    text = door.long()
    answer = door.start(text)
    door.cut(text)
    assert not answer.result(30).ok
    stores(records, last, door, EXPECTED["upstream-lost"])


def test_sessions_lists_interrupted_after_a_gateway_crash(door: Door, make: Make, tmp_path: Path) -> None:
    """SIGKILL leaves the session's row open; the next start marks it interrupted."""
    crashing = make(tmp_path)
    records = Records(crashing)
    try:
        session_id, answer = running(door.via(crashing), records)
        eventually(lambda: _assert_status(records, session_id, "open"))  # written before the crash
        assert crashing.proc is not None
        crashing.proc.kill()
        crashing.proc.wait()
        assert not answer.result(30).ok
        crashing.start()
        _assert_listed(crashing, session_id, "interrupted")
    finally:
        crashing.stop()


def _assert_status(records: Records, session_id: int, status: str) -> None:
    assert records.query("SELECT status FROM sessions WHERE id = ?", session_id) == [{"status": status}]
