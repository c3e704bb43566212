"""The session kit (`hoop.server.session.Session`) over a real store (each engine), journal
and pipeline: the bracket every door opens and closes, what it stores, and the hold outcome
doors word."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hoop.core.config import parse_config
from hoop.core.identity import Identity
from hoop.core.rulebook import RuleBook
from hoop.core.secrets import Secret
from hoop.core.store.base import open_store
from hoop.server.gateway import build_pipeline
from hoop.server.services import Services
from hoop.server.session import CloseStatus, HoldOutcome, Session

ALICE = Identity("alice", frozenset({"dev"}))
BOB = Identity("bob", frozenset({"dba"}))
RULES = [
    {"name": "no-drop", "action": "block", "statements": ["drop table"]},
    {"name": "hold-deletes", "action": "review", "statements": ["delete"], "approvers": ["dba"], "timeout": "1s"},
]


@pytest.fixture
async def services(tmp_path: Path, store_target: Path | Secret) -> AsyncIterator[Services]:
    raw = {
        "gateway": {"data_dir": str(tmp_path)},
        "connections": [{"name": "pg", "type": "postgres", "host": "127.0.0.1", "port": 5432, "username": "x"}],
        "rules": RULES,
    }
    config = parse_config(raw, tmp_path / "hoop.toml")
    from hoop.core.store.journal import Journal

    store = open_store(store_target)
    journal = Journal(store_target, config.gateway.recordings_dir)
    rulebook = RuleBook(store.reopen())
    pipeline = build_pipeline(config, store, rulebook, journal)
    yield Services(config, store, journal, pipeline)
    journal.close()
    rulebook.store.close()
    store.close()


def stored(services: Services, session: Session) -> dict[str, object]:
    services.journal.flush()
    row = services.store.one(
        "SELECT protocol, connection, status, statements, blocked FROM sessions WHERE id = ?", (session.id,)
    )
    statements = services.store.query(
        "SELECT text, decision, rule, error FROM statements WHERE session_id = ? ORDER BY seq", (session.id,)
    )
    actions = [
        (r["action"], json.loads(r["detail"]).get("reason"))
        for r in services.store.query("SELECT action, detail FROM audit WHERE target = 'pg' ORDER BY id")
        if r["action"].startswith("session.") and json.loads(r["detail"]).get("session") == session.id
    ]
    return {"session": row, "statements": statements, "actions": actions}


async def test_a_session_is_listed_while_open_and_stored_with_how_it_ended(services: Services) -> None:
    session = Session(services, ALICE, "pg", "postgres", "127.0.0.1:1")
    session.start(lambda reason: None, tls=False)
    assert [s.id for s in services.live.values()] == [session.id]
    decision = session.judge("SELECT 1")
    assert decision.action == "allow"
    session.record("SELECT 1", decision.action, decision.rule, started=0.0, duration_ms=1.0, rows=1, tag="SELECT 1")
    session.close(CloseStatus.CLOSED)
    session.close(CloseStatus.UPSTREAM_LOST)  # only the first close counts
    assert services.live == {}
    assert stored(services, session) == {
        "session": {"protocol": "postgres", "connection": "pg", "status": "closed", "statements": 1, "blocked": 0},
        "statements": [{"text": "SELECT 1", "decision": "allow", "rule": "", "error": ""}],
        "actions": [("session.start", None), ("session.end", "closed")],
    }


async def test_a_killed_session_ends_killed_whatever_its_door_reports_while_closing(services: Services) -> None:
    told: list[tuple[str, CloseStatus]] = []
    session = Session(services, ALICE, "pg", "postgres", "127.0.0.1:1")

    def door_kill(reason: str, status: CloseStatus = CloseStatus.KILLED) -> None:
        told.append((reason, status))  # a door closes its connection, reporting what it saw
        session.close(CloseStatus.UPSTREAM_LOST)

    session.start(door_kill)
    services.live[session.id].kill("ends now")
    assert told == [("ends now", CloseStatus.KILLED)]
    assert stored(services, session)["session"]["status"] == "killed"  # type: ignore[index]


async def test_a_stopping_gateway_ends_sessions_as_shutdown(services: Services) -> None:
    told: list[CloseStatus] = []
    session = Session(services, ALICE, "pg", "postgres", "127.0.0.1:1")

    def door_kill(reason: str, status: CloseStatus = CloseStatus.KILLED) -> None:
        told.append(status)  # the door words a shutdown as its protocol does (57P01, ERR 1053)
        session.close(CloseStatus.CLOSED)

    session.start(door_kill)
    services.live[session.id].kill("the gateway is shutting down", CloseStatus.SHUTDOWN)
    assert told == [CloseStatus.SHUTDOWN]
    assert stored(services, session)["actions"] == [("session.start", None), ("session.end", "shutdown")]


async def test_a_blocked_statement_is_recorded_once_with_its_rule_and_reason(services: Services) -> None:
    session = Session(services, ALICE, "pg", "postgres", "127.0.0.1:1")
    session.start(lambda reason: None)
    decision = session.judge("DROP TABLE t")
    assert (decision.action, decision.rule) == ("block", "no-drop")
    session.refused("DROP TABLE t", decision)
    session.close(CloseStatus.CLOSED)
    record = stored(services, session)
    assert record["session"]["blocked"] == 1  # type: ignore[index]
    [row] = record["statements"]  # type: ignore[misc]
    assert (row["decision"], row["rule"]) == ("block", "no-drop") and "drop table" in row["error"].lower()


async def decided(session: Session, approve: bool, reason: str, notices: list[str]) -> tuple[HoldOutcome, int]:
    """Hold a DELETE and let bob decide it once the request is stored."""
    held = asyncio.ensure_future(session.hold("DELETE FROM t", session.judge("DELETE FROM t"), notices.append))
    for _ in range(200):  # until the request is stored (a round trip or two to the store)
        await asyncio.sleep(0.025)
        if pending := session.services.approvals.pending_for_session(session.id):
            break
    [approval_id] = pending
    session.services.approvals.decide(approval_id, BOB, approve, reason)
    return await held, approval_id


async def test_a_hold_ends_in_one_wire_neutral_outcome(services: Services) -> None:
    session = Session(services, ALICE, "pg", "postgres", "127.0.0.1:1")
    session.start(lambda reason: None)
    notices: list[str] = []

    denied, approval_id = await decided(session, False, "not today", notices)
    assert (denied.approved, denied.decision, denied.refusal) == (False, "review:denied", "denied")
    assert denied.message == f"approval #{approval_id} for rule hold-deletes denied: not today"

    approved, approval_id = await decided(session, True, "fine", notices)
    assert (approved.approved, approved.decision, approved.refusal) == (True, "review:approved", "")
    assert approved.message == f"approved (approval #{approval_id}) by bob"

    decision = session.judge("DELETE FROM t")
    expired = await session.hold("DELETE FROM t", decision, notices.append)  # the rule waits 1 s
    assert (expired.decision, expired.refusal) == ("review:expired", "timeout")

    held = asyncio.ensure_future(session.hold("DELETE FROM t", decision, notices.append))
    for _ in range(200):
        await asyncio.sleep(0.025)
        if session.services.approvals.pending_for_session(session.id):
            break
    session.withdraw()  # a CancelRequest / Ctrl-C while held
    withdrawn = await held
    assert (withdrawn.decision, withdrawn.refusal) == ("review:cancelled", "cancelled")
    assert len(notices) == 4 and all("held for approval" in n for n in notices)
