"""standard_conforming_strings = off: text the server runs is read, even where the same text does
not scan with the setting on (each expectation is what the server runs, as the parity test in
test_parity_postgres.py checks against the real server)."""

from __future__ import annotations

import pytest

from hoop.core.sql import classify
from hoop.core.sql.textmode import postgres_mode

OFF = postgres_mode("UTF8", "off")


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 'it\\'s'", ["select"]),  # with the setting on: 'it\' and an unterminated 's'
        ("DELETE FROM t WHERE n = length('\\'')", ["delete"]),
        ("SELECT 'a', 'b\\'', 'c'; DELETE FROM t", ["select", "delete"]),
        ("SELECT x'1F', 'a\\'b'", ["select"]),  # with the setting on the scanner stops at b'
        ("SELECT 'a'\n'b\\'c'", ["select"]),  # a continued literal reads as its first part does
        ("SELECT n'\\'';DELETE FROM t", ["select", "delete"]),
        ("SELECT 'é\\'', 'x\\'y'; DELETE FROM t", ["select", "delete"]),
        ("SELECT 'a\\' AS x, ' ; DELETE FROM t; -- '", ["select", "delete"]),
    ],
)
def test_literals_that_do_not_scan_with_the_setting_on(sql: str, expected: list[str]) -> None:
    result = classify(sql, "postgres", OFF)
    assert result.error is None, result.error
    assert [s.kind for s in result.statements] == expected


@pytest.mark.parametrize("sql", ["SELECT 1 /* \\", "SELECT E'a\\' ; DELETE FROM t", "SELECT 'a\\'"])
def test_text_the_server_rejects_too_is_still_refused(sql: str) -> None:
    result = classify(sql, "postgres", OFF)
    assert result.error and not result.statements


@pytest.mark.parametrize(
    "sql", ["SELECT U&'d\\0061t'", "SELECT 1; SELECT u&'x!0061' UESCAPE '!'", "SELECT 'a\\\\' || U&'b'"]
)
def test_unicode_escape_literals_are_refused_as_the_server_does(sql: str) -> None:
    result = classify(sql, "postgres", OFF)
    assert result.error and "Unicode escapes" in result.error
    assert classify(sql, "postgres", postgres_mode("UTF8", "on")).error is None


@pytest.mark.parametrize("sql", ['SELECT 1 AS U&"d\\0061t"', "SELECT 'U&''x'''", "SELECT 1 & 3, 'a\\\\'"])
def test_unicode_names_and_ampersands_elsewhere_still_read(sql: str) -> None:
    assert classify(sql, "postgres", OFF).error is None
