"""ERR packets from the server, their message masked before the client sees it.

The error code and SQLSTATE stay as they are (clients branch on them); only the message text
goes through the session's `MessageMasker` (MariaDB quotes data as '...'), and the packet is
rebuilt with its new length. Warnings come as the result of SHOW WARNINGS (or SHOW ERRORS):
its Message column is masked the same way, as a message about the statement before it.
"""

from __future__ import annotations

import re

from hoop.core.masking import MaskPlan
from hoop.core.message_masking import MessageMasker
from hoop.server.mysql import codec as c

_SHOW_WARNINGS = re.compile(r"\s*show\s+(?:warnings|errors)\b", re.I)


def is_show_warnings(statement: str) -> bool:
    return _SHOW_WARNINGS.match(statement) is not None


def masked_err(masker: MessageMasker, payload: bytes, statement: str) -> tuple[bytes, str] | None:
    """(the ERR payload with its message masked, the masked message), or None when unchanged."""
    if len(payload) < 3 or payload[0] != c.ERR_HEADER or payload[1:3] == b"\xff\xff":
        return None  # not an error, or a MariaDB progress report
    head = 9 if payload[3:4] == b"#" else 3  # 0xFF, code, ['#' and SQLSTATE]
    text = payload[head:].decode("utf-8", "surrogateescape")
    new = masker.mask(text, statement)
    if new == text:
        return None
    return payload[:head] + new.encode("utf-8", "surrogateescape"), new


def warnings_plan(masker: MessageMasker, plan: MaskPlan | None, names: list[bytes], statement: str) -> MaskPlan | None:
    """The plan of a SHOW WARNINGS / SHOW ERRORS result: its Message column is a server message
    about `statement` (the one before), masked as that statement's ERR message would be."""
    at = next((i for i, name in enumerate(names) if name.lower() == b"message"), None)
    if at is None:
        return plan

    def mask_message(v: bytes) -> bytes:
        text = v.decode("utf-8", "surrogateescape")
        new = masker.mask(text, statement)
        return v if new == text else new.encode("utf-8", "surrogateescape")

    return masker.policy.plan_with_column(plan, at, mask_message)
