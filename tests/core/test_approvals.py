"""Held statements (`Approvals`): request, wait, decide; who may decide; N-of-M. Timeouts,
withdrawal and abandonment, grants and restarts are in test_approvals_end.py. A real store on
each engine; the held session is a small double of what the doors pass in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.holds import BOB, CAROL, DAVE, HELD, TWO, Gate, cancel, settled, woken

from hoop.core.approvals import DecisionRefused, Outcome
from hoop.core.pipeline import Subject
from hoop.core.secrets import Secret
from hoop.core.store.base import open_store


@pytest.fixture
def gate(store_target: Path | Secret) -> Iterator[Gate]:
    store = open_store(store_target)
    yield Gate(store)
    store.close()


# -- request, wait, decide -----------------------------------------------------------------


async def test_a_hold_stores_the_request_tells_the_client_and_waits(gate: Gate) -> None:
    held = await gate.hold(HELD)
    assert held.notices == [f"held for approval #{held.id} by rule hold-deletes; waiting up to 5m"]
    row = gate.row(held.id)
    assert (row["user"], row["connection"], row["rule"], row["status"]) == ("alice", "prod", "hold-deletes", "pending")
    assert (row["statement"], json.loads(row["approvers"]), row["required"]) == (
        "DELETE FROM t WHERE id = 1",
        ["dba"],
        1,
    )
    assert row["expires"] == pytest.approx(row["created"] + 300)
    assert gate.approvals.pending_for_session(1) == [held.id]
    assert held.session.held == 1 and held.session.touched == 1
    assert held.session.audited == [
        ("approval.request", {"approval": held.id, "rule": "hold-deletes", "text": "DELETE FROM t WHERE id = 1"})
    ]
    assert held.session.frames == [{"event": "held", "approval": held.id, "rule": "hold-deletes"}]
    assert not held.task.done()
    await cancel(held)


async def test_an_approval_wakes_the_waiter_at_once(gate: Gate) -> None:
    held = await gate.hold(HELD)
    assert gate.approvals.decide(held.id, BOB, True, "looks fine") == {"id": held.id, "status": "approved"}
    outcome = await woken(held.task)  # the rule would wait 300 s
    assert outcome == Outcome("approved", "looks fine", held.id, ("bob",)) and outcome.approved
    assert held.session.frames[-1] == {"event": "approved", "approval": held.id, "reason": "looks fine"}
    row = gate.row(held.id)
    assert (row["status"], json.loads(row["decisions"]), row["reason"]) == ("approved", ["bob"], "looks fine")
    assert ("bob", "approval.approve") in gate.audited
    assert ("approved", held.id) in gate.events
    assert gate.approvals.pending == {}


async def test_a_denial_needs_a_reason_and_ends_the_hold(gate: Gate) -> None:
    held = await gate.hold(HELD)
    with pytest.raises(DecisionRefused, match="a reason is required to deny"):
        gate.approvals.decide(held.id, BOB, False)
    assert gate.row(held.id)["status"] == "pending" and not held.task.done()
    assert gate.approvals.decide(held.id, BOB, False, "not during business hours")["status"] == "denied"
    outcome = await settled(held.task)
    assert (outcome.status, outcome.reason, outcome.by, outcome.approved) == (
        "denied",
        "not during business hours",
        ("bob",),
        False,
    )
    assert gate.row(held.id)["status"] == "denied"


async def test_a_decided_request_cannot_be_decided_again(gate: Gate) -> None:
    held = await gate.hold(HELD)
    gate.approvals.decide(held.id, BOB, False, "no")
    await settled(held.task)
    with pytest.raises(DecisionRefused, match=r"no longer pending \(status denied\)"):
        gate.approvals.decide(held.id, CAROL, True)
    with pytest.raises(DecisionRefused, match="no approval request #999"):
        gate.approvals.decide(999, CAROL, True)


async def test_what_approvers_see_is_redacted(gate: Gate) -> None:
    held = await gate.hold(HELD, text="ALTER USER bob PASSWORD 'hunter2'")
    assert "hunter2" not in gate.row(held.id)["statement"]
    await cancel(held)


async def test_a_failing_listener_does_not_break_a_decision(gate: Gate) -> None:
    def broken(event: str, approval_id: int) -> None:
        raise RuntimeError("watcher bug")

    gate.approvals.listeners.insert(0, broken)
    held = await gate.hold(HELD)
    gate.approvals.decide(held.id, BOB, True)
    assert (await settled(held.task)).approved


# -- who may decide ------------------------------------------------------------------------


async def test_nobody_decides_their_own_request(gate: Gate) -> None:
    held = await gate.hold(HELD, subject=Subject("bob", frozenset({"dba"}), "prod", "postgres"))
    with pytest.raises(DecisionRefused, match="your own request"):
        gate.approvals.decide(held.id, BOB, True)
    with pytest.raises(DecisionRefused, match="your own request"):
        gate.approvals.decide(held.id, BOB, False, "withdrawing it myself")
    assert ("bob", "approval.refused") in gate.audited
    assert gate.row(held.id)["status"] == "pending" and not held.task.done()
    await cancel(held)


async def test_only_the_rules_approver_groups_may_decide(gate: Gate) -> None:
    held = await gate.hold(HELD)
    for approve, reason in [(True, ""), (False, "no")]:
        with pytest.raises(DecisionRefused, match="only members of dba may decide on rule hold-deletes"):
            gate.approvals.decide(held.id, DAVE, approve, reason)
    assert ("dave", "approval.refused") in gate.audited
    assert gate.row(held.id)["status"] == "pending" and not held.task.done()
    gate.approvals.decide(held.id, CAROL, True)
    assert (await settled(held.task)).by == ("carol",)


# -- N of M --------------------------------------------------------------------------------


async def test_n_distinct_approvers_are_needed_and_the_same_one_twice_counts_once(gate: Gate) -> None:
    held = await gate.hold(TWO, text="DROP TABLE t")
    progress = gate.approvals.decide(held.id, BOB, True)
    assert progress == {"id": held.id, "status": "pending", "approvals": 1, "required": 2}
    assert json.loads(gate.row(held.id)["decisions"]) == ["bob"]
    assert ("progress", held.id) in gate.events
    with pytest.raises(DecisionRefused, match="already approved"):
        gate.approvals.decide(held.id, BOB, True)
    assert gate.row(held.id)["status"] == "pending" and not held.task.done()
    assert gate.approvals.decide(held.id, CAROL, True)["status"] == "approved"
    outcome = await settled(held.task)
    assert (outcome.status, outcome.by) == ("approved", ("bob", "carol"))
    assert json.loads(gate.row(held.id)["decisions"]) == ["bob", "carol"]


async def test_one_denial_ends_a_request_that_needs_several_approvals(gate: Gate) -> None:
    held = await gate.hold(TWO, text="DROP TABLE t")
    gate.approvals.decide(held.id, BOB, True)
    gate.approvals.decide(held.id, CAROL, False, "not today")
    outcome = await settled(held.task)
    assert (outcome.status, outcome.by) == ("denied", ("carol",))
