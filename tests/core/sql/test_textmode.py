"""TextMode: decoding a session's bytes as the server will read them."""

from __future__ import annotations

import pytest

from hoop.core.sql.textmode import TextMode, TextModeError, postgres_mode


def test_postgres_modes_follow_the_reported_parameters() -> None:
    assert postgres_mode("UTF8", "on") == TextMode()
    assert postgres_mode("sjis", "off") == TextMode("SJIS", "cp932", backslash_escapes=True)
    assert postgres_mode("SQL_ASCII", "on", "SQL_ASCII").codec == "latin-1"
    assert postgres_mode("SQL_ASCII", "on", "UTF8").codec == "utf-8"  # checked as the server's own
    assert postgres_mode("EUC_TW", "on").codec == ""  # no faithful codec: refused


def test_decode_reads_multibyte_characters_whole() -> None:
    sjis = postgres_mode("SJIS", "on")
    assert sjis.decode(b"SELECT '\x83\x5c'") == "SELECT 'ソ'"  # 0x5C is the second byte, not a backslash
    with pytest.raises(TextModeError, match="SJIS"):
        sjis.decode(b"SELECT '\x81'")  # a lead byte without its second byte


def test_single_byte_sets_never_refuse_and_ascii_always_reads() -> None:
    assert postgres_mode("WIN1252", "on").decode(b"'\x81'") == "'\ufffd'"
    unsupported = postgres_mode("EUC_TW", "on")
    assert unsupported.decode(b"SELECT 1") == "SELECT 1"
    with pytest.raises(TextModeError) as refused:
        unsupported.decode(b"SELECT '\xa4\xa1'")
    assert refused.value.sqlstate == "0A000"


def test_only_high_bytes_and_backslashes_depend_on_settings() -> None:
    assert not TextMode.depends_on_settings(b'SELECT "x" FROM t')
    assert TextMode.depends_on_settings(b"SELECT '\\'")
    assert TextMode.depends_on_settings(b"SELECT '\xe9'")
    assert TextMode.depends_on_settings(b'SELECT "x"', double_quotes=True)
