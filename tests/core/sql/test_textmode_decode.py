"""Reading a PostgreSQL client's bytes as the server does, where Python's codecs differ from the
server's tables (the whole tables are checked against the server in test_textmode_server.py)."""

from __future__ import annotations

import pytest

from hoop.core.sql import TextModeError, classify
from hoop.core.sql.textmode import postgres_mode

# Valid under both readings of the byte before the second quote: one SELECT if that quote ends
# the literal, a SELECT and a DELETE if the byte escapes it (the last quote is then commented out).
SPLIT = b"') AS x, length(') ; DELETE FROM probe ; -- ')"


def kinds(raw: bytes, encoding: str, scs: str = "on") -> list[str]:
    mode = postgres_mode(encoding, scs)
    result = classify(mode.decode(raw), "postgres", mode)
    assert result.error is None, result.error
    return [s.kind for s in result.statements]


def test_shift_jis_2004_reads_0x5c_and_0x7e_as_backslash_and_tilde() -> None:
    mode = postgres_mode("SHIFT_JIS_2004", "on")
    assert mode.decode(b"\xb1\\~") == "\uff71\\~"  # a half-width katakana makes the text non-ASCII
    # The server runs the DELETE: the backslash escapes the quote after it.
    assert kinds(b"SELECT length(E'\xb1\\" + SPLIT, "SHIFT_JIS_2004") == ["select", "delete"]


def test_sjis_reads_a_character_ending_in_0x5c_as_one_character() -> None:
    assert postgres_mode("SJIS", "on").decode(b"\x95\x5c") == "\u8868"  # 表
    assert kinds(b"SELECT length(E'\x95\x5c" + SPLIT, "SJIS") == ["select"]
    assert kinds(b"SELECT length('\x95\x5c" + SPLIT, "SJIS", scs="off") == ["select"]


def test_sjis_reads_the_windows_932_extensions_the_server_accepts() -> None:
    assert postgres_mode("SJIS", "on").decode(b"\x87\x40") == "\u2460"  # ① (NEC row 13)


@pytest.mark.parametrize("byte", [0x80, 0xA0, 0xFD, 0xFE, 0xFF])
def test_sjis_refuses_a_lone_byte_the_server_rejects(byte: int) -> None:
    with pytest.raises(TextModeError, match=f'encoding "SJIS": 0x{byte:02x}'):
        postgres_mode("SJIS", "on").decode(b"SELECT '" + bytes([byte]) + b"'")


def test_big5_reads_the_eten_extensions_the_server_accepts() -> None:
    assert postgres_mode("BIG5", "on").decode(b"\xf9\xd8") == "\u88cf"  # 裏
    assert kinds(b"SELECT length(E'\xa5\x5c" + SPLIT, "BIG5") == ["select"]  # 功 ends in 0x5C
