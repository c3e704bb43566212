"""Which literals of a statement are a credential or a value of a masked column.

Works on the tokens of one reading (hoop/core/statement_lexing.py), comments left out, and
names literal tokens only: masking rewrites their bodies, so whatever else the statement
says stays visible. Three shapes:

- account statements: the literal after PASSWORD, IDENTIFIED [WITH plugin] BY / AS / USING,
  MASTER_PASSWORD =, SET PASSWORD [FOR account] =, ... REPLACE 'current' (MySQL), and after any
  name that says it holds a secret (`password`, `db_password`, `api_key`, `token`, ...);
- functions whose argument is a password or key: `crypt('pw', ...)`,
  `pgp_sym_encrypt(data, 'key')`, `AES_ENCRYPT(str, 'key')`, `PASSWORD('pw')`, ...;
- bindings of a named column: `col = 'x'`, `col IN ('x', 'y')`, `col LIKE 'x%'`,
  `col BETWEEN 'a' AND 'b'`, `'x' = col`, `SET col = 'x'` and `INSERT INTO t (.., col, ..)
  VALUES (.., 'x', ..)`, where `col` is a masked column (its rule's style) or a credential
  name (redact). Tables are not resolved (aliases, views): a column is matched by its name, so
  a column of the same name elsewhere is masked too, the safe side. INSERT without a column
  list is left to the detectors, since the table's column order is not known here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from hoop.core.statement_lexing import COMMENT, NAME, NUMBER, OP, STRING, VAR, WORD, Reading, Token

CREDENTIAL_NAME = re.compile(
    r"(?:\w*_)?(?:password|passwd|pwd|pass|passphrase|secret|token|api_?key|private_?key|secret_?key|access_?key)",
    re.IGNORECASE,
)
# Functions with an argument that is a password or key (0-based positions), by dialect.
CREDENTIAL_ARGS: dict[str, dict[str, tuple[int, ...]]] = {
    "postgres": {  # pgcrypto
        "CRYPT": (0,),
        "PGP_SYM_ENCRYPT": (1,),
        "PGP_SYM_DECRYPT": (1,),
        "PGP_SYM_ENCRYPT_BYTEA": (1,),
        "PGP_SYM_DECRYPT_BYTEA": (1,),
        "PGP_PUB_DECRYPT": (2,),
        "PGP_PUB_DECRYPT_BYTEA": (2,),
        "ENCRYPT": (1,),
        "DECRYPT": (1,),
        "ENCRYPT_IV": (1,),
        "DECRYPT_IV": (1,),
        "HMAC": (1,),
    },
    "mysql": {
        "PASSWORD": (0,),
        "OLD_PASSWORD": (0,),
        "ENCRYPT": (0,),
        "AES_ENCRYPT": (1,),
        "AES_DECRYPT": (1,),
        "DES_ENCRYPT": (1,),
        "DES_DECRYPT": (1,),
        "ENCODE": (1,),
        "DECODE": (1,),
        "KDF": (0,),
    },
}
CREDENTIAL_ARGS[""] = {
    name: tuple(sorted(set(CREDENTIAL_ARGS["postgres"].get(name, ())) | set(CREDENTIAL_ARGS["mysql"].get(name, ()))))
    for name in CREDENTIAL_ARGS["postgres"].keys() | CREDENTIAL_ARGS["mysql"].keys()
}

# Inside free text (a literal's body, a comment, a shell command): the value of a credential
# key (conninfo `password=...`, JSON `"token": "..."`) and the password of a URI's userinfo.
# Values stop at quotes, spaces and shell metacharacters, so masking one never hides code.
_VALUE = r"[^\s'\"`$\\;,&|<>(){}]+"
_PAIR = re.compile(
    r"(?<![A-Za-z0-9])(?:password|passwd|pwd|secret|token|api_?key)[\"']?\s*[=:]\s*"
    rf"(?:\"([^\"\\`$]*)\"|({_VALUE}))",
    re.IGNORECASE,
)
_URI_PASSWORD = re.compile(r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@'\"`$]*:([^/\s@'\"`$\\;|&<>(){}]+)@")

LITERALS = (STRING, NUMBER)
_COMPARISONS = frozenset(
    ("=", "==", "<>", "!=", "<", ">", "<=", ">=", ":=", "<=>", "~~", "!~~", "~~*", "!~~*", "~", "~*", "!~", "!~*")
)
_WORD_OPERATORS = frozenset(("LIKE", "ILIKE", "IN", "BETWEEN", "REGEXP", "RLIKE"))
_ARITHMETIC = frozenset(("||", "+", "-", "*", "/", "%"))
_SUBQUERY = frozenset(("SELECT", "WITH", "VALUES", "TABLE"))
# Between a credential keyword and its literal: IDENTIFIED WITH plugin BY 'x', PASSWORD('x'), ...
_CONNECTORS = frozenset(("BY", "AS", "USING", "ENCRYPTED", "UNENCRYPTED"))
_INSERT_STOP = frozenset(("VALUES", "VALUE", "SELECT", "SET", "DEFAULT", "ON", "TO", "FROM", "WITH", "TABLE"))
_PLACEHOLDER = "redact"

StyleOf = Callable[[str], str | None]  # a column name -> the style its values are masked with


def sensitive_literals(
    reading: Reading, dialect: str, style_of: StyleOf, credentials: bool = True
) -> Iterator[tuple[Token, str]]:
    """(literal token, style) for every literal that is a credential ("redact") or bound to a
    column `style_of` names. `credentials`: False when no word of a credential is in the text."""
    sig = [t for t in reading if t.kind != COMMENT]
    found: list[tuple[Token, str]] = []
    if credentials:
        found += [(t, _PLACEHOLDER) for t in _account_credentials(sig)]
        found += [
            (t, _PLACEHOLDER) for t in _credential_arguments(sig, CREDENTIAL_ARGS.get(dialect, CREDENTIAL_ARGS[""]))
        ]
    found += _bindings(sig, style_of)
    found += _insert_values(sig, style_of)
    if not found:
        return
    # 'pass' 'word' is one literal to the server (PostgreSQL across a newline, MySQL always)
    at = {t.start: i for i, t in enumerate(sig)}
    for t, style in found:
        yield t, style
        i = at[t.start] + 1
        while t.kind == STRING and i < len(sig) and sig[i].kind == STRING:
            yield sig[i], style
            i += 1


def credential_values(text: str) -> list[tuple[int, int]]:
    """Spans of credential values written as key=value, "key": "value" or user:password@host."""
    out = []
    for m in _PAIR.finditer(text):
        g = 1 if m.group(1) is not None else 2
        if m.end(g) > m.start(g):
            out.append(m.span(g))
    if "://" in text:
        out += [m.span(1) for m in _URI_PASSWORD.finditer(text)]
    return sorted(out)


def _name(t: Token) -> str:
    return t.word.lower() if t.kind in (WORD, NAME, VAR) else ""


def _is_op(t: Token, *ops: str) -> bool:
    return t.kind == OP and t.word in ops


def _is_word(t: Token, *words: str) -> bool:
    return t.kind == WORD and t.word in words


def _prefix(sig: list[Token], j: int) -> bool:
    """A word touching the string after it: MySQL's N'...', X'...', _utf8mb4'...'."""
    return sig[j].kind == WORD and j + 1 < len(sig) and sig[j + 1].kind == STRING and sig[j].end == sig[j + 1].start


