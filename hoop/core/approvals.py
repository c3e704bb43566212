"""Held commands: request, wait, decide, expire.

A session task that hits a review rule calls `hold()`, which writes the request, tells the
client, and awaits a future (mitmproxy's intercept/resume model). `decide()` — called by the
gateway's control endpoint on behalf of an approver in another process — resolves that
future at once, so the statement runs within milliseconds of the decision. Nothing polls.
Time-boxed grants let matching statements through without a new hold until they expire.

Several gateways may share the store: `decide()` works from the stored request, so any of
them decides a request held by any other; the holder learns of it through `remote_wake`
(a notification) and `wake()` (hoop/server/cluster.py), which end the hold with the stored
outcome.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from hoop.core.durations import bounded, format_span
from hoop.core.errors import HoopError
from hoop.core.redact import dialect_of
from hoop.core.redact_stored import StoredStatementMasking
from hoop.core.store.base import Store, Tx
from hoop.core.store.wire_text import storable

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


def stored_outcome(row: dict[str, Any]) -> Outcome:
    """The outcome a decided request's stored row records."""
    return Outcome(row["status"], row["reason"] or "", int(row["id"]), tuple(json.loads(row["decisions"] or "[]")))


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
        # Tells the gateway holding a request decided here that it was (several gateways on
        # one store; the gateway sets it): that gateway then reads the decision from the store.
        self.remote_wake: Callable[[int], None] = lambda approval_id: None

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
            expired = Outcome("expired", f"no decision within {format_span(rule.timeout)}", approval_id)
            outcome = self._close(approval_id, expired)[1]
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
        rows = self.store.query(
            "SELECT id FROM approvals WHERE session_id = ? AND status = 'pending' ORDER BY id", (session_id,)
        )
        return [r["id"] for r in rows if r["id"] in self.pending]

    # -- the approver's side ----------------------------------------------------------------

    def decide(
        self, approval_id: int, approver: Identity, approve: bool, reason: str = "", grant_seconds: object = None
    ) -> dict[str, Any]:
        """Decide a request as `approver`. The request is read from the store, so any gateway
        sharing it decides requests held on any other exactly as its own; approvals gathered so
        far are in the store too, and each write is conditional on what was read (two approvers
        deciding at once through two gateways cannot both count)."""
        grant: float | None = None
        if grant_seconds is not None:  # checked before anything else: a refused grant decides nothing
            try:
                grant = bounded(grant_seconds, self.max_grant, what="grant", limit="[gateway] max_grant")
            except ValueError as exc:
                raise DecisionRefused(str(exc)) from None
        row = self.store.one("SELECT * FROM approvals WHERE id = ?", (approval_id,))
        if row is None:
            raise DecisionRefused(f"no approval request #{approval_id}")
        # Pending in the store but held by nobody: this gateway's own request it no longer waits for.
        held = approval_id in self.pending or (self.store.shared and row["gateway"] != self.gateway)
        if row["status"] != "pending" or not held:
            raise DecisionRefused(f"request #{approval_id} is no longer pending (status {row['status']})")
        user, connection, rule = row["user"], row["connection"], row["rule"]
        if approver.name == user:
            self.audit(approver.name, "approval.refused", connection, approval=approval_id, why="own request")
            raise DecisionRefused("you cannot decide on your own request")
        allowed = set(json.loads(row["approvers"]))  # the rule's approvers when the request was made
        if not allowed:  # a rule stored before approvers were required: nobody may decide it
            self.audit(approver.name, "approval.refused", connection, approval=approval_id, why="no approvers")
            raise DecisionRefused(
                f"rule {rule} names no approvers, so nobody may decide its requests; "
                "an admin must add approvers to the rule"
            )
        if not allowed.intersection(approver.groups):
            self.audit(approver.name, "approval.refused", connection, approval=approval_id, why="not an approver")
            raise DecisionRefused(f"only members of {', '.join(sorted(allowed))} may decide on rule {rule}")
        if not approve:
            if not reason:
                raise DecisionRefused("a reason is required to deny")
            self._decided(row, Outcome("denied", reason, approval_id, (approver.name,)))
            self.audit(approver.name, "approval.deny", connection, approval=approval_id, reason=reason)
            return {"id": approval_id, "status": "denied"}
        approvals: list[str] = json.loads(row["decisions"])
        if approver.name in approvals:
            raise DecisionRefused(f"you already approved #{approval_id}; it needs another approver")
        approvals.append(approver.name)
        grants: list[float | None] = [*json.loads(row["grant_asks"]), grant]  # the grant each approval asked for
        need = max(1, int(row["required"]))
        if len(approvals) < need:
            self._record_decisions(row, approvals, grants)
            self._approved_by(approver.name, connection, approval_id, reason, grant)
            self._announce("progress", approval_id)
            return {"id": approval_id, "status": "pending", "approvals": len(approvals), "required": need}
        # A standing grant stands in for the whole count of approvals: it exists only once the
        # request is approved in full, each approval asked for one, and it lasts the shortest
        # time any of them asked for. One approver's grant never meets a rule that needs two.
        seconds = min(s for s in grants if s) if all(grants) else None
        self._decided(row, Outcome("approved", reason, approval_id, tuple(approvals)), seconds)
        self._approved_by(approver.name, connection, approval_id, reason, grant)
        if seconds is not None:
            self.audit(
                ", ".join(approvals),
                "grant.create",
                connection,
                user=user,
                rule=rule,
                seconds=seconds,
                approval=approval_id,
            )
        return {"id": approval_id, "status": "approved"}

    def _approved_by(self, approver: str, connection: str, approval_id: int, reason: str, grant: float | None) -> None:
        self.audit(approver, "approval.approve", connection, approval=approval_id, reason=reason, grant_seconds=grant)

    def _decided(self, row: dict[str, Any], outcome: Outcome, grant: float | None = None) -> None:
        """Close a request an approver decided, if nobody decided it since it was read; wake it
        here, or (held by another gateway) tell that gateway through `remote_wake`."""
        changed, closed = self._close(outcome.approval_id, outcome, decisions=row["decisions"], grant=(row, grant))
        if not changed:
            raise DecisionRefused(
                f"request #{outcome.approval_id} was decided meanwhile (status {closed.status}); nothing changed"
            )
        if row["gateway"] != self.gateway and self.store.shared:
            self.remote_wake(outcome.approval_id)

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
                    storable(text),  # NUL or bytes that are not UTF-8: escaped, as the journal stores them
                    rule.name,
                    storable(reason),
                    json.dumps(list(rule.approvers)),
                    max(1, int(rule.approvals)),
                    "pending",
                    now,
                    now + rule.timeout,
                    self.gateway,
                ),
            )
            return int(cur.fetchone()["id"])

    def _record_decisions(self, row: dict[str, Any], approvers: list[str], grants: list[float | None]) -> None:
        with self.store.transaction() as conn:
            changed = conn.execute(
                "UPDATE approvals SET decisions = ?, grant_asks = ? WHERE id = ? AND status = 'pending' "
                "AND decisions = ?",
                (json.dumps(approvers), json.dumps(grants), row["id"], row["decisions"]),
            ).rowcount
        if not changed:
            raise DecisionRefused(f"request #{row['id']} changed while you decided; look at it again")

    def _close(
        self,
        approval_id: int,
        outcome: Outcome,
        *,
        decisions: str | None = None,
        grant: tuple[dict[str, Any], float | None] | None = None,
    ) -> tuple[bool, Outcome]:
        """Store `outcome` unless the request was decided already (or, with `decisions`, its
        approvals changed since they were read), and end the hold with what the store says:
        a hold that expires here as another gateway approves it runs, as the store records."""
        pending = self.pending.pop(approval_id, None)
        scope = "" if decisions is None else " AND decisions = ?"
        with self.store.transaction() as conn:
            changed = conn.execute(
                "UPDATE approvals SET status = ?, decided = ?, decisions = ?, reason = CASE WHEN ? != '' "
                f"THEN ? ELSE reason END WHERE id = ? AND status = 'pending'{scope}",
                (
                    outcome.status,
                    time.time(),
                    json.dumps(list(outcome.by)),
                    storable(outcome.reason),
                    storable(outcome.reason),  # an approver's words: no engine refuses them
                    approval_id,
                    *(() if decisions is None else (decisions,)),
                ),
            ).rowcount
            if changed and grant is not None and grant[1] is not None:
                self._grant(conn, grant[0], ", ".join(outcome.by), grant[1])
            stored: dict[str, Any] | None = None
            if not changed:
                stored = conn.execute("SELECT * FROM approvals WHERE id = ?", (approval_id,)).fetchone()
        if stored and stored["status"] != "pending":
            outcome = stored_outcome(stored)
        if pending is not None and not pending.future.done():
            pending.future.set_result(outcome)
        if changed and outcome.status in ("expired", "abandoned", "cancelled") and pending is not None:
            self.audit(pending.user, f"approval.{outcome.status}", pending.connection, approval=approval_id)
        if changed:
            self._announce(outcome.status, approval_id)
        return bool(changed), outcome

    def _grant(self, conn: Tx, row: dict[str, Any], approver: str, seconds: float) -> None:
        now = time.time()
        conn.execute(
            "INSERT INTO grants(user, connection, rule, granted_by, created, expires, approval_id) "
            "VALUES (?,?,?,?,?,?,?)",
            (row["user"], row["connection"], row["rule"], approver, now, now + seconds, row["id"]),
        )

    # -- holds decided through another gateway ---------------------------------------------

    def decided_elsewhere(self, ids: list[int]) -> list[dict[str, Any]]:
        """The stored rows of those of `ids` that are no longer pending (run in a worker thread)."""
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        return self.store.query(
            f"SELECT id, status, reason, decisions FROM approvals WHERE id IN ({marks}) AND status != 'pending'",
            ids,
        )

    def wake(self, rows: list[dict[str, Any]]) -> None:
        """End the holds these stored decisions (made through another gateway) settle."""
        for row in rows:
            pending = self.pending.pop(row["id"], None)
            if pending is not None and not pending.future.done():
                pending.future.set_result(stored_outcome(row))

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
