"""The form of a PostgreSQL expression, for folding a predicate: a comparable key (the same
expression written twice), constants and casts computed as the server computes them, and
conditions that state each other's negation."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import cast

from pglast import ast, enums

from .model import UNKNOWN, is_marker
from .pg_nodes import Target, dyn, fields, names

_POSITIONS = frozenset({"location", "rexpr_list_start", "rexpr_list_end", "list_start", "list_end"})


def scalar_subquery(node: object) -> ast.Node | None:
    """The expression of `(SELECT expr)` with nothing else in the SELECT: its value is `expr`,
    and a column in it is the outer query's (there is no FROM for it to belong to)."""
    if not isinstance(node, ast.SubLink) or node.subLinkType != enums.SubLinkType.EXPR_SUBLINK:
        return None
    select = node.subselect
    if not isinstance(select, ast.SelectStmt) or len(select.targetList or ()) != 1:
        return None
    if any(getattr(select, s) for s in fields(select) if s != "targetList"):
        return None
    return cast(ast.Node, dyn(dyn(select).targetList[0]).val)


def key(node: object, target: Target | None) -> object:
    """A comparable form of an expression: positions dropped, `(SELECT x)` read as x, and a
    column qualified with the target's name read as the unqualified one where that can only be
    the target's."""
    inner = scalar_subquery(node)
    if inner is not None:
        return key(inner, target)
    if isinstance(node, (tuple, list)):
        return tuple(key(n, target) for n in node)
    if isinstance(node, ast.ColumnRef):
        parts = names(node.fields).split(".")
        if target is not None and target.unqualified and len(parts) >= 2 and parts[-2] in target.names:
            parts = parts[-1:]
        return ("column", tuple(parts))
    if isinstance(node, ast.Node):
        return (type(node).__name__, *((s, key(getattr(node, s), target)) for s in fields(node) if s not in _POSITIONS))
    return node


def contains(node: object, kinds: tuple[type, ...]) -> bool:
    if isinstance(node, (tuple, list)):
        return any(contains(n, kinds) for n in node)
    if isinstance(node, kinds):
        return True
    if isinstance(node, ast.Node):
        return any(contains(getattr(node, s), kinds) for s in fields(node))
    return False


def operator(node: ast.A_Expr) -> str:
    op = names(node.name)
    schema, _, base = op.rpartition(".")
    return base if schema in ("", "pg_catalog") else op


def const(node: ast.A_Const) -> object:
    if node.isnull:
        return None
    val = dyn(node.val)
    for attr in ("boolval", "ival", "sval"):
        if hasattr(val, attr):
            return getattr(val, attr)
    if hasattr(val, "fval"):
        try:
            return Decimal(val.fval)  # exact, as the server's numeric
        except InvalidOperation:
            return UNKNOWN
    return UNKNOWN


_INT_TYPES = frozenset({"int2", "int4", "int8", "smallint", "integer", "int", "bigint"})
_NUMERIC_TYPES = frozenset({"numeric", "decimal"})
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")
_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def as_bool(value: object) -> object:
    """A constant cast to boolean as the server's input function reads it."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if not isinstance(value, str):
        return UNKNOWN
    word = value.strip().lower()
    if word in ("1", "on"):
        return True
    if word in ("0", "of", "off"):
        return False
    for full, result in (("true", True), ("yes", True), ("false", False), ("no", False)):
        if word and full.startswith(word):
            return result
    return UNKNOWN  # the server rejects it


def cast_const(value: object, type_name: ast.TypeName | None) -> object:
    """A constant cast to the named type; UNKNOWN where the gateway cannot compute the result
    exactly as the server does (char(n) padding, float rounding, dates, lengths...)."""
    if is_marker(value) or value is None or type_name is None:
        return value
    name = names(type_name.names).rsplit(".", 1)[-1]
    if type_name.arrayBounds:
        return UNKNOWN
    if name in ("bool", "boolean"):
        return as_bool(value)
    if type_name.typmods:
        return UNKNOWN
    if isinstance(value, bool):
        return UNKNOWN
    if name in _INT_TYPES or name in _NUMERIC_TYPES:
        if isinstance(value, str):
            if not (_INTEGER if name in _INT_TYPES else _NUMBER).fullmatch(value):
                return UNKNOWN
            value = Decimal(value.strip())
        if not isinstance(value, (int, Decimal)):
            return UNKNOWN
        return int(Decimal(value).quantize(Decimal(1), rounding=ROUND_HALF_UP)) if name in _INT_TYPES else value
    if name in ("text", "varchar") and isinstance(value, str):
        return value
    return UNKNOWN


def items(node: object, op: enums.BoolExprType) -> list[object]:
    """The operands of nested ANDs (or ORs) as one list."""
    if isinstance(node, ast.BoolExpr) and node.boolop == op:
        return [i for a in dyn(node).args for i in items(a, op)]
    return [node]


_COMPLEMENT = {"<>": "=", "!=": "=", ">=": "<", "<=": ">"}
_TESTS = {"IS_NOT_TRUE": "IS_TRUE", "IS_NOT_FALSE": "IS_FALSE", "IS_NOT_UNKNOWN": "IS_UNKNOWN"}


def literal(node: object, target: Target | None) -> tuple[object, bool]:
    """(what the condition tests, whether it is negated): `x <> y` is the negation of `x = y`."""
    if isinstance(node, ast.BoolExpr) and node.boolop == enums.BoolExprType.NOT_EXPR:
        what, negated = literal(dyn(node).args[0], target)
        return what, not negated
    if isinstance(node, ast.A_Expr) and node.kind == enums.A_Expr_Kind.AEXPR_OP and node.lexpr is not None:
        op = operator(node)
        base = _COMPLEMENT.get(op, op)
        return ("op", base, key(node.lexpr, target), key(node.rexpr, target)), base != op
    if isinstance(node, ast.NullTest):
        return ("null", key(node.arg, target)), node.nulltesttype == enums.NullTestType.IS_NOT_NULL
    if isinstance(node, ast.BooleanTest):
        test = dyn(node).booltesttype.name
        return ("test", _TESTS.get(test, test), key(node.arg, target)), test in _TESTS
    return ("value", key(node, target)), False


def complementary(items: list[object], target: Target | None) -> bool:
    """Does one operand state the negation of another (`x OR NOT x`, `id = 1 OR id <> 1`)?"""
    seen: dict[object, set[bool]] = {}
    for item in items:
        what, negated = literal(item, target)
        seen.setdefault(what, set()).add(negated)
    return any(len(v) == 2 for v in seen.values())
