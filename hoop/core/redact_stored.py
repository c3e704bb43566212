"""Statement masking (hoop/core/redact.py) with the masking rules and sessions of a store.

The journal writer masks every statement on its way into the store, and the gateway masks a
held statement before approvers see it; both take the masking rules from the store's rule book
(picking up a change at the next batch or hold) and each session's protocol and connection
from the journal's batches, or from the store for a session written earlier.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hoop.core.redact import Masked, StatementMasking, dialect_of

if TYPE_CHECKING:
    from hoop.core.audit import AuditEvent
    from hoop.core.store.base import Store

_EVENT_TEXTS = ("text", "command")  # audit detail keys that hold what a user typed


class StoredStatementMasking:
    """Statement masking in step with the rule book of a store, and the protocol and connection
    of each session (learnt from the journal's batches, else read from the store)."""

    def __init__(self, store: Store) -> None:
        from hoop.core.rulebook import RuleBook

        self.store = store
        self.book = RuleBook(store)
        self.masking = StatementMasking()
        self._marker = -1
        self._sessions: dict[int, tuple[str, str]] = {}

    def refresh(self, batch: Mapping[str, Any] | None = None) -> None:
        """Pick up rule changes; learn the sessions a journal batch names."""
        marker = self.book.marker()
        if marker != self._marker:
            self.masking = StatementMasking(self.book.current()[1])
            self._marker = marker
        if batch is None:
            return
        if len(self._sessions) > 10_000:
            self._sessions.clear()
        for row in batch.get("sessions", ()):
            self._sessions[row["id"]] = (row["protocol"], row["connection"])
        for sid, (_, protocol, _, connection, *_) in batch.get("recordings", {}).items():
            self._sessions.setdefault(sid, (protocol, connection))

    def mask_event(self, event: AuditEvent) -> AuditEvent:
        """`event` with the statement text it carries (`text`; an SSH `command`) masked."""
        detail = event.detail
        if detail:
            for key in _EVENT_TEXTS:
                value = detail.get(key)
                if isinstance(value, str):
                    detail[key] = self.mask(value, detail.get("session"), event.target).text
        return event

    def mask(self, text: str, session: Any, connection: str = "") -> Masked:
        """`text` of a statement in session `session` (its id; None: not from a session)."""
        protocol, known = self._session(session) if isinstance(session, int) else ("", connection)
        return self.masking.mask(text, dialect_of(protocol), known or connection)

    def _session(self, session: int) -> tuple[str, str]:
        hit = self._sessions.get(session)
        if hit is None:
            row = self.store.one("SELECT protocol, connection FROM sessions WHERE id = ?", (session,))
            if row is None:  # not written yet: every SQL reading applies
                return "", ""
            hit = self._sessions[session] = (row["protocol"], row["connection"])
        return hit
