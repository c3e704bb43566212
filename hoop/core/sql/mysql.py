"""MySQL / MariaDB classification: our own lexer (mysql_lexer.py) decides what the server will see, sqlglot parses DML.

Why a lexer of our own: the server runs the content of executable comments (`/*! ... */`,
`/*!50000 ... */`, MariaDB `/*M!100100 ... */`), treats `#` and `-- ` as comments, splits on `;`
except inside stored-program bodies, and sqlglot handles none of that faithfully. It is also
lenient: `FLUSH PRIVILEGES` parses as an alias and `SHUTDOWN` as a column. So the statement
kind always comes from the first keywords; sqlglot is used only where its tree is trustworthy
(SELECT / INSERT / REPLACE / UPDATE / DELETE / DO), and if it raises, the classification fails.
The text is read under the session's string modes (`TextMode`: NO_BACKSLASH_ESCAPES, ANSI_QUOTES),
as the MySQL door tracks them from the server. Where they are genuinely unknown (no mode given:
the TUI's preview, `hoop check` of recorded text) every backslash reading is classified and the
union kept; so are both readings of 5- vs 6-digit version comments (the server's version).
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from functools import lru_cache

import sqlglot
from sqlglot import exp

from .model import PLANNED_ONLY, Classification, Statement
from .mysql_bodies import body_start, body_statements, parameters, values_in_where
from .mysql_effects import alter_table_effects, dml_effects, dml_where, reaches_other_sessions, replaced_effects
from .mysql_lexer import MySQLSyntaxError, Tok, lex, mode_conflict, split, unquote_string
from .mysql_words import (
    INTO_STOP,
    MODIFIERS,
    NAME_BEFORE,
    NOT_FUNCS,
    OBJECTS,
    PASSWORD_TABLES,
    SIMPLE,
    STARTERS,
    TABLE_OBJECT_KINDS,
    TYPES,
)
from .textmode import MYSQL_DASH_COMMENT_BYTES, MYSQL_SPACE_BYTES, UTF8, TextMode

logging.getLogger("sqlglot").setLevel(logging.ERROR)  # its "falling back to Command" warnings are noise here


# ---- classification of one segment ----


class _Seg:
    """One statement: its tokens, the original text and the comment-free text sqlglot sees."""

    def __init__(self, toks: list[Tok], sql: str, clean: str, mode: TextMode | None = None) -> None:
        self.toks, self.sql, self.clean = toks, sql, clean
        self.mode = mode  # the session's string modes; None: unknown (bodies take every reading)
        self.text = sql[toks[0].start : toks[-1].end]
        self.words = [t.up for t in toks]

    def word(self, i: int) -> str:
        return self.words[i] if i < len(self.words) else ""

    def index(self, word: str, start: int = 0) -> int:
        return next((i for i in range(start, len(self.words)) if self.words[i] == word), -1)

    def clean_from(self, i: int, blanks: tuple[tuple[int, int], ...] = ()) -> str:
        text = self.clean[self.toks[i].start : self.toks[-1].end] if i < len(self.toks) else ""
        base = self.toks[i].start if i < len(self.toks) else 0
        for a, b in blanks:
            text = text[: a - base] + " " * (b - a) + text[b - base :]
        return text

    def name_at(self, i: int) -> tuple[str, int]:
        """Read a possibly qualified name starting at token i; returns (name, next index)."""
        parts: list[str] = []
        while i < len(self.toks) and self.toks[i].kind in ("word", "ident", "dstring"):
            parts.append(self.toks[i].name)
            if i + 1 < len(self.toks) and self.toks[i + 1].text == "." and i + 2 < len(self.toks):
                i += 2
            else:
                i += 1
                break
        return ".".join(parts), i


def _scan(seg: _Seg, functions: set[str], flags: set[str], tables: set[str]) -> None:
    """Token-level facts that hold whatever the parser makes of the statement."""
    toks = seg.toks
    for i, t in enumerate(toks):
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        prev_word = toks[i - 1].up if i else ""
        if (
            t.kind in ("word", "ident")
            and nxt is not None
            and nxt.text == "("
            and t.up not in NOT_FUNCS
            and t.up not in TYPES
            and prev_word not in NAME_BEFORE
        ):
            qual = toks[i - 2].name + "." if i >= 2 and toks[i - 1].text == "." else ""
            functions.add(qual + t.name)
            if t.name == "load_file":
                flags.add("server_file")
        if t.up in ("OUTFILE", "DUMPFILE", "INFILE"):
            flags.add("server_file")
        if t.kind in ("word", "ident") and t.name == "authentication_string":
            flags.add("password_hash_read")
        if t.kind in ("word", "ident", "dstring") and t.name == "mysql" and nxt is not None and nxt.text == ".":
            name = seg.name_at(i)[0]
            if name in PASSWORD_TABLES:
                flags.add("password_hash_read")
                tables.add(name)


def _parse(text: str, base: int | None = None) -> exp.Expr:
    """One statement's tree; `base` is the offset of `text` in the whole query (None when the
    text was rebuilt), so a syntax error can say where it is."""
    try:
        trees = [t for t in sqlglot.parse(text, read="mysql") if t is not None]
    except sqlglot.errors.ParseError as exc:
        message = exc.errors[0].get("description", "") if exc.errors else str(exc).splitlines()[0]
        message = re.sub(r"<Token token_type: [^,]*, text: ([^,]*),[^>]*>", r"'\1'", str(message))
        message = re.sub(r" for <class '[\w.]*?(\w+)'>", r" in \1", message)
        raise MySQLSyntaxError(message, _error_offset(exc, text, base)) from exc
    except sqlglot.errors.SqlglotError as exc:
        raise MySQLSyntaxError(str(exc).splitlines()[0]) from exc
    if len(trees) != 1 or isinstance(trees[0], exp.Command):
        raise MySQLSyntaxError(f"statement not understood: {text.strip()[:60]!r}", syntax=False)
    return trees[0]


def _error_offset(exc: sqlglot.errors.ParseError, text: str, base: int | None) -> int | None:
    """sqlglot reports the line and the 1-based column where the offending token ends."""
    if base is None or not exc.errors:
        return None
    err = exc.errors[0]
    line, col, token = err.get("line"), err.get("col"), err.get("highlight") or ""
    if not isinstance(line, int) or not isinstance(col, int):
        return None
    starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
    if not 1 <= line <= len(starts):
        return None
    return base + max(0, min(len(text), starts[line - 1] + col - len(token)))


def _tables_of(tree: exp.Expr) -> set[str]:
    return {(f"{t.db}.{t.name}" if t.db else t.name).lower() for t in tree.find_all(exp.Table) if t.name}


def _string_body(seg: _Seg, i: int, backslash: bool) -> str | None:
    """Concatenated literal strings from token i to the end ('a' 'b' is 'ab'), or None if not all literal."""
    rest = seg.toks[i:]
    if not rest or any(t.kind not in ("string", "dstring") for t in rest):
        return None
    return "".join(unquote_string(t.text, backslash) for t in rest)


def _sub(seg: _Seg, i: int) -> _Seg:
    return _Seg(seg.toks[i:], seg.sql, seg.clean, seg.mode)


def _dml(seg: _Seg, first: int, tables: set[str], inner: list[Statement]) -> tuple[str, str | None]:
    """SELECT / WITH / INSERT / REPLACE / UPDATE / DELETE via sqlglot: returns (kind, where);
    what REPLACE and ON DUPLICATE KEY UPDATE also do goes to `inner`."""
    blanks: list[tuple[int, int]] = []
    w0 = seg.word(first)
    if w0 in ("SELECT", "WITH", "TABLE", "VALUES", ""):
        # INTO OUTFILE/DUMPFILE/@var clauses: sqlglot cannot parse them; their facts come from _scan.
        i = seg.index("INTO", first)
        while i >= 0:
            j = i + 1
            while j < len(seg.toks) and seg.words[j] not in INTO_STOP and seg.toks[j].text not in (")", ";"):
                j += 1
            blanks.append((seg.toks[i].start, seg.toks[j - 1].end))
            i = seg.index("INTO", j)
    j = first + 1
    while seg.word(j) in MODIFIERS:
        blanks.append((seg.toks[j].start, seg.toks[j].end))
        j += 1
    text = seg.clean_from(0, tuple(blanks))  # from token 0: keep the parentheses of (SELECT ...) UNION ...
    if w0 == "REPLACE":
        text = "INSERT " + text[len("REPLACE") :]
    tree = _parse(text, seg.toks[0].start)
    tables |= _tables_of(tree)
    inner.extend(dml_effects(tree, w0 == "REPLACE", seg.text))
    if isinstance(tree, exp.Delete | exp.Update):
        kind = "delete" if isinstance(tree, exp.Delete) else "update"
        return kind, dml_where(tree, seg.mode is not None and seg.mode.empty_string_is_null)
    if isinstance(tree, exp.Insert):
        return ("replace" if w0 == "REPLACE" else "insert"), None
    if isinstance(tree, exp.Query | exp.Values):
        return "select", None
    raise MySQLSyntaxError(f"statement not understood: {seg.text[:60]!r}")


def _object(seg: _Seg, start: int) -> tuple[str, int]:
    """First object keyword (TABLE, USER, ...) within the next few words, and the index after it."""
    for i in range(start, min(start + 24, len(seg.toks))):  # past OR REPLACE, DEFINER=..., SQL SECURITY ...
        if seg.words[i] in OBJECTS:
            return OBJECTS[seg.words[i]], i + 1
        if seg.toks[i].text == "(":
            break
    return "", start


def _names_list(seg: _Seg, i: int, tables: set[str]) -> None:
    """`[IF [NOT] EXISTS] a, b.c, ...` into tables."""
    while seg.word(i) in ("IF", "NOT", "EXISTS"):
        i += 1
    while i < len(seg.toks):
        name, i = seg.name_at(i)
        if not name:
            return
        tables.add(name)
        if i < len(seg.toks) and seg.toks[i].text == ",":
            i += 1
        else:
            return


def _classify(seg: _Seg, backslash: bool) -> Statement:
    tables: set[str] = set()
    functions: set[str] = set()
    flags: set[str] = set()
    inner: list[Statement] = []
    obj, where, dynamic = "", None, False
    _scan(seg, functions, flags, tables)
    first = 0
    while first < len(seg.toks) and seg.toks[first].text == "(":
        first += 1
    w0, w1 = seg.word(first), seg.word(first + 1)
    kind = w0.lower()
    if w0 in STARTERS or (first > 0 and w0 == ""):
        kind, where = _dml(seg, first, tables, inner)
        if kind in ("insert", "replace", "update", "delete") and tables & PASSWORD_TABLES:
            flags.add("password_change")
    elif w0 in ("DROP", "CREATE", "ALTER", "RENAME", "TRUNCATE"):
        obj, after = _object(seg, 1)
        if w0 == "TRUNCATE":
            obj, after = "table", (after if obj else 1)
        if w0 == "DROP" and obj == "prepare":
            kind, obj = "deallocate", seg.name_at(after)[0]
        elif w0 == "RENAME" or obj in TABLE_OBJECT_KINDS:
            _names_list(seg, after, tables)
            if w0 == "RENAME":
                for i, w in enumerate(seg.words):
                    if w in ("TO", ",") or seg.toks[i].text == ",":
                        _names_list(seg, i + 1, tables)
        if w0 == "ALTER" and obj == "table":
            i = after + (2 if seg.word(after) == "IF" else 0)
            name, end = seg.name_at(i)
            inner.extend(alter_table_effects(seg.toks, name, end))
        if obj in ("user", "role") and seg.index("IDENTIFIED") >= 0:
            flags.add("password_change")
        if w0 == "CREATE":
            inner.extend(replaced_effects(seg.words, obj, seg.name_at(after)[0], seg.text))
        if w0 == "CREATE" and obj in ("table", "view") and (s := seg.index("SELECT")) >= 0:
            s = seg.index("WITH") if 0 <= seg.index("WITH") < s else s
            tables |= _tables_of(_parse(seg.clean_from(s)))
        if obj in _PROGRAMS and (w0 == "CREATE" or obj == "event"):
            # a stored program's body is judged where it is defined: each statement is inner
            at = body_start(seg.toks, obj)
            if at is None or at >= len(seg.toks):
                dynamic = w0 == "CREATE"  # no SQL body (a loadable function): effect unknown
            else:
                inner.extend(_body(seg, seg.toks[at:], backslash, parameters(seg.toks[:at])))
    elif w0 in ("GRANT", "REVOKE"):
        obj = "" if seg.index("ON") >= 0 else "role"
        if seg.index("IDENTIFIED") >= 0:
            flags.add("password_change")
    elif w0 == "SET":
        i = 1 + (w1 in ("GLOBAL", "SESSION", "LOCAL", "PERSIST", "PERSIST_ONLY"))
        obj = seg.toks[i].name if i < len(seg.toks) else ""
        if obj == "password":
            flags.add("password_change")
        elif obj == "statement" and (f := seg.index("FOR")) > 0:  # MariaDB SET STATEMENT ... FOR <stmt>
            inner.append(_classify(_sub(seg, f + 1), backslash))
            # Text a PREPARE or EXECUTE IMMEDIATE reads at run time is read under the statement's
            # own sql_mode, and a PREPARE / DEALLOCATE here escapes the session's bookkeeping of
            # prepared names: what it runs cannot be known from this text.
            dynamic = any(s.kind in ("prepare", "execute", "deallocate") for s in inner[-1].walk())
        if seg.index("SELECT") >= 0:
            tables |= _tables_of(_parse("SELECT " + seg.clean_from(seg.index("SELECT") + 1)))
    elif w0 in ("EXPLAIN", "DESCRIBE", "DESC", "ANALYZE"):
        i = 1
        analyze = w0 == "ANALYZE"
        while seg.word(i) in ("ANALYZE", "EXTENDED", "PARTITIONS", "FORMAT"):
            analyze |= seg.word(i) == "ANALYZE"
            i += 3 if seg.word(i) == "FORMAT" else 1  # FORMAT = JSON
        if seg.word(i) in STARTERS or (i < len(seg.toks) and seg.toks[i].text == "("):
            kind, target = "explain", _classify(_sub(seg, i), backslash)
            if analyze:
                inner.append(target)
                tables |= target.tables
            else:
                inner.append(replace(target, flags=target.flags | {PLANNED_ONLY}))
                flags, functions = set(), set()
        elif w0 == "ANALYZE":
            kind, obj = "analyze", "table"
            _names_list(seg, seg.index("TABLE") + 1, tables)
        elif seg.word(i) == "FOR":  # EXPLAIN FOR CONNECTION <id>: another session's statement
            kind = "explain"
            flags.add("other_sessions")
        else:
            kind, obj = "show", "columns"
            _names_list(seg, 1, tables)
    elif w0 == "PREPARE":
        obj = seg.toks[1].name if len(seg.toks) > 1 else ""
        body = _string_body(seg, 3, backslash) if seg.word(2) == "FROM" else None
        if body is None:
            dynamic = True  # PREPARE ... FROM @var: text unknown until run time
        else:
            sub = classify_mysql(body, seg.mode)
            if sub.error:
                raise MySQLSyntaxError(f"in PREPARE body: {sub.error}", syntax=sub.syntax)
            inner.extend(sub.statements)
    elif w0 == "EXECUTE":
        if w1 == "IMMEDIATE":  # MariaDB: run the text directly
            obj, body = "immediate", _string_body(seg, 2, backslash)
            immediate = classify_mysql(body, seg.mode) if body is not None else None
            if immediate is None or immediate.error:
                dynamic = True
            else:
                inner.extend(immediate.statements)
        else:
            obj = seg.toks[1].name if len(seg.toks) > 1 else ""
    elif w0 == "DEALLOCATE":
        obj = seg.toks[2].name if len(seg.toks) > 2 else ""
    elif w0 == "LOAD":
        if w1 in ("DATA", "XML"):
            kind = "load_data"
            flags.add("server_file")
            if seg.index("LOCAL") >= 0:
                flags.add("local_infile")
            t = seg.index("TABLE")
            if t >= 0:
                _names_list(seg, t + 1, tables)
        else:
            kind, obj = "load", w1.lower()
    elif w0 == "CALL":
        obj = seg.name_at(1)[0]
        functions.add(obj)
    elif w0 == "DO":
        tables |= _tables_of(_parse("SELECT " + seg.clean_from(1)))
    elif w0 == "BEGIN":
        if w1 == "NOT":  # MariaDB anonymous compound statement: runs its body at once
            kind, obj = "do", "block"
            inner.extend(_body(seg, seg.toks, backslash))
    elif w0 == "START":
        kind, obj = ("begin", "") if w1 == "TRANSACTION" else ("start", w1.lower())
    elif w0 in SIMPLE:
        kind = SIMPLE[w0]
        obj = w1.lower()
        if w0 in ("LOCK", "OPTIMIZE", "REPAIR", "CHECK", "CHECKSUM") and w1 in ("TABLE", "TABLES"):
            _names_list(seg, 2, tables)
        elif w0 == "HANDLER":
            _names_list(seg, 1, tables)
        elif w0 == "USE":
            obj = seg.toks[1].name if len(seg.toks) > 1 else ""
        if w0 in ("CLONE", "IMPORT") and (seg.index("DIRECTORY") >= 0 or w0 == "IMPORT"):
            flags.add("server_file")
    elif w0 == "BINLOG":
        kind, dynamic = "binlog", True  # replays base64 row events: effect unknown
    else:
        kind, dynamic = "unknown", True
    # Names as the server folds them: one character at a time (İ is i, where Python's lower()
    # gives i plus a combining dot), so `information_schema.PROCESSLİST` names the process list.
    tables = {t.lower().replace("i\u0307", "i") for t in tables}
    if reaches_other_sessions(seg.words[first:], tables):
        flags.add("other_sessions")
    for st in inner:
        if PLANNED_ONLY not in st.flags:
            functions |= st.functions
            flags |= st.flags
    return Statement(
        kind=kind,
        text=seg.text,
        object=obj,
        tables=frozenset(tables),
        functions=frozenset(functions),
        where=where,
        dynamic=dynamic,
        flags=frozenset(flags),
        inner=tuple(inner),
    )


_PROGRAMS = frozenset({"procedure", "function", "trigger", "event"})


def _body(seg: _Seg, toks: list[Tok], backslash: bool, params: frozenset[str] = frozenset()) -> list[Statement]:
    def statement(part: list[Tok], variables: frozenset[str]) -> Statement:
        return _classify(_Seg(part, seg.sql, values_in_where(part, seg.clean, variables)), backslash)

    def expression(part: list[Tok]) -> Classification:
        if not part:
            return Classification(())
        return classify_mysql("SELECT " + seg.clean[part[0].start : part[-1].end])

    return body_statements(toks, statement, expression, params)


@lru_cache(maxsize=64)
def _charset_lexing(mode: TextMode | None) -> tuple[str, str]:
    """The characters the session's character set adds to whitespace and to what starts a `--`
    comment, as the decoded text shows them."""
    if mode is None or not mode.codec:
        return "", ""
    space = MYSQL_SPACE_BYTES.get(mode.charset, b"").decode(mode.codec, "replace")
    return space, MYSQL_DASH_COMMENT_BYTES.get(mode.charset, b"").decode(mode.codec, "replace")


def _classify_text(
    sql: str,
    backslash: bool,
    six_digits: bool,
    mode: TextMode | None,
    *,
    tolerant: bool = False,
    skip_versioned: bool = False,
) -> list[Statement]:
    ansi = mode is not None and mode.ansi_quotes
    spaces, dash = _charset_lexing(mode)
    version = mode.server_version if mode is not None else 0
    toks, clean = lex(
        sql,
        backslash=backslash,
        six_digits=six_digits,
        ansi_quotes=ansi,
        spaces=spaces,
        dash_comment=dash,
        server_version=1 if skip_versioned else version,  # 1: older than every versioned comment
        mariadb=mode is not None and mode.mariadb,
    )
    if mode is not None and (conflict := mode_conflict(toks, mode.pipes_as_concat, mode.high_not_precedence)):
        raise conflict
    out = []
    for seg in split(toks):
        try:
            out.append(_classify(_Seg(seg, sql, clean, mode), backslash))
        except MySQLSyntaxError:
            if not tolerant:  # alternative readings keep what parses: the server runs those before failing
                raise
    return out


def classify_mysql(sql: str, mode: TextMode | None = None) -> Classification:
    """Classify every statement as the server reads it under `mode` (the session's sql_mode as a
    TextMode; `sql` is already decoded from its character set). No mode, or the default UTF8
    mode that names no MySQL session: the string modes are unknown and every reading counts.
    A lexing or parse failure sets Classification.error (fail closed)."""
    if mode == UTF8:
        mode = None
    backslash = mode is None or mode.backslash_escapes
    try:
        stmts = _classify_text(sql, backslash, True, mode)
    except MySQLSyntaxError as exc:
        position = exc.position + 1 if exc.position is not None else None
        return Classification((), str(exc), syntax=exc.syntax, error_at=position)
    except Exception as exc:  # noqa: BLE001 - anything unexpected is "could not parse"
        return Classification((), f"could not classify: {type(exc).__name__}: {exc}")
    # Readings that depend on what the gateway does not know: keep the union so a guardrail sees
    # every possibility (a statement of another reading counts unless it is the same in every fact).
    variants = []
    if mode is None and "\\" in sql:
        variants.append((False, True, False))  # NO_BACKSLASH_ESCAPES
    known = mode is not None and mode.server_version > 0
    if re.search(r"/\*M?!\d{6}", sql) and not (known and mode is not None and mode.mariadb):
        variants.append((backslash, False, False))  # a server that reads 5 version digits
    if not known and re.search(r"/\*M?!\d{5}", sql):
        variants.append((backslash, True, True))  # a server that skips versioned comments
    for alt_backslash, six, skip in variants:
        try:
            extra = _classify_text(sql, alt_backslash, six, mode, tolerant=True, skip_versioned=skip)
        except Exception:  # noqa: BLE001, S112 - a reading the server would reject entirely adds nothing
            continue
        stmts.extend(st for st in extra if st not in stmts)
    return Classification(tuple(stmts))
