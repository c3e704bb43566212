"""Bodies of PostgreSQL routines and DO blocks: the statements they will run, judged where defined.

A function, procedure or DO body runs later (when called, or at once for DO) but the gateway
sees its text only now, so every statement in it becomes an inner statement of the CREATE/DO
and every rule applies to it:

- `LANGUAGE sql` string bodies are classified like top-level text; `BEGIN ATOMIC` and
  `RETURN expr` bodies are already parsed trees.
- PL/pgSQL bodies are parsed with the real PL/pgSQL parser (pglast's `parse_plpgsql_json`).
  Every embedded expression (`PLpgSQL_expr`: execsql, PERFORM, RETURN QUERY, cursor queries,
  FOR-IN-query, conditions, assignments, defaults) is classified. Full statements are always
  kept; expressions are kept when they touch a table, call a function or carry a flag.
- Dynamic SQL (`EXECUTE`, `FOR ... IN EXECUTE`, `RETURN QUERY EXECUTE`, `OPEN ... FOR EXECUTE`)
  is judged on its text when that is one string literal, and is `dynamic` otherwise.
- Any other language (plpython, plperl, C, internal, unknown) is `dynamic`: its effect cannot be
  read here. A body the parsers reject is `dynamic` too (fail closed).

Variables and parameters are values, not columns: a reference to one (`v`, `new.x`, `f.arg`,
`blk.v`) is read as a parameter (`$1`), so `DELETE FROM t WHERE flag` with a boolean variable is
as unbounded as `WHERE $1`. Where a name is both a column and a variable this over-approximates
(the WHERE may be taken for trivial), never the other way round.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pglast import ast, parse_sql
from pglast.parser import parse_plpgsql_json, scan

from .model import Classification, Statement
from .plpgsql_types import neutral_declarations, neutral_function

ClassifyText = Callable[[str], Classification]
StatementOf = Callable[[ast.Node], Statement]

# PL/pgSQL expression parse modes (RawParseMode): 0 a whole statement, 2 an expression,
# 3-5 an assignment `target := expression`.
_STATEMENT_MODE = 0
_ASSIGN_MODES = (3, 4, 5)
_DYNAMIC_STMTS = frozenset({"PLpgSQL_stmt_dynexecute", "PLpgSQL_stmt_dynfors"})
_DYNAMIC_KEYS = frozenset({"dynquery"})


@dataclass(slots=True)
class Body:
    """What a body runs: its statements, and whether some part of it cannot be known."""

    statements: list[Statement] = field(default_factory=list)
    dynamic: bool = False
    reasons: list[str] = field(default_factory=list)

    def add(self, classification: Classification, text: str, *, always: bool) -> None:
        if classification.error is not None:
            self.unknown(text, classification.error)
            return
        for stmt in classification.statements:
            if always or stmt.tables or stmt.functions or stmt.flags or stmt.inner or stmt.dynamic:
                self.statements.append(stmt)

    def unknown(self, text: str, why: str) -> None:
        self.dynamic = True
        self.reasons.append(why)
        self.statements.append(Statement(kind="unknown", text=text, dynamic=True))


def _option(options: Any, name: str) -> Any:
    for opt in options or ():
        if getattr(opt, "defname", None) == name:
            return opt.arg
    return None


def _sval(arg: Any) -> str | None:
    if isinstance(arg, (tuple, list)):
        arg = arg[0] if len(arg) == 1 else None
    value = getattr(arg, "sval", None)
    return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class _Scope:
    """Names that are variables in a body, and the qualifiers that may prefix them."""

    variables: frozenset[str] = frozenset()
    qualifiers: frozenset[str] = frozenset()

    def is_variable(self, names: list[str]) -> bool:
        if not names or names[0] not in self.variables | self.qualifiers:
            return False
        return names[0] in self.variables or (len(names) > 1 and names[1] in self.variables)


def routine_body(node: Any, source: str, classify: ClassifyText, statement: StatementOf) -> Body:
    """The body of a CreateFunctionStmt; `source` is the whole CREATE text (PL/pgSQL needs it)."""
    body = Body()
    name = str(getattr((node.funcname or (None,))[-1], "sval", "")).lower()
    params = frozenset(str(p.name).lower() for p in node.parameters or () if getattr(p, "name", None))
    scope = _Scope(params, frozenset({name}))
    if node.sql_body is not None:  # BEGIN ATOMIC ... END, or RETURN expr
        parts = node.sql_body
        stmts = parts[0] if isinstance(parts, tuple) and parts and isinstance(parts[0], tuple) else parts
        for part in stmts if isinstance(stmts, (tuple, list)) else (stmts,):
            if isinstance(part, ast.ReturnStmt):
                _expression_node(_substitute(part.returnval, scope), body, statement)
            elif isinstance(part, ast.Node):
                body.statements.append(statement(_substitute(part, scope)))
        return body
    language = (_sval(_option(node.options, "language")) or "").lower()
    text = _sval(_option(node.options, "as"))
    if language == "sql" and text is not None:
        _sql(text, body, scope, statement, always=True)
    elif language == "plpgsql" and text is not None:
        _plpgsql(source, body, classify, statement, scope.qualifiers, lambda: neutral_function(node, text))
    else:
        body.unknown(text or "", f"a body in language {language or 'unknown'!r} cannot be read")
    return body


def do_body(node: Any, classify: ClassifyText, statement: StatementOf) -> Body:
    """The body of a DO block: PL/pgSQL unless another language is named."""
    body = Body()
    language = (_sval(_option(node.args, "language")) or "plpgsql").lower()
    text = _sval(_option(node.args, "as"))
    if language != "plpgsql" or text is None:
        body.unknown(text or "", f"a DO block in language {language!r} cannot be read")
        return body
    tag = "hoop"
    while f"${tag}$" in text:
        tag += "_"
    wrap = "CREATE FUNCTION pg_temp.hoop_do() RETURNS void LANGUAGE plpgsql AS ${0}${1}${0}$"
    fallback = lambda: wrap.format(tag, neutral_declarations(text))  # noqa: E731
    _plpgsql(wrap.format(tag, text), body, classify, statement, frozenset(), fallback)
    return body


def _plpgsql(
    source: str,
    body: Body,
    classify: ClassifyText,
    statement: StatementOf,
    qualifiers: frozenset[str],
    neutral: Callable[[], str],
) -> None:
    try:
        try:
            tree = json.loads(parse_plpgsql_json(source))
        except Exception as exc:  # noqa: BLE001 - retried once below, else not understood
            if "LookupExplicitNamespace" not in str(exc):
                raise
            tree = json.loads(parse_plpgsql_json(neutral()))  # a type in another schema: see plpgsql_types
    except Exception as exc:  # noqa: BLE001 - a body the parser rejects is not understood: fail closed
        body.unknown(source, f"PL/pgSQL body not understood: {exc}")
        return
    variables, labels = _declared(tree)
    scope = _Scope(variables, qualifiers | labels)
    for expr, mode, dynamic in _expressions(tree, False):
        if dynamic:
            literal = _string_literal(expr)
            if literal is None:
                body.unknown(expr, "EXECUTE of text built at run time")
                _sql("SELECT " + expr, body, scope, statement, always=False)  # its calls still count
            else:
                body.add(classify(literal), literal, always=True)  # run as text: no variables in it
        elif mode == _STATEMENT_MODE:
            _sql(expr, body, scope, statement, always=True)
        else:
            value = _assigned(expr) if mode in _ASSIGN_MODES else expr
            if value is None:
                body.unknown(expr, "assignment not understood")
            else:
                _sql("SELECT " + value, body, scope, statement, always=False)


def _sql(text: str, body: Body, scope: _Scope, statement: StatementOf, *, always: bool) -> None:
    """Classify SQL embedded in a body, its variable references read as parameters."""
    try:
        raws = parse_sql(text)
    except Exception as exc:  # noqa: BLE001 - not understood: fail closed
        body.unknown(text, f"syntax error: {exc}")
        return
    stmts = [statement(_substitute(raw.stmt, scope)) for raw in raws if raw.stmt is not None]
    body.add(Classification(tuple(stmts)), text, always=always)


def _declared(tree: Any) -> tuple[frozenset[str], frozenset[str]]:
    """Variable names (parameters, DECLAREd names, records, FOUND, TG_*) and block labels."""
    names: set[str] = set()
    labels: set[str] = set()
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, list):
            todo.extend(node)
        elif isinstance(node, dict):
            for key, value in node.items():
                if key in ("PLpgSQL_var", "PLpgSQL_rec") and isinstance(value, dict):
                    ref = str(value.get("refname", "")).lower()
                    if ref and not ref.startswith("("):
                        names.add(ref)
                elif key == "label" and isinstance(value, str):
                    labels.add(value.lower())
                else:
                    todo.append(value)
    return frozenset(names), frozenset(labels)


def _substitute(node: Any, scope: _Scope) -> Any:
    """`node` with every column reference that names a variable replaced by a parameter."""
    if not scope.variables:
        return node
    if isinstance(node, ast.ColumnRef):
        names = [str(getattr(f, "sval", "")).lower() for f in node.fields or ()]
        return ast.ParamRef(number=1) if scope.is_variable(names) else node
    if isinstance(node, tuple):
        return tuple(_substitute(item, scope) for item in node)
    if isinstance(node, ast.Node):
        for slot in getattr(type(node), "__slots__", ()):
            value = getattr(node, slot, None)
            if isinstance(value, (ast.Node, tuple)):
                setattr(node, slot, _substitute(value, scope))
    return node


def _expressions(node: Any, dynamic: bool) -> Iterator[tuple[str, int, bool]]:
    """(query text, parse mode, is dynamic SQL) of every PLpgSQL_expr below `node`."""
    if isinstance(node, list):
        for item in node:
            yield from _expressions(item, dynamic)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key == "PLpgSQL_expr" and isinstance(value, dict):
            yield str(value.get("query", "")), int(value.get("parseMode", 0)), dynamic
            continue
        if key in _DYNAMIC_STMTS and isinstance(value, dict):
            # the query is dynamic; its USING parameters and INTO targets are plain expressions
            for sub_key, sub in value.items():
                yield from _expressions(sub, sub_key == "query")
            continue
        yield from _expressions(value, key in _DYNAMIC_KEYS)


def _assigned(text: str) -> str | None:
    """The expression of `target := expression` (or `target = expression`)."""
    try:
        tokens = scan(text)
    except Exception:  # noqa: BLE001 - not scannable: not understood
        return None
    depth = 0
    for tok in tokens:
        if tok.name in ("ASCII_40", "ASCII_91"):
            depth += 1
        elif tok.name in ("ASCII_41", "ASCII_93"):
            depth -= 1
        elif depth == 0 and tok.name in ("COLON_EQUALS", "ASCII_61"):
            return text[tok.end + 1 :]
    return None


def _string_literal(expr: str) -> str | None:
    """The text of `expr` when it is one string constant ('select 1'), else None."""
    try:
        raws = parse_sql("SELECT " + expr)
    except Exception:  # noqa: BLE001 - not a plain expression
        return None
    stmt = raws[0].stmt if len(raws) == 1 else None
    targets: tuple[Any, ...] = tuple(getattr(stmt, "targetList", None) or ())
    if not isinstance(stmt, ast.SelectStmt) or len(targets) != 1 or stmt.fromClause:
        return None
    value = getattr(targets[0], "val", None)
    if isinstance(value, ast.A_Const) and isinstance(value.val, ast.String):
        return value.val.sval
    return None


def _expression_node(node: Any, body: Body, statement: StatementOf) -> None:
    """A `RETURN expr` of a SQL-standard body: judged as the SELECT it is."""
    if node is None:
        return
    stmt = statement(ast.SelectStmt(targetList=(ast.ResTarget(val=node),)))
    if stmt.tables or stmt.functions or stmt.flags or stmt.inner or stmt.dynamic:
        body.statements.append(stmt)


# DefElems of CREATE OPERATOR / AGGREGATE / TYPE that name a routine the object will call
_SUPPORT = frozenset(
    {"function", "procedure", "restrict", "join", "input", "output", "receive", "send", "analyze", "subscript"}
    | {"typmod_in", "typmod_out"}
)


def routine_references(node: Any) -> set[str]:
    """Routines an operator, aggregate, type, cast or event trigger will call when used: a call
    hidden behind `a ## b` or `agg(x)` is judged where the object is defined."""
    names: set[str] = set()
    if isinstance(node, ast.DefineStmt):
        for opt in node.definition or ():
            name = str(getattr(opt, "defname", "")).lower()
            arg = getattr(opt, "arg", None)
            parts = getattr(arg, "names", None) if isinstance(arg, ast.TypeName) else arg
            if (name in _SUPPORT or name.endswith("func")) and isinstance(parts, tuple):
                names.add(".".join(str(getattr(p, "sval", "")).lower() for p in parts))
    elif isinstance(node, ast.CreateCastStmt) and node.func is not None:
        names.add(".".join(str(getattr(p, "sval", "")).lower() for p in node.func.objname or ()))
    elif isinstance(node, ast.CreateEventTrigStmt):
        names.add(".".join(str(getattr(p, "sval", "")).lower() for p in node.funcname or ()))
    return names
