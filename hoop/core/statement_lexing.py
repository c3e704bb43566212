"""Statement text as tokens, for masking what is stored and shown of it (hoop/core/redact.py).

Masking may only rewrite the inside of one token: the body of a string literal or a quoted
name, the text of a comment, a number. So it needs the tokens the server will see, from the
server's own scanner (pglast's `scan` for PostgreSQL) or the gateway's server-faithful lexer
(hoop/core/sql/mysql_lexer.py for MySQL / MariaDB, which follows sql_mode and versioned
comments, unlike a generic SQL tokenizer).

Where the text is stored, the session's string modes are not at hand, so `readings` gives the
tokens under every reading the text can have, as the classifier does (hoop/core/sql/mysql.py):
PostgreSQL with standard_conforming_strings on and, when the text holds a backslash, off;
MySQL with backslash escapes and, when the text holds what other modes read differently,
without them, under ANSI_QUOTES, and with versioned comments read another way. A reading the
server's scanner rejects is dropped (the server would refuse the text under it); a reading the
gateway cannot follow raises `Unreadable`.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from pglast import parser
from pglast.parser import ParseError

from hoop.core.sql.mysql_lexer import MySQLSyntaxError, Tok, lex
from hoop.core.sql.pg_strings import TooManyLiterals, as_conforming

# Token kinds whose inside (`body`) masking may rewrite.
STRING, NAME, NUMBER, COMMENT = "string", "name", "number", "comment"
WORD, OP, VAR = "word", "op", "var"
BODIES = frozenset((STRING, NAME, NUMBER, COMMENT, VAR))  # VAR: a quoted variable name


class Unreadable(ValueError):
    """The text may read in a way the gateway cannot follow: nothing in it can be placed safely."""


class Token(NamedTuple):
    """One token; `body_start:body_end` is the part masking may rewrite (between the quotes,
    inside the comment markers, a whole number). `word`: words and operators upper-case,
    quoted names and variables by name, lower-case. (A tuple: a statement has many tokens.)"""

    kind: str
    start: int
    end: int
    body_start: int
    body_end: int
    word: str


Reading = tuple[Token, ...]


def readings(text: str, dialect: str, *, bodies_only: bool = False) -> list[Reading]:
    """The tokens of `text` under every reading the server may give it (see the module doc);
    empty when the server rejects every one. `dialect`: postgres, mysql or "" (either).
    `bodies_only`: leave out the tokens without a body (words, operators), for a caller that
    only masks inside bodies."""
    out: list[Reading] = []
    if dialect in ("postgres", ""):
        out += _postgres_readings(text, bodies_only)
    if dialect in ("mysql", ""):
        out += _mysql_readings(text, bodies_only)
    return out


# -- PostgreSQL ------------------------------------------------------------------------------

_PG_STRINGS = frozenset(("SCONST", "USCONST", "BCONST", "XCONST"))


def _postgres_readings(text: str, bodies_only: bool) -> list[Reading]:
    out = []
    try:
        out.append(_pg_tokens(text, bodies_only))
    except ParseError:
        pass
    if "\\" in text:  # standard_conforming_strings off: as_conforming gives the text scanned alike when on
        try:
            conforming = as_conforming(text)
            out.append(_pg_tokens(conforming, bodies_only, _offsets(text, conforming)))
        except ParseError:
            pass
        except TooManyLiterals as exc:
            raise Unreadable(str(exc)) from None
    return out


def _pg_tokens(text: str, bodies_only: bool, at: list[int] | None = None) -> Reading:
    """`at` maps offsets in `text` to the offsets in the original text (see `_offsets`)."""
    out = []
    for t in parser.scan(text):
        s, e = t.start, t.end + 1
        raw = text[s:e]
        name = t.name
        if name in _PG_STRINGS:
            if raw.startswith("$"):
                tag = raw.index("$", 1) + 1
                kind, bs, be, word = STRING, s + tag, e - tag, ""
            else:
                kind, bs, be, word = STRING, s + raw.index("'") + 1, e - 1, ""
        elif name in ("ICONST", "FCONST"):
            kind, bs, be, word = NUMBER, s, e, ""
        elif name == "SQL_COMMENT":
            kind, bs, be, word = COMMENT, s + 2, e, ""
        elif name == "C_COMMENT":
            kind, bs, be, word = COMMENT, s + 2, e - 2, ""
        elif name in ("IDENT", "UIDENT") and '"' in raw[:3]:
            q = raw.index('"')
            kind, bs, be, word = NAME, s + q + 1, e - 1, raw[q + 1 : -1].replace('""', '"').lower()
        elif bodies_only:
            continue
        elif name == "IDENT" or t.kind != "NO_KEYWORD":
            kind, bs, be, word = WORD, s, s, raw.upper()
        else:
            kind, bs, be, word = OP, s, s, raw
        if at is not None:
            s, e, bs, be = at[s], at[e], at[bs], at[be]
        out.append(Token(kind, s, e, bs, be, word))
    return tuple(out)


def _offsets(original: str, conforming: str) -> list[int]:
    """For each offset in `conforming` (and its end), the offset in `original`. as_conforming
    only puts an E (or " E") before a quote, or turns the N of N'...' into E; an inserted
    character maps to the character it stands before."""
    at, i, n = [], 0, len(original)
    for j, c in enumerate(conforming):
        if i < n and c == original[i]:
            at.append(i)
            i += 1
        elif c == "E" and i + 1 < n and original[i] in "nN" and original[i + 1] == conforming[j + 1] == "'":
            at.append(i)
            i += 1
        elif c in " E":
            at.append(i)
        else:
            raise Unreadable("the text changed unexpectedly when read with standard_conforming_strings off")
    at.append(n)
    return at


# -- MySQL / MariaDB -------------------------------------------------------------------------

_SIX_DIGIT_VERSION = re.compile(r"/\*M?!\d{6}")
_VERSIONED = re.compile(r"/\*M?!\d{5}")
# Inside the gaps between tokens there are only spaces, comments and versioned-comment markers;
# masking may rewrite the text between the markers, never a marker.
_MARKERS = re.compile(r"--|#|/\*M?!\d{0,6}|/\*|\*/")


def _mysql_readings(text: str, bodies_only: bool) -> list[Reading]:
    # (backslash escapes, ANSI_QUOTES, six-digit versions, skip versioned comments): the
    # readings the classifier weighs when the session's sql_mode and server are not known.
    variants = [(True, False, True, False)]
    if "\\" in text:
        variants.append((False, False, True, False))  # NO_BACKSLASH_ESCAPES
    if '"' in text:
        variants.append((True, True, True, False))  # ANSI_QUOTES: "..." is a name
    if _SIX_DIGIT_VERSION.search(text):
        variants.append((True, False, False, False))  # a server that reads 5 version digits
    if _VERSIONED.search(text):
        variants.append((True, False, True, True))  # a server that skips versioned comments
    out = []
    for backslash, ansi, six, skip in variants:
        try:
            toks, _ = lex(text, backslash=backslash, ansi_quotes=ansi, six_digits=six, server_version=1 if skip else 0)
        except MySQLSyntaxError as exc:
            if not exc.syntax:  # text the server may accept but the gateway cannot read
                raise Unreadable(str(exc)) from None
            continue
        out.append(_my_tokens(text, toks, bodies_only))
    return out


def _my_tokens(text: str, toks: list[Tok], bodies_only: bool) -> Reading:
    out: list[Token] = []
    pos = 0
    for t in toks:
        start, end, kind, raw = t.start, t.end, t.kind, t.text
        if start > pos:
            out += _gap(text, pos, start)
        if kind in ("string", "dstring"):
            out.append(Token(STRING, start, end, start + 1, end - 1, ""))
        elif kind == "ident":
            out.append(Token(NAME, start, end, start + 1, end - 1, t.name))
        elif kind == "number":
            out.append(Token(NUMBER, start, end, start, end, ""))
        elif kind == "var":
            name = raw.lstrip("@")
            quoted = name[:1] in ("'", '"', "`")
            bs, be = (end - len(name) + 1, end - 1) if quoted else (start, start)
            out.append(Token(VAR, start, end, bs, be, (name[1:-1] if quoted else name).lower()))
        elif bodies_only:
            pass
        elif kind == "word":
            out.append(Token(WORD, start, end, start, start, raw.upper()))
        else:
            out.append(Token(OP, start, end, start, start, raw))
        pos = end
    if pos < len(text):
        out += _gap(text, pos, len(text))
    return tuple(out)


def _gap(text: str, start: int, end: int) -> list[Token]:
    """The comment text between two tokens, in pieces between markers (whitespace-only pieces
    hold nothing to mask and are left out)."""
    out = []
    pos = start
    for m in _MARKERS.finditer(text, start, end):
        if text[pos : m.start()].strip():
            out.append(Token(COMMENT, pos, m.start(), pos, m.start(), ""))
        pos = m.end()
    if text[pos:end].strip():
        out.append(Token(COMMENT, pos, end, pos, end, ""))
    return out


# -- shell -----------------------------------------------------------------------------------


def shell_quoted(text: str) -> list[tuple[int, int]]:
    """The insides of the quoted words of a POSIX shell command line ('...', "...", $'...'); an
    unterminated quote runs to the end (the shell then runs nothing)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
        elif c == "'" or (c == "$" and text.startswith("$'", i)):
            start = i + (2 if c == "$" else 1)
            j = start
            while j < n and text[j] != "'":
                j += 2 if c == "$" and text[j] == "\\" else 1
            out.append((start, min(j, n)))
            i = j + 1
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append((i + 1, min(j, n)))
            i = j + 1
        else:
            i += 1
    return out
