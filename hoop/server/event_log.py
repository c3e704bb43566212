"""One log line per event that matters, written from the journal's own record of it.

Every audited action and every finished statement passes through the journal, so this is the
one place that words them for the log (`Journal.on_audit`, `Journal.on_statement`); doors
and the control endpoint add no log calls of their own for these. Levels (README, "Logs"):

- INFO: normal events (a session opens, a statement is held, a decision, a kill, a reload);
- WARNING: refusals and failures (a failed login, a blocked statement, an upstream that
  cannot be reached, a refused decision or control operation, a refused reload);
- ERROR: what loses function (recording unavailable: see the journal and recording_guard,
  which log it themselves, once per outage).

Secrets never: only the fields named in `FIELDS` reach the log, never a statement's text, a
command line or a credential; values are shortened and written inert (log_format.py).
"""

from __future__ import annotations

import logging
from typing import Any

from hoop.core.audit import AuditEvent
from hoop.core.redact import mask_free_text
from hoop.core.store.records import BLOCK, StatementRecord
from hoop.core.store.session_log import SessionLog

log = logging.getLogger("hoop.events")
INFO, WARNING, ERROR, DEBUG = logging.INFO, logging.WARNING, logging.ERROR, logging.DEBUG

# action -> (level, message); the message is formatted with the event's fields.
EVENTS: dict[str, tuple[int, str]] = {
    "session.start": (INFO, "{user} opened session {session} on {connection}"),
    "session.end": (DEBUG, "session {session} of {user} on {connection} ended: {reason}"),
    "login.failure": (WARNING, "login failed for {user} on {door} from {client}: {reason}"),
    "login.throttled": (WARNING, "logins refused for {user} on {door} from {client}: {reason}"),
    "login.preauth_refused": (WARNING, "connection refused before login on {door} from {client}: {reason}"),
    "login.protocol_error": (WARNING, "login failed on {door}: {problem}"),
    "oidc.login_failure": (WARNING, "OIDC login failed for {user}: {reason}"),
    "oidc.login": (INFO, "{user} logged in with OIDC"),
    "approval.request": (INFO, "statement of {user} on {connection} held for approval #{approval} by rule {rule}"),
    "approval.approve": (INFO, "{user} approved #{approval} on {connection}"),
    "approval.deny": (INFO, "{user} denied #{approval} on {connection}: {reason}"),
    "approval.expired": (INFO, "approval #{approval} for {user} on {connection} expired without a decision"),
    "approval.cancelled": (INFO, "approval #{approval} for {user} on {connection} cancelled by the client"),
    "approval.abandoned": (INFO, "approval #{approval} for {user} on {connection} abandoned: the client left"),
    "approval.refused": (WARNING, "decision of {user} on #{approval} refused: {why}"),
    "approval.request_refused": (WARNING, "hold of {user} on {connection} by rule {rule} refused: {reason}"),
    "grant.use": (INFO, "statement of {user} on {connection} let through by grant #{grant} (rule {rule})"),
    "session.kill": (INFO, "{user} killed session {session} on {connection}: {reason}"),
    "upstream.failure": (WARNING, "upstream {connection} failed: {reason}"),
    "control.refused": (WARNING, "control operation refused for {user}: {reason}"),
    "config.reload": (INFO, "configuration reloaded from {target}"),
    "config.reload_refused": (WARNING, "configuration not reloaded from {target}: {why}"),
    "session.moderate.join": (INFO, "{moderator} moderates session {session} of {user} on {connection}"),
    "session.moderate.leave": (INFO, "{moderator} stopped moderating session {session} on {connection}"),
    "session.moderate.pause": (WARNING, "session {session} of {user} on {connection} paused: no moderator"),
    "session.moderate.resume": (INFO, "session {session} on {connection} resumed: {moderator} moderates it"),
    "gateway.stop": (INFO, "gateway stopping"),
    "ssh.hostkey.mismatch": (ERROR, "host key of {connection} does not match the pinned one; refusing to connect"),
}
# Where the event's target goes, by the action's first word (the rest: `target`).
TARGETS = {"login": "door", "session": "connection", "approval": "connection", "grant": "connection"}
TARGETS.update({"upstream": "connection", "oidc": "door", "config": "target", "ssh": "connection"})
# The detail fields that may be logged: identifiers and short reasons, never texts or credentials.
FIELDS = (
    "session",
    "approval",
    "rule",
    "reason",
    "why",
    "problem",
    "client",
    "grant",
    "status",
    "attempts",
    "user",
    "moderator",
)
MAX_VALUE = 300


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_VALUE:
        return value[: MAX_VALUE - 1] + "…"
    return value


class _Fields(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "-"


class EventLog:
    def audited(self, event: AuditEvent) -> None:
        wording = EVENTS.get(event.action)
        if wording is None:
            return
        level, template = wording
        if not log.isEnabledFor(level):
            return
        fields = _Fields(event=event.action, user=event.actor)
        fields[TARGETS.get(event.action.split(".", 1)[0], "target")] = event.target
        for key in FIELDS:
            if event.detail and key in event.detail and not isinstance(event.detail[key], (dict, list)):
                if key == "user" and event.action == "session.kill":
                    fields["session_user"] = _short(event.detail[key])  # the killer is the actor
                else:
                    fields[key] = _short(event.detail[key])
        try:
            message = template.format_map(fields)
        except (ValueError, KeyError, IndexError):  # a field of an unexpected shape: still one line
            message = event.action
        log.log(level, "%s", message, extra={"fields": dict(fields)})

    def finished(self, session: SessionLog, record: StatementRecord) -> None:
        """Blocked statements (the data path's only log line; allowed ones are not logged)."""
        if record.decision != BLOCK or not log.isEnabledFor(WARNING):
            return
        fields = {
            "event": "statement.block",
            "user": session.user,
            "connection": session.connection,
            "door": session.protocol,
            "session": session.id,
            "rule": record.rule,
            # A refusal can quote the statement (a parser's "syntax error at or near ..."):
            # the same detectors that mask stored error texts mask it here.
            "reason": _short(mask_free_text(record.error)),
        }
        log.warning(
            "statement of %s on %s blocked by rule %s (session %s): %s",
            session.user,
            session.connection,
            record.rule,
            session.id,
            fields["reason"],
            extra={"fields": fields},
        )
