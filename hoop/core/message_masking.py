"""Masking of the server's own messages: errors, notices, notifications. Pure, no I/O.

Servers quote data in their messages (`invalid input syntax for type integer: "..."`,
`XPATH syntax error: '...'`), a RAISE prints whatever it was given and `pg_notify` delivers
any text. Each text that can carry data goes through three steps, in this order:

1. Fail closed on quotes. When the statement that caused the message names a column a column
   rule masks (its words matched against the column part of the rules' patterns, or the table
   part of a "table.column" pattern), every quoted span of the message ("..." on PostgreSQL,
   '...' on MySQL/MariaDB, and PostgreSQL's "Failing row contains (...)" and "Key (...)=(...)"
   details) is masked in the strongest style of those rules, unless its text
   appears in the statement itself (an identifier or literal the user wrote) or is one of the
   server's fixed phrases. Texts the statement composed whole (a RAISE message, a notification
   sent by this session) are masked whole under the same condition.
2. Values seen in results. The original values of columns masked whole in this session's
   results are remembered (`SeenValues`: bounded, in memory only, never stored or logged) and
   masked where they reappear, in the form the result showed.
3. Content detectors: every detector of every rule that applies runs over the text.

Nothing changes when no rule applies: the caller forwards the server's bytes unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from hoop.core.detectors import REDACTED
from hoop.core.masking import MaskPolicy

# A few thousand distinct values of at least 4 characters, oldest first out.
SEEN_LIMIT = 4096
SEEN_MIN_LENGTH = 4

# MariaDB names parts of a statement in quotes ("Unknown column 'x' in 'field list'").
_SERVER_PHRASES = frozenset(
    {
        "field list",
        "where clause",
        "order clause",
        "group statement",
        "having clause",
        "on clause",
        "in/all/any subquery",
    }
)


def _quoted(quote: str) -> re.Pattern[str]:
    """A quoted span whose closing quote is followed by the end, a space or punctuation: servers
    do not escape quotes inside the data they quote, so `"a"b"` is one span."""
    q = re.escape(quote)
    return re.compile(f"{q}(.*?){q}(?=$|[\\s,.;:)\\]])", re.S)


_QUOTED = {'"': _quoted('"'), "'": _quoted("'")}
# Where else the servers put data in a message: PostgreSQL's row and key details.
_ROWS: dict[str, tuple[re.Pattern[str], ...]] = {
    '"': (re.compile(r"^Failing row contains \((.*)\)\.?$", re.S), re.compile(r"^Key \(.*?\)=\((.*)\)", re.S)),
    "'": (),
}


class SeenValues:
    """Original value -> masked form, for the columns masked whole in one session's results.

    Two generations of at most SEEN_LIMIT / 2 values each: when the young one is full it becomes
    the old one and the oldest are forgotten, so the last SEEN_LIMIT / 2 distinct values at
    least are always kept, at O(1) per value on the row path."""

    __slots__ = ("young", "old")

    def __init__(self) -> None:
        self.young: dict[bytes, bytes] = {}
        self.old: dict[bytes, bytes] = {}

    def wrap(self, mask: Callable[[bytes], bytes | None]) -> Callable[[bytes], bytes | None]:
        """`mask`, also remembering each value it masks."""
        half = SEEN_LIMIT // 2

        def remembering(v: bytes) -> bytes | None:
            nv = mask(v)
            if len(v) >= SEEN_MIN_LENGTH:
                young = self.young
                if v not in young:
                    young[v] = REDACTED if nv is None else nv
                    if len(young) >= half:
                        self.old, self.young = young, {}
            return nv

        return remembering

    def replace_in(self, text: str) -> str:
        known = {**self.old, **self.young}
        if not known:
            return text
        raw = text.encode("utf-8", "surrogateescape")
        hits = [v for v in known if v in raw]
        if not hits:
            return text
        for v in sorted(hits, key=len, reverse=True):  # a longer value first: it may hold a shorter one
            raw = raw.replace(v, known[v])
        return raw.decode("utf-8", "surrogateescape")


class MessageMasker:
    """Masks message texts of one session: `quote` is how its server quotes data in them."""

    __slots__ = ("policy", "seen", "_spans")

    def __init__(self, policy: MaskPolicy, seen: SeenValues, quote: str) -> None:
        self.policy = policy
        self.seen = seen
        self._spans = (*_ROWS[quote], _QUOTED[quote])  # group 1 of each: data the server quotes

    def mask(self, text: str, statement: str, *, composed: bool = False) -> str:
        """`text` of a message caused by `statement` ("" when unknown), masked. `composed`: the
        whole text is the statement's own output (a RAISE message, a notification payload)."""
        if not text:
            return text
        style = self.policy.style_named_in(statement) if statement else None
        if style is not None:
            text = self._fail_closed(text, statement, style, composed)
        text = self.seen.replace_in(text)
        return self.policy.apply_text(text)

    def _fail_closed(self, text: str, statement: str, style: str, composed: bool) -> str:
        lowered = statement.lower()
        mask = self.policy.message_mask(style)

        def known(words: str) -> bool:
            return words.lower() in lowered or words.lower() in _SERVER_PHRASES

        if composed:
            return text if known(text) else mask(text)

        def one(m: re.Match[str]) -> str:
            inner = m.group(1)
            if not inner or known(inner):
                return m.group(0)
            whole, start, end = m.group(0), m.start(1) - m.start(0), m.end(1) - m.start(0)
            return f"{whole[:start]}{mask(inner)}{whole[end:]}"

        for span in self._spans:
            text = span.sub(one, text)
        return text
