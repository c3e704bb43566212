"""A held session for unit tests of `Approvals`: a real store (SQLite or PostgreSQL), and a small double of
the session object the doors pass to `hold` (its id, counters, audit and recording frames)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from hoop.core.approvals import Approvals, Outcome
from hoop.core.guardrails import GuardRule
from hoop.core.identity import Identity
from hoop.core.pipeline import Decision, Subject
from hoop.core.store.base import Store

ALICE = Subject("alice", frozenset({"dev"}), "prod", "postgres")
BOB = Identity("bob", frozenset({"dba"}))
CAROL = Identity("carol", frozenset({"dba", "dev"}))
DAVE = Identity("dave", frozenset({"dev"}))  # not an approver of the rules below
HELD = GuardRule("hold-deletes", "review", statements=("delete",), approvers=("dba",), timeout=300)
TWO = GuardRule("two-eyes", "review", statements=("drop table",), approvers=("dba",), approvals=2, timeout=300)


@dataclass
class HeldSession:
    """What `hold` uses of a door's session: its id, counters, audit and recording frames."""

    id: int = 1
    held: int = 0
    touched: int = 0
    audited: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    frames: list[dict[str, Any]] = field(default_factory=list)

    def touch(self) -> None:
        self.touched += 1

    def audit(self, action: str, **detail: Any) -> None:
        self.audited.append((action, detail))

    def frame(self, kind: str, data: dict[str, Any]) -> None:
        self.frames.append(data)


@dataclass
class Held:
    """A statement being held: the waiting task, its request id (0: no request) and notices."""

    session: HeldSession
    task: asyncio.Task[Outcome] = field(init=False)
    id: int = 0
    notices: list[str] = field(default_factory=list)


class Gate:
    """One Approvals over a real store, and the audit lines and announcements it produced."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.audited: list[tuple[str, str]] = []
        self.approvals = Approvals(store, lambda actor, action, target, **_: self.audited.append((actor, action)))
        self.events: list[tuple[str, int]] = []
        self.approvals.listeners.append(lambda event, approval_id: self.events.append((event, approval_id)))

    async def hold(self, rule: GuardRule, text: str = "DELETE FROM t WHERE id = 1", subject: Subject = ALICE) -> Held:
        """Start a hold and return once its request is stored (or a grant let it through)."""
        stored: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def on_request(event: str, approval_id: int) -> None:
            if event == "request" and not stored.done():
                stored.set_result(approval_id)

        self.approvals.listeners.append(on_request)
        held = Held(HeldSession())
        decision = Decision("review", rule.name, f"rule {rule.name} requires review", rule)
        held.task = asyncio.create_task(
            self.approvals.hold(
                session=held.session, subject=subject, text=text, decision=decision, notify=held.notices.append
            )
        )
        either: set[asyncio.Future[Any]] = {stored, held.task}
        try:
            done, _ = await asyncio.wait(either, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.approvals.listeners.remove(on_request)
        assert done, "the hold neither stored a request nor ended"
        held.id = stored.result() if stored.done() else 0
        return held

    def row(self, approval_id: int) -> dict[str, Any]:
        row = self.store.one("SELECT * FROM approvals WHERE id = ?", (approval_id,))
        assert row is not None
        return row

    def grants(self) -> list[dict[str, Any]]:
        return self.store.query("SELECT user, connection, rule, granted_by, approval_id FROM grants")


async def settled(task: asyncio.Task[Outcome]) -> Outcome:
    """The hold's outcome; the rules' 300 s timeouts are far away, so it came from a decision."""
    return await asyncio.wait_for(task, timeout=10)


async def cancel(held: Held) -> None:
    """The client goes away while held (the door cancels the waiting task)."""
    held.task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await held.task


async def woken(task: asyncio.Task[Outcome]) -> Outcome:
    """The hold's outcome within a few turns of the event loop, no timer involved: a decision
    wakes the waiter itself, nothing polls."""
    for _ in range(50):
        if task.done():
            return task.result()
        await asyncio.sleep(0)
    raise AssertionError("the held session was not woken by the decision")
