"""Errors, notices and notifications from the server, masked before the client sees them.

ErrorResponse and NoticeResponse keep the fields that name the message's kind and place
(severity, SQLSTATE, position, the server's source file, line and routine, and the schema,
table, column, type and constraint names); every other field (message, detail, hint, context,
internal query, and fields later servers add) goes through the session's `MessageMasker`. A
message raised by PL/pgSQL's RAISE is the statement's own text (its context ends "at RAISE"),
and so is the payload of a notification this session's backend sent: those are masked whole
where the statement (for a notification: any statement of the transaction, delivered at its
COMMIT) names a masked column. A notification from another backend is masked by
the values seen in results and the detectors only: its statement is not this session's.
"""

from __future__ import annotations

import struct

from hoop.core.message_masking import MessageMasker
from hoop.server.postgres import codec, framing

ERR, NOTICE, NOTIFY = (ord(c) for c in "ENA")
_KEPT = frozenset("SVCPpFLRstcdn")
_COMPOSED = frozenset("MDH")  # what RAISE composes: MESSAGE, DETAIL, HINT


def masked_fields(masker: MessageMasker, fields: dict[str, str], statement: str) -> dict[str, str] | None:
    """The fields with their free text masked, or None when nothing changed."""
    raised = fields.get("W", "").endswith("at RAISE")
    out: dict[str, str] | None = None
    for code, text in fields.items():
        if code in _KEPT:
            continue
        new = masker.mask(text, statement, composed=raised and code in _COMPOSED)
        if new != text:
            if out is None:
                out = dict(fields)
            out[code] = new
    return out


def fields_message(type_byte: bytes, fields: dict[str, str]) -> bytes:
    return codec.message(type_byte, b"".join(k.encode() + codec.cstr(v) for k, v in fields.items()) + b"\0")


def masked_notification(masker: MessageMasker, msg: memoryview, own_pid: int, statement: str) -> bytes | None:
    """A NotificationResponse with its payload masked, or None when nothing changed."""
    body = bytes(msg[5:])
    if len(body) < 6:
        raise framing.ProtocolViolation("NotificationResponse too short")
    pid = struct.unpack_from("!i", body)[0]
    end = body.find(b"\0", 4)
    tail = body.find(b"\0", end + 1) if end >= 0 else -1
    if end < 0 or tail < 0:
        raise framing.ProtocolViolation("NotificationResponse: string is missing its NUL terminator")
    payload = body[end + 1 : tail].decode("utf-8", "surrogateescape")
    new = masker.mask(payload, statement if pid == own_pid else "", composed=True)
    if new == payload:
        return None
    return codec.message(b"A", body[: end + 1] + codec.cstr(new))
