"""The MySQL / MariaDB lexer: the tokens the server will see, and its statement boundaries.

`lex` reads the text the way the server does: it keeps the content of executable comments
(`/*! ... */`, `/*!50000 ... */`, MariaDB `/*M!100100 ... */`) as statement text, drops `#`,
`-- ` and `/* */` comments, and follows the session's string modes: whether a backslash escapes
inside strings (off under NO_BACKSLASH_ESCAPES) and whether `"..."` is a string or, under
ANSI_QUOTES, a name. Whitespace is the server's: ASCII space, tab, newline, VT, FF, CR, plus
what the character set's own table adds (NBSP in latin1, not in utf8mb4, where `--<U+00A0>`
starts no comment); `--` followed by a control character (DEL included) starts one.
`split` cuts on `;` except inside the BEGIN ... END bodies of stored programs. The classifier
(`mysql.py`) works on these tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class MySQLSyntaxError(ValueError):
    """The text cannot be split or parsed the way the server would. `syntax`: the server would
    reject it too (not merely a statement the gateway cannot read); `position`: the 0-based
    offset in the text where the error is, when known."""

    def __init__(self, message: str, position: int | None = None, *, syntax: bool = True) -> None:
        super().__init__(message)
        self.position = position
        self.syntax = syntax


@dataclass(slots=True)
class Tok:
    kind: str  # word | ident (backticks) | string | dstring ("...") | number | var (@x, @@x) | op
    text: str
    start: int
    end: int

    @property
    def up(self) -> str:
        return self.text.upper() if self.kind == "word" else ""

    @property
    def name(self) -> str:
        """Identifier value, lower-case, unquoted (backticks or ANSI double quotes)."""
        if self.kind in ("ident", "dstring"):
            q = self.text[0]
            return self.text[1:-1].replace(q + q, q).lower()
        return self.text.lower()


_OPS = ("<=>", "->>", ":=", "<=", ">=", "<>", "!=", "||", "&&", "<<", ">>", "->")
_WORD = re.compile(r"[A-Za-z0-9_$\u0080-\uffff]+")
_NUMBER = re.compile(r"\d+(\.\d*)?([eE][-+]?\d+)?(?![A-Za-z0-9_$])")
_VERSION = re.compile(r"\d{5,6}")
_SPACE = frozenset(" \t\n\v\f\r")
_CONTROL = frozenset(map(chr, (*range(1, 32), 127)))  # NUL is no control character to the server's `--`
_ESC = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a"}


def lex(
    sql: str,
    *,
    backslash: bool = True,
    six_digits: bool = True,
    ansi_quotes: bool = False,
    spaces: str = "",
    dash_comment: str = "",
    server_version: int = 0,
    mariadb: bool = False,
) -> tuple[list[Tok], str]:
    """Tokens plus a "clean" copy of `sql` (same length) with comments and exec-comment markers
    blanked, written the way the SQL parser reads MySQL's default modes: under ANSI_QUOTES a
    `"name"` becomes `` `name` ``, under NO_BACKSLASH_ESCAPES a backslash inside a string
    becomes U+E000 (a plain character that escapes nothing). `spaces`: further characters the
    session's character set counts as whitespace; `dash_comment`: further characters that
    after `--` start a comment (besides whitespace and control characters). `server_version`:
    the server's version id; a versioned comment it does not run (`_runs`) is a comment, whose
    content (quotes included) means nothing. 0: unknown, every versioned comment is read as
    run (the caller reads the other way too)."""
    clean = list(sql)
    toks: list[Tok] = []
    space = _SPACE | frozenset(spaces)
    after_dash = space | frozenset(dash_comment) | _CONTROL
    i, n, in_exec = 0, len(sql), False

    def blank(a: int, b: int) -> None:
        clean[a:b] = " " * (b - a)

    while i < n:
        c = sql[i]
        if c in space:
            i += 1
        elif c == "#" or (sql.startswith("--", i) and (i + 2 >= n or sql[i + 2] in after_dash)):
            j = sql.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif sql.startswith("/*!", i) or sql.startswith("/*M!", i):
            if in_exec:
                raise MySQLSyntaxError("nested executable comment")
            maria = sql[i + 2] != "!"
            j = i + (4 if maria else 3)
            m = _VERSION.match(sql, j)
            if m:
                digits = min(len(m.group()), 6 if six_digits or mariadb else 5)
                version = int(sql[j : j + digits])
                j += digits
                if server_version and not _runs(version, server_version, mariadb, maria):
                    end = _skip_comment(sql, j, i)
                    blank(i, end)
                    i = end
                    continue
            blank(i, j)
            i, in_exec = j, True
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            if j < 0:
                raise MySQLSyntaxError("unterminated comment", i)
            blank(i, j + 2)
            i = j + 2
        elif in_exec and sql.startswith("*/", i):
            blank(i, i + 2)
            i, in_exec = i + 2, False
        elif c in "'\"`":
            name = c == "`" or (c == '"' and ansi_quotes)  # a quoted name: no backslash escapes
            escapes = backslash and not name
            j = i + 1
            while True:
                if j >= n:
                    raise MySQLSyntaxError(f"unterminated quoted text starting at offset {i}", i)
                if sql[j] == "\\" and escapes:
                    j += 2
                elif sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:
                        j += 2
                    else:
                        break
                else:
                    if sql[j] == "\\" and not name:
                        clean[j] = "\ue000"  # NO_BACKSLASH_ESCAPES: a plain character
                    j += 1
            if name and c == '"':
                body = sql[i + 1 : j]
                if "`" in body or '""' in body:
                    raise MySQLSyntaxError(f"quoted name with a quote inside under ANSI_QUOTES at offset {i}", i)
                clean[i] = clean[j] = "`"
            kind = "ident" if name else {"'": "string", '"': "dstring"}[c]
            toks.append(Tok(kind, sql[i : j + 1], i, j + 1))
            i = j + 1
        elif c == "@":
            j = i + 1 + (sql.startswith("@@", i))
            if j < n and sql[j] in "'\"`":
                sub, _ = lex(sql[j:], backslash=backslash, ansi_quotes=ansi_quotes, spaces=spaces)
                j += sub[0].end if sub else 0
            else:
                while j < n and (sql[j].isalnum() or sql[j] in "_$."):
                    j += 1
            toks.append(Tok("var", sql[i:j], i, j))
            i = j
        elif (m := _NUMBER.match(sql, i)) is not None:
            toks.append(Tok("number", m.group(), i, m.end()))
            i = m.end()
        elif (m := _WORD.match(sql, i)) is not None:
            j = m.end()
            if spaces:  # a character-set space (NBSP in latin1) ends a word
                j = next((k for k in range(i, j) if sql[k] in space), j)
            toks.append(Tok("word", sql[i:j], i, j))
            i = j
        else:
            op = next((o for o in _OPS if sql.startswith(o, i)), c)
            toks.append(Tok("op", op, i, i + len(op)))
            i += len(op)
    if in_exec:
        raise MySQLSyntaxError("unterminated executable comment", len(sql))
    return toks, "".join(clean)


def _runs(version: int, server_version: int, mariadb: bool, maria_marker: bool) -> bool:
    """Does the server run a versioned comment's content? MariaDB skips MySQL-only versions
    (50700-99999) unless written `/*M!`."""
    if version > server_version:
        return False
    return not mariadb or maria_marker or not 50700 <= version <= 99999


def _skip_comment(sql: str, j: int, start: int) -> int:
    """The end of a versioned comment the server skips: its first `*/`, past at most one
    nested `/* ... */` (the server allows one level inside); quotes mean nothing in it."""
    depth, n = 0, len(sql)
    while j < n:
        if depth == 0 and sql.startswith("/*", j):
            depth, j = 1, j + 2
        elif sql.startswith("*/", j):
            if depth == 0:
                return j + 2
            depth, j = 0, j + 2
        else:
            j += 1
    raise MySQLSyntaxError("unterminated comment", start)


# Words after which NOT is part of an operator (`a NOT IN`, `NOT NULL`, `NOT EXISTS`) rather than
# a prefix NOT whose reach HIGH_NOT_PRECEDENCE changes.
_NOT_OPERATOR_NEXT = frozenset(("IN", "LIKE", "BETWEEN", "REGEXP", "RLIKE", "NULL", "EXISTS", "SIMILAR"))


def mode_conflict(toks: list[Tok], pipes_as_concat: bool, high_not_precedence: bool) -> MySQLSyntaxError | None:
    """Operators the SQL parser reads the default way where the session's sql_mode reads them
    otherwise: `||` (OR, or a concatenation under PIPES_AS_CONCAT) and a prefix NOT (over the
    whole comparison, or over its first operand under HIGH_NOT_PRECEDENCE). Text using them
    under those modes is refused, naming the mode."""
    for i, t in enumerate(toks):
        if pipes_as_concat and t.kind == "op" and t.text == "||":
            return MySQLSyntaxError(
                "Hoop does not read || under sql_mode PIPES_AS_CONCAT; write CONCAT() or OR", t.start, syntax=False
            )
        if high_not_precedence and t.up == "NOT":
            prev = toks[i - 1].up if i else ""
            nxt = toks[i + 1].up if i + 1 < len(toks) else ""
            if prev != "IS" and nxt not in _NOT_OPERATOR_NEXT:
                return MySQLSyntaxError(
                    "Hoop does not read a prefix NOT under sql_mode HIGH_NOT_PRECEDENCE; use parentheses and !",
                    t.start,
                    syntax=False,
                )
    return None


def unquote_string(text: str, backslash: bool = True) -> str:
    q, body, out, i = text[0], text[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and backslash and i + 1 < len(body):
            nxt = body[i + 1]
            out.append(_ESC.get(nxt, ("\\" + nxt) if nxt in "%_" else nxt))
            i += 2
        elif ch == q and i + 1 < len(body) and body[i + 1] == q:
            out.append(q)
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


_ROUTINES = {"PROCEDURE", "FUNCTION", "TRIGGER", "EVENT", "PACKAGE"}
_BLOCK_OPENERS = {"IF", "LOOP", "WHILE", "REPEAT", "FOR"}  # FOR: MariaDB FOR ... DO ... END FOR
_STMT_START_AFTER = {"BEGIN", "THEN", "ELSE", "DO", "LOOP", "REPEAT"}


def split(toks: list[Tok]) -> list[list[Tok]]:
    """Split on `;`, keeping BEGIN ... END bodies of stored programs (and MariaDB BEGIN NOT ATOMIC) whole."""
    segs: list[list[Tok]] = []
    cur: list[Tok] = []
    depth, routine = 0, False
    for t in toks:
        if depth == 0 and t.kind == "op" and t.text == ";":
            if cur:
                segs.append(cur)
            cur, routine = [], False
            continue
        prev = cur[-1] if cur else None
        cur.append(t)
        u = t.up
        if not u:
            continue
        if depth == 0:
            if cur[0].up == "CREATE" and u in _ROUTINES:
                routine = True
            elif routine and u == "BEGIN" or u == "ATOMIC" and [x.up for x in cur[:3]] == ["BEGIN", "NOT", "ATOMIC"]:
                depth = 1
            continue
        after_end = prev is not None and prev.up == "END"
        at_stmt_start = prev is None or prev.text in (";", ":") or prev.up in _STMT_START_AFTER
        if u == "BEGIN" or (u == "CASE" and not after_end) or (u in _BLOCK_OPENERS and at_stmt_start and not after_end):
            depth += 1
        elif u == "END":
            depth -= 1
    if depth > 0:
        raise MySQLSyntaxError("unterminated BEGIN ... END block")
    if cur:
        segs.append(cur)
    return segs
