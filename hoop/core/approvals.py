"""Held commands: request, wait, decide, expire.

A session task that hits a review rule calls `hold()`, which writes the request, tells the
client, and awaits a future (mitmproxy's intercept/resume model). `decide()` — called by the
gateway's control endpoint on behalf of an approver in another process — resolves that
future at once, so the statement runs within milliseconds of the decision. Nothing polls.
Time-boxed grants let matching statements through without a new hold until they expire.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from hoop.core.durations import bounded, format_span
from hoop.core.errors import HoopError
from hoop.core.redact import dialect_of
from hoop.core.redact_stored import StoredStatementMasking
from hoop.core.store.base import Store, Tx

if TYPE_CHECKING:
    from hoop.core.guardrails import GuardRule
    from hoop.core.identity import Identity
    from hoop.core.pipeline import Decision, Subject


class DecisionRefused(HoopError):
    """An approver's decision was not accepted (not pending, not an approver, own request...)."""


class HeldSession(Protocol):
    """What a hold uses of the session it holds a statement for (a journal SessionLog)."""

    id: int
    held: int

    def touch(self) -> None: ...
    def audit(self, action: str, target: str = "", **detail: Any) -> None: ...
    def frame(self, kind: str, data: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class Outcome:
    status: str  # approved | denied | expired | cancelled | abandoned
    reason: str = ""
    approval_id: int = 0
    by: tuple[str, ...] = ()

    @property
    def approved(self) -> bool:
        return self.status == "approved"


@dataclass
class _Pending:
    id: int
    user: str
    connection: str
    rule: GuardRule
    future: asyncio.Future[Outcome]
    approvals: list[str] = field(default_factory=list)
    grants: list[float | None] = field(default_factory=list)  # the grant each approval asked for


class Approvals:
    def __init__(
        self, store: Store, audit: Callable[..., None], *, max_grant: float = 8 * 3600.0, gateway: str = ""
    ) -> None:
        self.store = store
        self.gateway = gateway  # the gateway whose sessions wait here (several may share the store)
        self.max_grant = max_grant  # [gateway] max_grant: a longer grant is refused, not shortened
        self.audit = audit  # journal.audit(actor, action, target, **detail)
        self.pending: dict[int, _Pending] = {}
        self.listeners: list[Callable[[str, int], None]] = []
        self.statement_text = StoredStatementMasking(store)
        self.waiting: dict[str, int] = {}  # user -> holds in progress

    # -- the held session's side -----------------------------------------------------------

    pending_per_user = 5  # [limits] pending_approvals_per_user; the gateway sets it from the config

    async def hold(
        self, *, session: HeldSession, subject: Subject, text: str, decision: Decision, notify: Callable[[str], None]
    ) -> Outcome:
        rule = decision.review
        if rule is None:  # only a review decision names the rule to hold for
            raise ValueError("hold() needs a review decision")
        text = await asyncio.to_thread(self._masked, text, subject)  # what approvers, the store and the audit see
        grant = await asyncio.to_thread(self._active_grant, subject.user, subject.connection, rule.name)
        if grant is not None:
            session.audit("grant.use", grant=grant["id"], rule=rule.name, text=text[:2000])
            return Outcome("approved", f"grant #{grant['id']} by {grant['granted_by']}", 0, (grant["granted_by"],))
        # [limits] pending_approvals_per_user: counted from here (synchronously, so concurrent
        # holds cannot all pass the check) until the hold ends; one more is refused, not queued.
        waiting = self.waiting.get(subject.user, 0)
        if waiting >= self.pending_per_user:
            reason = f"too many requests waiting for approval for {subject.user} (limit {self.pending_per_user})"
            session.audit(
                "approval.request_refused", rule=rule.name, reason="pending_approvals_per_user", text=text[:2000]
            )
            return Outcome("denied", reason)
        self.waiting[subject.user] = waiting + 1
        try:
            return await self._wait(session, subject, text, decision, rule, notify)
        finally:
            left = self.waiting[subject.user] - 1
            if left:
                self.waiting[subject.user] = left
            else:
                del self.waiting[subject.user]

    async def _wait(
        self,
        session: HeldSession,
        subject: Subject,
        text: str,
        decision: Decision,
        rule: GuardRule,
        notify: Callable[[str], None],
    ) -> Outcome:
        now = time.time()
        approval_id = await asyncio.to_thread(self._insert, session.id, subject, text, rule, decision.reason, now)
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self.pending[approval_id] = _Pending(approval_id, subject.user, subject.connection, rule, future)
        session.held += 1
        session.touch()
        session.audit("approval.request", approval=approval_id, rule=rule.name, text=text[:2000])
        session.frame("e", {"event": "held", "approval": approval_id, "rule": rule.name})
        self._announce("request", approval_id)
        notify(f"held for approval #{approval_id} by rule {rule.name}; waiting up to {format_span(rule.timeout)}")
        try:
            outcome = await asyncio.wait_for(asyncio.shield(future), timeout=rule.timeout)
        except TimeoutError:
            outcome = Outcome("expired", f"no decision within {format_span(rule.timeout)}", approval_id)
            self._close(approval_id, outcome)
        except asyncio.CancelledError:
            # The client went away (or cancelled) while waiting: never run it later.
            self._close(approval_id, Outcome("abandoned", "the client left while waiting", approval_id))
            raise
        session.frame("e", {"event": outcome.status, "approval": approval_id, "reason": outcome.reason})
        return outcome

    def withdraw(self, approval_id: int, reason: str = "cancelled by the client") -> None:
        """A CancelRequest (or Ctrl-C) while held withdraws the request."""
        self._close(approval_id, Outcome("cancelled", reason, approval_id))

    def pending_for_session(self, session_id: int) -> list[int]:
        rows = self.store.query("SELECT id FROM approvals WHERE session_id = ? AND status = 'pending'", (session_id,))
        return [r["id"] for r in rows if r["id"] in self.pending]

    # -- the approver's side ----------------------------------------------------------------

    def decide(
        self, approval_id: int, approver: Identity, approve: bool, reason: str = "", grant_seconds: object = None
    ) -> dict[str, Any]:
        grant: float | None = None
        if grant_seconds is not None:  # checked before anything else: a refused grant decides nothing
            try:
                grant = bounded(grant_seconds, self.max_grant, what="grant", limit="[gateway] max_grant")
            except ValueError as exc:
                raise DecisionRefused(str(exc)) from None
        pending = self.pending.get(approval_id)
        row = self.store.one("SELECT * FROM approvals WHERE id = ?", (approval_id,))
        if row is None:
            raise DecisionRefused(f"no approval request #{approval_id}")
        if pending is None or row["status"] != "pending":
            raise DecisionRefused(f"request #{approval_id} is no longer pending (status {row['status']})")
        rule = pending.rule
        if approver.name == pending.user:
            self.audit(approver.name, "approval.refused", pending.connection, approval=approval_id, why="own request")
            raise DecisionRefused("you cannot decide on your own request")
        allowed = set(rule.approvers)
        if not allowed:  # a rule stored before approvers were required: nobody may decide it
            self.audit(approver.name, "approval.refused", pending.connection, approval=approval_id, why="no approvers")
            raise DecisionRefused(
                f"rule {rule.name} names no approvers, so nobody may decide its requests; "
                "an admin must add approvers to the rule"
            )
        if not allowed.intersection(approver.groups):
            self.audit(
                approver.name, "approval.refused", pending.connection, approval=approval_id, why="not an approver"
            )
            raise DecisionRefused(f"only members of {', '.join(sorted(allowed))} may decide on rule {rule.name}")
        if not approve:
            if not reason:
                raise DecisionRefused("a reason is required to deny")
            self.audit(approver.name, "approval.deny", pending.connection, approval=approval_id, reason=reason)
            self._close(approval_id, Outcome("denied", reason, approval_id, (approver.name,)))
            return {"id": approval_id, "status": "denied"}
        if approver.name in pending.approvals:
            raise DecisionRefused(f"you already approved #{approval_id}; it needs another approver")
        pending.approvals.append(approver.name)
        pending.grants.append(grant)
        self.audit(
            approver.name,
            "approval.approve",
            pending.connection,
            approval=approval_id,
            reason=reason,
            grant_seconds=grant,
        )
        need = max(1, int(rule.approvals))
        if len(pending.approvals) < need:
            self._record_decisions(approval_id, pending.approvals)
            self._announce("progress", approval_id)
            return {"id": approval_id, "status": "pending", "approvals": len(pending.approvals), "required": need}
        # A standing grant stands in for the whole count of approvals: it exists only once the
        # request is approved in full, each approval asked for one, and it lasts the shortest
        # time any of them asked for. One approver's grant never meets a rule that needs two.
        outcome = self._close(approval_id, Outcome("approved", reason, approval_id, tuple(pending.approvals)))
        if not outcome.approved:  # expired in the store meanwhile: nothing runs, nothing is granted
            raise DecisionRefused(f"request #{approval_id} is no longer pending (status {outcome.status})")
        if all(pending.grants):
            seconds = min(s for s in pending.grants if s)
            self._grant(pending, ", ".join(pending.approvals), seconds, approval_id)
        return {"id": approval_id, "status": "approved"}

    def expire_all(self) -> None:
        for approval_id in list(self.pending):
            self._close(approval_id, Outcome("expired", "the gateway stopped", approval_id))

    # -- storage ---------------------------------------------------------------------------

    def _masked(self, text: str, subject: Subject) -> str:
        self.statement_text.refresh()
        return self.statement_text.masking.mask(text, dialect_of(subject.dialect), subject.connection).text

    def _insert(self, session_id: int, subject: Subject, text: str, rule: GuardRule, reason: str, now: float) -> int:
        with self.store.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO approvals(session_id, user, connection, statement, rule, reason, approvers, "
                "required, status, created, expires, gateway) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
                (
                    session_id,
                    subject.user,
                    subject.connection,
                    text,
                    rule.name,
                    reason,
                    json.dumps(list(rule.approvers)),
                    max(1, int(rule.approvals)),
                    "pending",
                    now,
                    now + rule.timeout,
                    self.gateway,
                ),
            )
            return int(cur.fetchone()["id"])

    def _record_decisions(self, approval_id: int, approvers: list[str]) -> None:
        with self.store.transaction() as conn:
            conn.execute("UPDATE approvals SET decisions = ? WHERE id = ?", (json.dumps(approvers), approval_id))

    def _close(self, approval_id: int, outcome: Outcome) -> Outcome:
        """Store how the request ended and wake its hold; returns the outcome that stands."""
        pending = self.pending.pop(approval_id, None)
        with self.store.transaction() as conn:
            changed = conn.execute(
                "UPDATE approvals SET status = ?, decided = ?, decisions = ?, reason = CASE WHEN ? != '' "
                "THEN ? ELSE reason END WHERE id = ? AND status = 'pending'",
                (
                    outcome.status,
                    time.time(),
                    json.dumps(list(outcome.by)),
                    outcome.reason,
                    outcome.reason,
                    approval_id,
                ),
            ).rowcount
            if changed == 0:
                outcome = self._stored_outcome(conn, approval_id, outcome)
        if pending is not None and not pending.future.done():
            pending.future.set_result(outcome)
        if outcome.status in ("expired", "abandoned", "cancelled") and pending is not None:
            self.audit(pending.user, f"approval.{outcome.status}", pending.connection, approval=approval_id)
        self._announce(outcome.status, approval_id)
        return outcome

    @staticmethod
    def _stored_outcome(conn: Tx, approval_id: int, wanted: Outcome) -> Outcome:
        """The request was decided elsewhere first (on a shared store, a surviving gateway
        expires the requests of one it declared lost): what is stored stands, so a request
        expired there is never run here, whatever this gateway was about to do."""
        row = conn.execute("SELECT status, reason FROM approvals WHERE id = ?", (approval_id,)).fetchone()
        status = row["status"] if row is not None else "expired"
        if status not in ("approved", "denied", "expired", "cancelled", "abandoned"):
            status = "denied"
        reason = (row["reason"] if row is not None else "") or wanted.reason or "decided elsewhere"
        return Outcome(status, reason, approval_id, wanted.by if status == wanted.status else ())

    def _grant(self, pending: _Pending, approver: str, seconds: float, approval_id: int) -> None:
        now = time.time()
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO grants(user, connection, rule, granted_by, created, expires, approval_id) "
                "VALUES (?,?,?,?,?,?,?)",
                (pending.user, pending.connection, pending.rule.name, approver, now, now + seconds, approval_id),
            )
        self.audit(
            approver,
            "grant.create",
            pending.connection,
            user=pending.user,
            rule=pending.rule.name,
            seconds=seconds,
            approval=approval_id,
        )

    def _active_grant(self, user: str, connection: str, rule: str) -> dict[str, Any] | None:
        # A grant longer than max_grant (one stored with an endless expiry before grants were
        # bounded, or before the maximum was lowered) lets nothing through; one second of slack
        # absorbs the rounding of `created + seconds`.
        return self.store.one(
            "SELECT id, granted_by, expires FROM grants WHERE user = ? AND connection = ? AND rule = ? "
            "AND expires > ? AND expires - created <= ? ORDER BY expires DESC LIMIT 1",
            (user, connection, rule, time.time(), self.max_grant + 1),
        )

    def _announce(self, event: str, approval_id: int) -> None:
        for listener in list(self.listeners):
            try:
                listener(event, approval_id)
            except Exception:  # a watcher must never break a decision
                pass
