"""A request another gateway expired in the shared store (it declared this one lost) is never
run here: what the store says stands over what this gateway was about to do. A real SQLite
store; the expiry is the UPDATE a surviving gateway runs (hoop/core/store/gateways.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.holds import BOB, HELD, Gate, settled, woken

from hoop.core.approvals import DecisionRefused
from hoop.core.store.sqlite import SqliteStore

LOST = "gateway gw-a was lost (no heartbeat for 12s)"


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Gate]:
    store = SqliteStore(tmp_path / "hoop.db")
    yield Gate(store)
    store.close()


def expire_elsewhere(gate: Gate, approval_id: int) -> None:
    gate.store.execute(
        "UPDATE approvals SET status = 'expired', decided = 1, reason = ? WHERE id = ? AND status = 'pending'",
        (LOST, approval_id),
    )


async def test_an_approval_after_the_expiry_is_refused_and_nothing_runs(gate: Gate) -> None:
    held = await gate.hold(HELD)
    expire_elsewhere(gate, held.id)
    with pytest.raises(DecisionRefused, match="no longer pending \\(status expired\\)"):
        gate.approvals.decide(held.id, BOB, True, "fine", grant_seconds=600)
    assert not held.task.done() and gate.grants() == []
    gate.approvals.expire_all()  # what a gateway that learns it was declared lost does
    outcome = await woken(held.task)
    assert (outcome.status, outcome.reason, outcome.approved) == ("expired", LOST, False)
    assert gate.row(held.id)["status"] == "expired"


async def test_an_approval_racing_the_expiry_loses_to_it(gate: Gate) -> None:
    """The survivor's UPDATE lands between the approver's read of the request and the close:
    the close matches nothing, the hold ends as stored, and no grant is made."""
    held = await gate.hold(HELD)
    close = gate.approvals._close

    def survivor_strikes_first(approval_id: int, outcome: Any, **kw: Any) -> Any:
        expire_elsewhere(gate, approval_id)  # the approver passed every check: the close comes next
        return close(approval_id, outcome, **kw)

    gate.approvals._close = survivor_strikes_first  # type: ignore[method-assign]
    with pytest.raises(DecisionRefused, match="decided meanwhile \\(status expired\\)"):
        gate.approvals.decide(held.id, BOB, True, "fine", grant_seconds=600)
    outcome = await settled(held.task)
    assert (outcome.status, outcome.reason, outcome.approved) == ("expired", LOST, False)
    assert gate.row(held.id)["status"] == "expired" and gate.grants() == []
    assert ("approved", held.id) not in gate.events
