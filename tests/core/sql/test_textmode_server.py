"""The gateway's character table against the server's: every byte sequence the server reads as
characters of a client encoding must decode to the same characters in the gateway, or at least
to the same run of characters with every ASCII character in the same place (which character a
non-ASCII one is does not move a statement boundary; a different count or a backslash, quote or
semicolon that one side sees and the other does not does).

Probed per encoding in PG_CODECS: every byte alone; every high byte followed by every byte; pairs
of high bytes followed by quotes, backslashes, digits and high bytes (every pair for the
encodings with longer characters, those led by 0x8E and 0x8F for the others); and the GB18030
four-byte forms. The server reads each probe with
convert_from(), the same verification and conversion its client-encoding path runs.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from core.sql.pg_server import Server

from hoop.core.sql import TextModeError
from hoop.core.sql.textmode import PG_CODECS, SINGLE_BYTE, postgres_mode

pytestmark = pytest.mark.needs_postgres

HIGH = range(0x80, 0x100)
THIRD = (0x22, 0x27, 0x30, 0x5C, 0x80, 0xA1, 0xFE)
LONGER = frozenset({"UTF8", "EUC_JP", "EUC_JIS_2004", "GB18030"})
# Characters the server accepts and the gateway cannot read (so refuses the text: a usability
# cost, never a wrong reading), per encoding: areas Python's tables lack (NEC row 13 in EUC_JP,
# the user-defined rows of UHC, the postal code mark and the Hangul filler of KS X 1001:2002).
UNREADABLE = {"EUC_JP": 418, "UHC": 189, "EUC_KR": 2, "JOHAB": 1}


def probes(encoding: str) -> list[bytes]:
    out = [bytes([b]) for b in range(1, 0x100)]
    if PG_CODECS[encoding] in SINGLE_BYTE:
        return out
    out += [bytes([lead, trail]) for lead in HIGH for trail in range(1, 0x100)]
    # The EUC single shifts 0x8E and 0x8F start longer characters on the server in some
    # encodings where Python reads two-byte ones.
    leads = HIGH if encoding in LONGER else (0x8E, 0x8F)
    out += [bytes([a, b, c]) for a in leads for b in HIGH for c in THIRD]
    if encoding == "GB18030":
        digits = range(0x30, 0x3A)
        out += [
            bytes([a, b, c, d])
            for a in range(0x81, 0xFF)
            for b in digits
            for c in (0x80, 0x81, 0x84, 0x90, 0xE3, 0xFE, 0xFF, 0x27, 0x5C)
            for d in (*digits, 0x27, 0x5C, 0x81)
        ]
    return out


def shape(text: str) -> str:
    """The text as the scanner tells its characters apart: ASCII ones matter, others do not."""
    return "".join(ch if ch < "\x80" else "\u00b7" for ch in text)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    conn = Server()
    yield conn
    conn.close()


@pytest.mark.parametrize("encoding", list(PG_CODECS))
def test_gateway_reads_each_character_as_the_server_does(server: Server, encoding: str) -> None:
    mode = postgres_mode(encoding, "on")
    batch = probes(encoding)
    wrong: list[str] = []
    unreadable = gateway_only = 0
    for raw, theirs in zip(batch, server.read(encoding, batch), strict=True):
        try:
            ours: str | None = mode.decode(raw)
        except TextModeError:
            ours = None
        if theirs is None:
            gateway_only += ours is not None  # the server refuses the whole text: nothing runs
        elif ours is None:
            unreadable += 1
        elif shape(ours) != shape(theirs):
            wrong.append(f"{raw.hex(' ')}: server {theirs!r}, gateway {ours!r}")
    counts = f"{len(batch)} probes, {unreadable} only the server reads, {gateway_only} only the gateway reads"
    assert not wrong, f"{encoding} ({counts}) reads differently:\n" + "\n".join(wrong[:20])
    assert unreadable <= UNREADABLE.get(encoding, 0), f"{encoding}: {counts}"
