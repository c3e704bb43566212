"""What a notification says: one approval event as a signed JSON body or a Slack line.

Pure: the gateway (hoop/server/notify.py) takes an event from a row of the approvals table
as it is when the event happens, and sends the body this module makes. The statement is the
masked text the approval stores (hoop/core/redact.py), never what the client typed.

Signature (JSON bodies): `X-Hoop-Signature: sha256=HEX`, where HEX is the HMAC-SHA256, keyed
with the target's secret, of `TIMESTAMP.BODY` (the `X-Hoop-Timestamp` header, Unix seconds,
a dot, the raw body bytes). A receiver recomputes it, compares in constant time and rejects
timestamps more than a few minutes old, so a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import asdict, dataclass
from typing import Any

from hoop.core.visible import visible

# Approvals._announce event -> the event a target names in `events`
KINDS = {
    "request": "requested",
    "progress": "progress",
    "approved": "decided",
    "denied": "decided",
    "expired": "decided",
    "cancelled": "decided",
    "abandoned": "decided",
}
SLACK_STATEMENT = 200  # characters of statement text in a Slack line


@dataclass(frozen=True)
class ApprovalEvent:
    event: str  # approval.requested | approval.progress | approval.decided
    approval: int
    rule: str
    user: str
    connection: str
    statement: str  # masked as stored
    time: float
    decision: str = ""  # approved | denied | expired | cancelled | abandoned (decided only)
    approvers: tuple[str, ...] = ()  # who approved (progress and decided)
    required: int = 1

    @property
    def kind(self) -> str:
        return self.event.removeprefix("approval.")


def event_from_row(announced: str, row: dict[str, Any], now: float) -> ApprovalEvent | None:
    """The event for one Approvals announcement, from the approval's stored row."""
    kind = KINDS.get(announced)
    if kind is None:
        return None
    try:
        approvers = tuple(json.loads(row.get("decisions") or "[]"))
    except ValueError:
        approvers = ()
    return ApprovalEvent(
        event=f"approval.{kind}",
        approval=int(row["id"]),
        rule=str(row["rule"]),
        user=str(row["user"]),
        connection=str(row["connection"]),
        statement=str(row["statement"]),
        time=now,
        decision=announced if kind == "decided" else "",
        approvers=approvers if kind != "requested" else (),
        required=int(row.get("required") or 1),
    )


def json_body(event: ApprovalEvent) -> bytes:
    body = asdict(event)
    body["approvers"] = list(event.approvers)
    if event.kind != "decided":
        del body["decision"]
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def slack_body(event: ApprovalEvent) -> bytes:
    return json.dumps({"text": slack_text(event)}, ensure_ascii=False).encode()


def slack_text(event: ApprovalEvent) -> str:
    """One readable line; user text is made inert and cannot mention, link or format."""
    who = f"{_inert(event.user)} on {_inert(event.connection)} (rule {_inert(event.rule)})"
    if event.kind == "requested":
        return (
            f"Hoop: {who} is held for approval #{event.approval}: `{_statement(event.statement)}`"
            f" (decide with `hoop approve {event.approval}` or `hoop deny {event.approval}`)"
        )
    if event.kind == "progress":
        return (
            f"Hoop: #{event.approval} by {who} has {len(event.approvers)} of {event.required} approvals"
            f" ({', '.join(_inert(a) for a in event.approvers)})"
        )
    by = f" by {', '.join(_inert(a) for a in event.approvers)}" if event.approvers else ""
    return f"Hoop: #{event.approval} by {who} {event.decision}{by}"


def _statement(text: str) -> str:
    one_line = " ".join(text.split())
    if len(one_line) > SLACK_STATEMENT:
        one_line = one_line[: SLACK_STATEMENT - 1] + "…"
    return _inert(one_line).replace("`", "'")


def _inert(text: str) -> str:
    # Slack reads <...> as links and mentions (<!channel>) and & as the start of an escape.
    return visible(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
