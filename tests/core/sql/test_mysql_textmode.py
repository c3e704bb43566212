"""MySQL classification under the session's text settings (hoop.core.sql.textmode.mysql_mode):
the statement boundaries the server sees under its character set and sql_mode."""

from __future__ import annotations

import pytest

from hoop.core.sql import classify
from hoop.core.sql.textmode import TextModeError, mysql_mode, unsupported_sql_mode

DEFAULT = "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION"


def kinds(raw: bytes, charset: str = "utf8mb4", sql_mode: str = DEFAULT) -> list[str]:
    mode = mysql_mode(charset, sql_mode)
    result = classify(mode.decode(raw), "mysql", mode)
    assert result.error is None, result.error
    return [s.kind for s in result.statements]


def test_mode_from_the_servers_values() -> None:
    mode = mysql_mode("GBK", "ANSI_QUOTES,NO_BACKSLASH_ESCAPES")
    assert (mode.charset, mode.codec, mode.backslash_escapes, mode.ansi_quotes) == ("gbk", "gbk", False, True)
    assert mysql_mode("latin1", "").codec == "cp1252"  # MySQL's latin1 is Windows-1252
    assert mysql_mode("armscii8", "").codec == ""  # no faithful codec: text refused
    assert unsupported_sql_mode("PIPES_AS_CONCAT,ORACLE") == "ORACLE"
    assert unsupported_sql_mode(DEFAULT) == ""


@pytest.mark.parametrize(("charset", "char"), [("gbk", "bf5c"), ("big5", "a45c"), ("sjis", "955c"), ("cp932", "955c")])
def test_a_multibyte_character_ending_in_a_backslash_escapes_nothing(charset: str, char: str) -> None:
    raw = b"SELECT '\\'" + bytes.fromhex(char) + b"' ; DELETE FROM t; -- '"
    assert kinds(raw, charset) == ["select", "delete"]
    assert kinds(b"SELECT '" + bytes.fromhex(char) + b"' AS v", charset) == ["select"]


def test_invalid_multibyte_text_is_refused() -> None:
    with pytest.raises(TextModeError, match='encoding "gbk"'):
        mysql_mode("gbk", DEFAULT).decode(b"SELECT '\x81'")


def test_no_backslash_escapes() -> None:
    assert kinds(b"SELECT 'a\\' AS x ; DELETE FROM t; -- '", sql_mode="NO_BACKSLASH_ESCAPES") == ["select", "delete"]
    assert kinds(b"SELECT 'a\\' AS x ; DELETE FROM t; -- '") == ["select"]
    # Read as the server reads it, the text parses: no refusal of a harmless backslash.
    result = classify("SELECT 'C:\\dir\\' AS path", "mysql", mysql_mode("utf8mb4", "NO_BACKSLASH_ESCAPES"))
    assert result.error is None and [s.kind for s in result.statements] == ["select"]
    # Unterminated at the end: the server runs what comes before; the gateway refuses it all.
    bad = classify(
        "SELECT 'a\\' AS x ; DELETE FROM t; SELECT '", "mysql", mysql_mode("utf8mb4", "NO_BACKSLASH_ESCAPES")
    )
    assert bad.error


def test_ansi_quotes_make_double_quotes_names() -> None:
    assert kinds(b'SELECT 1 AS "a\\" ; DELETE FROM t; -- "', sql_mode="ANSI_QUOTES") == ["select", "delete"]
    mode = mysql_mode("utf8mb4", "ANSI_QUOTES")
    stmt = classify('DELETE FROM "secret" WHERE "id" = "id"', "mysql", mode).statements[0]
    assert stmt.kind == "delete" and stmt.tables == frozenset({"secret"})
    assert classify('SELECT * FROM "a""b"', "mysql", mode).error  # a quote inside: not followed, refused


def test_whitespace_is_the_character_sets() -> None:
    # utf8mb4: NBSP is part of a word, so `--<NBSP>` starts no comment and the DELETE is code.
    raw = "SELECT 1 --\u00a0 FROM (SELECT 2 AS `\u00a0`) q; DELETE FROM t".encode()
    assert kinds(raw) == ["select", "delete"]
    # latin1: NBSP is whitespace.
    assert kinds(b"DELETE\xa0FROM t", "latin1") == ["delete"]
    assert kinds(b"SELECT 1 --\xa0 '\n; DELETE FROM t; -- '", "latin1") == ["select", "delete"]
    # DEL after `--` starts a comment (a control character), as do cp1250's undefined bytes.
    assert kinds(b"SELECT 1 --\x7f '\n; DELETE FROM t; -- '") == ["select", "delete"]
    assert kinds(b"SELECT 1 --\x81 '\n; DELETE FROM t; -- '", "cp1250") == ["select", "delete"]


def test_unknown_mode_keeps_every_reading() -> None:
    # No session (the TUI's preview, `hoop check`): both backslash readings count.
    text = "SELECT 'a\\'; DELETE FROM t; -- '"
    assert "delete" in {s.kind for s in classify(text, "mysql").statements}
    assert "delete" not in {s.kind for s in classify(text, "mysql", mysql_mode("utf8mb4", DEFAULT)).statements}
