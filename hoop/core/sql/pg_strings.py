"""PostgreSQL text under `standard_conforming_strings = off`, for a parser that knows only `on`.

With the setting off, the server's scanner reads every plain '...' literal the way it reads an
E'...' literal: a backslash escapes the next character, so `'a\\' , '` is one string, not two.
pglast always scans with the setting on. `as_conforming` rewrites the text into the equivalent
text for `on` by putting an E before each plain literal that holds a backslash (one without
reads the same either way), using pglast's own scanner to find them: scanning left to right,
the first such literal gets its E, and the scan resumes at that literal (the text before it is
unchanged, so its tokens are too). Only literal prefixes change,
so statement boundaries, kinds and names are those the server sees. A U&'...' literal, which
the server's scanner rejects with the setting off, is rejected here too.
"""

from __future__ import annotations

from pglast import parser
from pglast.parser import ParseError

# A literal fixed per scan costs one scan of the rest of the text; past this many, the text is
# refused rather than parsed in quadratic time. Text with many backslashes is classified in
# the parse pool, under its time budget (hoop/core/bigtext.py), never on the event loop.
MAX_LITERALS = 2000
_IDENT_CHAR = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$")


class TooManyLiterals(ValueError):
    pass


def as_conforming(sql: str) -> str:
    """The text the server would parse identically with standard_conforming_strings = on.
    Raises pglast's ParseError where the scanner fails (as the server's would)."""
    if "\\" in sql:  # without a backslash both settings read every literal the same way
        sql = _escape_plain_literals(sql)
    if "&" in sql:
        # With the setting off the server's scanner rejects every U&'...' literal.
        for token in parser.scan(sql):
            if token.name == "USCONST":
                raise ParseError("unsafe use of string constant with Unicode escapes", token.start)
    return sql


def _escape_plain_literals(sql: str) -> str:
    pos = 0
    for _ in range(MAX_LITERALS):
        start = _first_plain_literal(sql, pos)
        if start < 0:
            return sql
        before = sql[start - 1] if start else " "
        if before in "nN" and _is_national_prefix(sql, start):
            # N'...' is NCHAR + a plain literal: E'...' reads the same characters.
            sql = sql[: start - 1] + "E" + sql[start:]
            pos = start - 1
        elif before in _IDENT_CHAR or ord(before) >= 0x80:
            sql = sql[:start] + " E" + sql[start:]  # `date'x'`: keep the name a separate token
            pos = start + 1
        else:
            sql = sql[:start] + "E" + sql[start:]
            pos = start
    raise TooManyLiterals(f"more than {MAX_LITERALS} string literals with standard_conforming_strings off")


def _first_plain_literal(sql: str, pos: int) -> int:
    """Offset of the first '...' literal (not E'', U&'', B'', X'' or $$) at or after `pos`
    that holds a backslash.

    The text after that literal need not scan with the setting on: `'it\\'s'` reads as the
    literal `'it\\'` and an unterminated `'s`. The scanner then stops at the first token it
    cannot end. Every token before that one ends before it, so it scans the same in the text
    cut there: the first plain literal is among them or, failing that, is the token the scanner
    stopped at; any other token there (E'', B'', a comment, ...) reads the same with either
    setting, and the server rejects it too."""
    try:
        tokens = parser.scan(sql[pos:])
    except ParseError as exc:
        stop = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else -1  # a character index
        if not 0 <= stop < len(sql) - pos:
            raise
        first = _first_plain_literal(sql[: pos + stop], pos)
        if first >= 0:
            return first
        if sql[pos + stop] == "'":
            return pos + stop
        raise
    for token in tokens:
        start = pos + token.start
        if token.name == "SCONST" and sql[start] == "'" and "\\" in sql[start : pos + token.end + 1]:
            return start
    return -1


def _is_national_prefix(sql: str, quote: int) -> bool:
    """Is the letter before this quote the scanner's NCHAR (N'...'), not the end of a name?"""
    if quote >= 2 and (sql[quote - 2] in _IDENT_CHAR or ord(sql[quote - 2]) >= 0x80):
        return False
    return True