def _credential_name(t: Token) -> bool:
    return t.kind in (WORD, NAME, VAR) and CREDENTIAL_NAME.fullmatch(t.word) is not None


# -- account statements ----------------------------------------------------------------------


def _account_credentials(sig: list[Token]) -> Iterator[Token]:
    seen = False  # a credential keyword earlier in this statement: USING and REPLACE count too
    i, n = 0, len(sig)
    while i < n:
        t = sig[i]
        if _is_op(t, ";"):
            seen = False
            i += 1
            continue
        if not (_credential_name(t) or _is_word(t, "IDENTIFIED") or (seen and _is_word(t, "USING", "REPLACE"))):
            i += 1
            continue
        seen = True
        j = i + 1
        while j < n:
            u = sig[j]
            if u.kind in LITERALS:
                yield u
                j += 1
                break
            if _is_op(u, "=", ":=", "(") or _prefix(sig, j):
                j += 1
            elif _is_word(u, "WITH", "VIA"):
                j += 2  # and the plugin's name, which may be quoted
            elif _is_word(u, "FOR"):
                j = _after_account(sig, j + 1)
            elif (u.kind == WORD and u.word in _CONNECTORS) or _credential_name(u):
                j += 1
            else:
                break
        i = j


def _after_account(sig: list[Token], j: int) -> int:
    """Past `user`, `'user'@'host'`, `user@host` or `CURRENT_USER()`."""
    n = len(sig)
    if j < n and sig[j].kind in (STRING, NAME, WORD, VAR):
        j += 1
    if j < n and sig[j].kind == VAR:
        j += 1
    if j + 1 < n and _is_op(sig[j], "(") and _is_op(sig[j + 1], ")"):
        j += 2
    return j


