"""How a hold ends without an approval (timeout, withdrawal, a client that leaves, a gateway
that stops or crashes) and what a time-boxed grant lets through. Nothing that ended this way
can be approved later: a statement that was not approved in time never runs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from support.holds import ALICE, BOB, CAROL, HELD, TWO, Gate, cancel, settled, woken

from hoop.core.approvals import Approvals, DecisionRefused, Outcome
from hoop.core.guardrails import GuardRule
from hoop.core.pipeline import Subject
from hoop.core.secrets import Secret
from hoop.core.store.base import open_store

QUICK = replace(HELD, timeout=0.05)  # the only real wait in these tests


@pytest.fixture
def gate(store_target: Path | Secret) -> Iterator[Gate]:
    store = open_store(store_target)
    yield Gate(store)
    store.close()


def refused_later(gate: Gate, approval_id: int, status: str) -> None:
    with pytest.raises(DecisionRefused, match=rf"no longer pending \(status {status}\)"):
        gate.approvals.decide(approval_id, BOB, True)
    assert gate.row(approval_id)["status"] == status


# -- timeout, withdrawal, abandonment ------------------------------------------------------


async def test_no_decision_in_time_is_a_deny_that_names_the_wait(gate: Gate) -> None:
    held = await gate.hold(QUICK)
    assert held.notices == [f"held for approval #{held.id} by rule hold-deletes; waiting up to 0.05s"]
    outcome = await settled(held.task)
    assert outcome == Outcome("expired", "no decision within 0.05s", held.id)
    assert not outcome.approved
    assert held.session.frames[-1] == {"event": "expired", "approval": held.id, "reason": "no decision within 0.05s"}
    assert ("alice", "approval.expired") in gate.audited
    refused_later(gate, held.id, "expired")


async def test_a_withdrawn_request_is_cancelled_and_cannot_be_approved(gate: Gate) -> None:
    held = await gate.hold(HELD)
    gate.approvals.withdraw(held.id)
    outcome = await woken(held.task)
    assert outcome == Outcome("cancelled", "cancelled by the client", held.id)
    assert gate.approvals.pending_for_session(1) == []
    assert ("alice", "approval.cancelled") in gate.audited
    refused_later(gate, held.id, "cancelled")


async def test_a_client_that_leaves_while_held_abandons_the_request(gate: Gate) -> None:
    held = await gate.hold(HELD)
    await cancel(held)
    assert gate.row(held.id)["reason"] == "the client left while waiting"
    assert ("alice", "approval.abandoned") in gate.audited
    refused_later(gate, held.id, "abandoned")


async def test_a_decision_ends_only_its_own_request(gate: Gate) -> None:
    first, second = await gate.hold(HELD), await gate.hold(HELD, text="DELETE FROM t WHERE id = 2")
    assert gate.approvals.pending_for_session(1) == [first.id, second.id]
    gate.approvals.decide(second.id, BOB, True)
    assert (await woken(second.task)).approved
    assert not first.task.done() and gate.row(first.id)["status"] == "pending"
    gate.approvals.withdraw(first.id)
    assert (await woken(first.task)).status == "cancelled"


# -- stop and restart ----------------------------------------------------------------------


async def test_a_stopping_gateway_expires_every_waiting_hold(gate: Gate) -> None:
    holds = [await gate.hold(HELD), await gate.hold(TWO, text="DROP TABLE t")]
    gate.approvals.decide(holds[1].id, BOB, True)  # one of two approvals: still pending
    gate.approvals.expire_all()
    for held in holds:
        assert await woken(held.task) == Outcome("expired", "the gateway stopped", held.id)
        refused_later(gate, held.id, "expired")


async def test_after_a_crash_a_request_left_pending_is_never_approved(gate: Gate) -> None:
    held = await gate.hold(HELD)  # the gateway dies here, its row still says "pending"
    store = gate.store.reopen()
    restarted = Approvals(store, lambda *args, **kwargs: None)
    assert restarted.pending_for_session(1) == []
    with pytest.raises(DecisionRefused, match="no longer pending"):
        restarted.decide(held.id, BOB, True, grant_seconds=3600)
    store.close()
    assert gate.grants() == []  # nor does a refused decision leave a grant behind
    await cancel(held)


# -- grants --------------------------------------------------------------------------------


async def test_a_grant_lets_that_users_statements_under_that_rule_through_until_it_expires(gate: Gate) -> None:
    first = await gate.hold(HELD)
    gate.approvals.decide(first.id, BOB, True, "batch fix", grant_seconds=1800)
    assert (await woken(first.task)).approved
    assert gate.grants() == [
        {"user": "alice", "connection": "prod", "rule": "hold-deletes", "granted_by": "bob", "approval_id": first.id}
    ]
    grant_id = gate.store.query("SELECT id FROM grants")[0]["id"]
    other = await gate.hold(HELD, text="DELETE FROM t WHERE id = 99")  # another statement, same rule
    assert other.id == 0  # no request was stored
    assert await settled(other.task) == Outcome("approved", f"grant #{grant_id} by bob", 0, ("bob",))
    assert other.session.held == 0
    assert other.session.audited == [
        ("grant.use", {"grant": grant_id, "rule": "hold-deletes", "text": "DELETE FROM t WHERE id = 99"})
    ]
    assert ("bob", "grant.create") in gate.audited
    gate.store.execute("UPDATE grants SET expires = ?", (time.time() - 1,))  # as if 30 minutes passed
    expired = await gate.hold(HELD)
    assert expired.id != 0 and not expired.task.done()
    await cancel(expired)


@pytest.mark.parametrize(
    ("rule", "subject"),
    [
        (TWO, ALICE),  # another rule
        (HELD, replace(ALICE, connection="staging")),  # another connection
        (HELD, Subject("erin", frozenset({"dev"}), "prod", "postgres")),  # another user
    ],
    ids=["rule", "connection", "user"],
)
async def test_a_grant_covers_only_its_user_connection_and_rule(gate: Gate, rule: GuardRule, subject: Subject) -> None:
    first = await gate.hold(HELD)
    gate.approvals.decide(first.id, BOB, True, grant_seconds=1800)
    await woken(first.task)
    held = await gate.hold(rule, subject=subject)
    assert held.id != 0 and not held.task.done()
    await cancel(held)


async def test_a_grant_needs_the_full_count_of_approvals(gate: Gate) -> None:
    first = await gate.hold(TWO, text="DROP TABLE t")
    gate.approvals.decide(first.id, BOB, True, grant_seconds=3600)  # one of two
    assert gate.grants() == []
    gate.approvals.decide(first.id, CAROL, False, "not today")
    assert (await woken(first.task)).status == "denied"
    again = await gate.hold(TWO, text="DROP TABLE t")
    assert again.id != 0, "the denied request's grant let the statement through"
    await cancel(again)


async def test_a_grant_exists_only_when_every_approval_of_the_count_asked_for_one(gate: Gate) -> None:
    half = await gate.hold(TWO, text="DROP TABLE t")
    gate.approvals.decide(half.id, BOB, True, grant_seconds=3600)
    gate.approvals.decide(half.id, CAROL, True)  # approves this statement, grants nothing
    assert (await woken(half.task)).status == "approved"
    assert gate.grants() == []

    both = await gate.hold(TWO, text="DROP TABLE t")
    gate.approvals.decide(both.id, BOB, True, grant_seconds=3600)
    gate.approvals.decide(both.id, CAROL, True, grant_seconds=600)
    assert (await woken(both.task)).status == "approved"
    [grant] = gate.grants()
    assert grant["granted_by"] == "bob, carol" and grant["approval_id"] == both.id
    [lasts] = gate.store.query("SELECT expires - created AS seconds FROM grants")
    assert lasts["seconds"] == pytest.approx(600)  # the shorter of the two asked for
