"""standard_conforming_strings = off, read with a parser that only knows `on`."""

from __future__ import annotations

import pytest
from pglast.parser import ParseError

from hoop.core.sql import classify
from hoop.core.sql.pg_strings import MAX_LITERALS, TooManyLiterals, as_conforming
from hoop.core.sql.textmode import postgres_mode

OFF = postgres_mode("UTF8", "off")


@pytest.mark.parametrize(
    ("off", "on"),
    [
        ("SELECT 'it\\'s'", "SELECT E'it\\'s'"),
        ("SELECT 'a\\' AS x, ' ; TRUNCATE t; -- '", "SELECT E'a\\' AS x, ' ; TRUNCATE t; -- '"),
        ("SELECT date'x\\'y'", "SELECT date E'x\\'y'"),  # a type name right before the quote
        ("SELECT N'x\\''", "SELECT E'x\\''"),  # NCHAR literal
        ("SELECT E'\\'', $$\\$$, '\\\\'", "SELECT E'\\'', $$\\$$, E'\\\\'"),  # E and dollar untouched
        ("SELECT 1 -- 'x\\'\n, '\\n'", "SELECT 1 -- 'x\\'\n, E'\\n'"),  # comments untouched
        ("SELECT 'plain'", "SELECT 'plain'"),  # no backslash anywhere: nothing to do
    ],
)
def test_plain_literals_become_escape_literals(off: str, on: str) -> None:
    assert as_conforming(off) == on


def test_the_statements_split_as_the_server_splits_them() -> None:
    text = "SELECT 'a\\' AS x, ' ; TRUNCATE t; -- '"
    assert [s.kind for s in classify(text, "postgres").statements] == ["select"]
    assert [s.kind for s in classify(text, "postgres", OFF).statements] == ["select", "truncate"]


def test_unterminated_text_is_a_syntax_error_in_both_modes() -> None:
    assert classify("SELECT '\\", "postgres", OFF).error
    with pytest.raises(ParseError):
        as_conforming("SELECT /* \\ ")


def test_too_many_literals_is_refused_not_parsed_quadratically() -> None:
    text = "SELECT " + ", ".join(["'\\n'"] * (MAX_LITERALS + 1))
    with pytest.raises(TooManyLiterals):
        as_conforming(text)
    assert "more than" in (classify(text, "postgres", OFF).error or "")
