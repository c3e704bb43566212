"""Bytes that are not UTF-8 are read only inside `_binary'...'` literals, as the server reads them."""

from __future__ import annotations

import pytest

from hoop.core.sql.mysql_binary import binary_literal_text
from hoop.core.sql.textmode import TextMode, mysql_mode

UTF8 = mysql_mode("utf8mb4", "", 101119, mariadb=True)


@pytest.mark.parametrize(
    "raw",
    [
        b"INSERT INTO t VALUES (_binary'\x80\x81\xff')",
        b"insert into t values (_BINARY '\x00\xff\x00', 'ok')",
        b"SELECT _binary'\xff\\'\x80' = _binary/* c */'\xfe'",  # an escaped quote stays inside
        b"SELECT 1; SELECT _binary'\xc3'",
        b"SELECT _binary'\x80\\' OR \x81 -- '",  # the quote is escaped: all one literal
    ],
)
def test_bytes_inside_binary_literals_are_read(raw: bytes) -> None:
    text = binary_literal_text(raw, UTF8)
    assert text is not None and text.encode("utf-8", "surrogateescape") == raw


@pytest.mark.parametrize(
    "raw",
    [
        b"SELECT '\x80'",  # a plain string: the server reads it in the character set
        b"SELECT _utf8mb4'\x80'",
        b"SELECT BINARY '\x80'",  # a cast of text, not an introducer
        b"SELECT _binary'ok', '\x80'",
        b"SELECT `\x80`",
        b"SELECT 1 /* \x80 */",
        b"SELECT 1 -- \x80",
        b"SELECT _binary'\x80' 'then \x81'",  # the second literal of a concatenation
        b"SELECT _binary'\x80",  # unterminated
    ],
)
def test_bytes_anywhere_else_are_refused(raw: bytes) -> None:
    assert binary_literal_text(raw, UTF8) is None


def test_the_string_mode_decides_where_a_literal_ends() -> None:
    raw = b"SELECT _binary'\x80\\', \x81 '"
    # with backslash escapes the literal runs to the last quote; without, \x81 is outside it
    assert binary_literal_text(raw, UTF8) is not None
    no_escapes = mysql_mode("utf8mb4", "NO_BACKSLASH_ESCAPES", 101119, mariadb=True)
    assert binary_literal_text(raw, no_escapes) is None


def test_versioned_comments_are_read_both_ways_when_the_version_is_unknown() -> None:
    raw = b"SELECT /*!99999 _binary */ '\x80'"
    assert binary_literal_text(raw, mysql_mode("utf8mb4", "", 0, mariadb=False)) is None
    assert binary_literal_text(b"SELECT /*!40101 _binary */ '\x80'", UTF8) is not None


def test_other_character_sets_are_not_read_this_way() -> None:
    assert binary_literal_text(b"SELECT _binary'\x80'", TextMode(charset="latin1", codec="cp1252")) is None