# -- functions -------------------------------------------------------------------------------


def _credential_arguments(sig: list[Token], functions: dict[str, tuple[int, ...]]) -> Iterator[Token]:
    for i in range(len(sig) - 1):
        t = sig[i]
        positions = functions.get(t.word.upper()) if t.kind in (WORD, NAME) else None
        if positions and _is_op(sig[i + 1], "("):
            depth, arg = 0, 0
            for u in sig[i + 1 :]:
                if _is_op(u, "("):
                    depth += 1
                elif _is_op(u, ")"):
                    depth -= 1
                    if depth == 0:
                        break
                elif _is_op(u, ",") and depth == 1:
                    arg += 1
                elif u.kind in LITERALS and arg in positions:
                    yield u


# -- bindings --------------------------------------------------------------------------------


def _column_style(t: Token, style_of: StyleOf) -> str | None:
    name = _name(t)
    if not name:
        return None
    if CREDENTIAL_NAME.fullmatch(name):
        return _PLACEHOLDER
    return style_of(name)


def _bindings(sig: list[Token], style_of: StyleOf) -> Iterator[tuple[Token, str]]:
    n = len(sig)
    for i, t in enumerate(sig):
        style = _column_style(t, style_of)
        if style is None or i + 1 >= n or _is_op(sig[i + 1], "(", "."):
            continue  # not a column, or a function call, or a qualifier (the column comes next)
        j = i + 1
        if _is_word(sig[j], "NOT"):
            j += 1
        if j >= n:
            continue
        op = sig[j]
        if (op.kind == OP and op.word in _COMPARISONS) or (op.kind == WORD and op.word in _WORD_OPERATORS):
            marks: list[Token] = []
            end = _operand(sig, j + 1, marks)
            if op.word == "BETWEEN" and end < n and _is_word(sig[end], "AND"):
                _operand(sig, end + 1, marks)
            for m in marks:
                yield m, style
    for i in range(n - 2):  # 'x' = col
        t, op, col = sig[i], sig[i + 1], sig[i + 2]
        if t.kind in LITERALS and op.kind == OP and op.word in _COMPARISONS:
            if i + 3 < n and _is_op(sig[i + 3], "(", "."):
                continue
            style = _column_style(col, style_of)
            if style is not None:
                yield t, style


def _operand(sig: list[Token], j: int, marks: list[Token]) -> int:
    """Mark the literals of the expression starting at `j` (literals, lists, function calls,
    casts, concatenations); returns where it ends."""
    n = len(sig)
    j = _primary(sig, j, marks)
    while j < n and sig[j].kind == OP and sig[j].word in _ARITHMETIC:
        j = _primary(sig, j + 1, marks)
    return j


