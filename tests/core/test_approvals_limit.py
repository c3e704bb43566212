"""`[limits] pending_approvals_per_user`: a request past the limit is refused at once, not
queued; other users' requests and the user's next ones once a request is settled go ahead."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.holds import ALICE, BOB, HELD, Gate, HeldSession, cancel, settled

from hoop.core.pipeline import Decision, Subject
from hoop.core.secrets import Secret
from hoop.core.store.base import open_store

CAROL_ASKS = Subject("carol", frozenset({"dev"}), "prod", "postgres")


@pytest.fixture
def gate(store_target: Path | Secret) -> Iterator[Gate]:
    store = open_store(store_target)
    g = Gate(store)
    g.approvals.pending_per_user = 3
    yield g
    store.close()


def _pending(gate: Gate) -> int:
    return len(gate.store.query("SELECT id FROM approvals WHERE status = 'pending'"))


async def test_a_request_past_the_limit_is_refused_not_queued(gate: Gate) -> None:
    waiting = [await gate.hold(HELD) for _ in range(3)]
    assert all(h.id for h in waiting)
    over = await gate.hold(HELD)
    outcome = await settled(over.task)
    assert over.id == 0 and outcome.status == "denied"
    assert outcome.reason == "too many requests waiting for approval for alice (limit 3)"
    assert ("approval.request_refused", "pending_approvals_per_user") in [
        (a, d.get("reason")) for a, d in over.session.audited
    ]
    assert _pending(gate) == 3  # nothing was stored for the refused one
    other = await gate.hold(HELD, subject=CAROL_ASKS)  # another user's requests are their own
    assert other.id
    gate.approvals.decide(waiting[0].id, BOB, approve=False, reason="no")
    await settled(waiting[0].task)
    again = await gate.hold(HELD)  # a settled request frees a place
    assert again.id
    for held in (*waiting[1:], other, again):
        await cancel(held)
    assert gate.approvals.waiting == {}


async def test_concurrent_holds_cannot_all_slip_past_the_check(gate: Gate) -> None:
    decision = Decision("review", HELD.name, "held", HELD)
    tasks = [
        asyncio.create_task(
            gate.approvals.hold(
                session=HeldSession(),
                subject=ALICE,
                text=f"DELETE FROM t WHERE id = {i}",
                decision=decision,
                notify=print,
            )
        )
        for i in range(6)
    ]
    for _ in range(200):  # until the three refusals are back and the three requests stored
        if sum(t.done() for t in tasks) == 3 and _pending(gate) == 3:
            break
        await asyncio.sleep(0.05)
    refused = [t.result() for t in tasks if t.done()]
    assert [o.status for o in refused] == ["denied"] * 3 and _pending(gate) == 3
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert gate.approvals.waiting == {}