def _primary(sig: list[Token], j: int, marks: list[Token]) -> int:
    n = len(sig)
    while j < n and (_is_op(sig[j], "-", "+") or _prefix(sig, j)):
        j += 1
    if j >= n:
        return j
    t = sig[j]
    if t.kind in LITERALS:
        marks.append(t)
        j += 1
    elif _is_op(t, "("):
        if j + 1 < n and sig[j + 1].kind == WORD and sig[j + 1].word in _SUBQUERY:
            return _past_parens(sig, j, None)  # a subquery: its own bindings are found where they are
        j = _operand(sig, j + 1, marks)
        while j < n and _is_op(sig[j], ","):
            j = _operand(sig, j + 1, marks)
        if j < n and _is_op(sig[j], ")"):
            j += 1
    elif t.kind in (WORD, NAME) and j + 1 < n and _is_op(sig[j + 1], "(", "["):
        j = _past_parens(sig, j + 1, marks)  # a function call or ARRAY[...]: its literals
    else:
        return j
    while j + 1 < n and _is_op(sig[j], "::"):  # casts: '...'::text, '...'::varchar(20)[]
        j += 2
        if j < n and _is_op(sig[j], "("):
            j = _past_parens(sig, j, None)
        while j + 1 < n and _is_op(sig[j], "[") and _is_op(sig[j + 1], "]"):
            j += 2
    return j


def _past_parens(sig: list[Token], j: int, marks: list[Token] | None) -> int:
    """From the bracket at `j` to past its match, marking the literals inside."""
    depth, n = 0, len(sig)
    while j < n:
        t = sig[j]
        if _is_op(t, "(", "["):
            depth += 1
        elif _is_op(t, ")", "]"):
            depth -= 1
            if depth == 0:
                return j + 1
        elif marks is not None and t.kind in LITERALS:
            marks.append(t)
        j += 1
    return j


def _insert_values(sig: list[Token], style_of: StyleOf) -> Iterator[tuple[Token, str]]:
    n = len(sig)
    for i, t in enumerate(sig):
        if not _is_word(t, "INSERT", "REPLACE") or (i + 1 < n and _is_op(sig[i + 1], "(")):
            continue
        columns: list[str] | None = None
        j = i + 1
        while j < min(n, i + 16):
            u = sig[j]
            if (u.kind == WORD and u.word in _INSERT_STOP) or _is_op(u, ";"):
                break
            if _is_op(u, "("):
                if _is_word(sig[j - 1], "PARTITION"):
                    j = _past_parens(sig, j, None)
                    continue
                columns, j = _column_list(sig, j)
                break
            j += 1
        if columns is None or j >= n or not _is_word(sig[j], "VALUES", "VALUE"):
            continue
        styles = [_column_style(Token(NAME, 0, 0, 0, 0, c), style_of) for c in columns]
        if any(styles):
            yield from _tuples(sig, j + 1, styles)


def _column_list(sig: list[Token], j: int) -> tuple[list[str], int]:
    """The column names of `(a, t.b, "c")` at `j` and the index past it."""
    names, last, n = [], "", len(sig)
    j += 1
    while j < n and not _is_op(sig[j], ")"):
        if _is_op(sig[j], ","):
            names.append(last)
            last = ""
        elif sig[j].kind in (WORD, NAME):
            last = _name(sig[j])
        j += 1
    names.append(last)
    return names, j + 1


def _tuples(sig: list[Token], j: int, styles: list[str | None]) -> Iterator[tuple[Token, str]]:
    n = len(sig)
    while j < n:
        if _is_word(sig[j], "ROW"):
            j += 1
        if j >= n or not _is_op(sig[j], "("):
            return
        depth, arg = 0, 0
        while j < n:
            u = sig[j]
            j += 1
            if _is_op(u, "(", "["):
                depth += 1
            elif _is_op(u, ")", "]"):
                depth -= 1
                if depth == 0:
                    break
            elif _is_op(u, ",") and depth == 1:
                arg += 1
            elif u.kind in LITERALS and arg < len(styles) and (style := styles[arg]) is not None:
                yield u, style
        if j < n and _is_op(sig[j], ","):
            j += 1
        else:
            return
