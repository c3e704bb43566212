"""Folding a MySQL predicate (sqlglot tree) to ROW, UNKNOWN or a constant: is a WHERE clause
row-dependent, always true, or unknowable here? See model.py for the three-valued helpers."""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from .model import ROW, UNKNOWN, bool_and, bool_not, bool_or, compare


@dataclass(frozen=True, slots=True)
class Target:
    """The rows a predicate bounds: the tables a DELETE / UPDATE writes (names and aliases).
    Only their columns make a predicate row-dependent: `DELETE t FROM t JOIN s ON true WHERE
    s.k = 1` reaches every row of t. An unqualified column counts when it can only be theirs
    (`unqualified`: one table in scope) and is not inside a subquery."""

    names: frozenset[str]
    unqualified: bool


def _target_column(node: exp.Expr, target: Target | None) -> bool:
    for col in node.find_all(exp.Column):
        if target is None:
            return True
        if col.table:
            if col.table.lower() in target.names:
                return True
        elif target.unqualified and col.find_ancestor(exp.Select) is None:
            return True
    return False


def fold(node: exp.Expr | None, target: Target | None = None) -> object:
    if isinstance(node, exp.Paren):
        return fold(node.this, target)
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    if isinstance(node, exp.Null):
        return None
    if isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        try:
            return float(node.this)
        except ValueError:
            return UNKNOWN
    if isinstance(node, exp.And):
        return bool_and([fold(node.this, target), fold(node.expression, target)])
    if isinstance(node, exp.Or):
        return bool_or([fold(node.this, target), fold(node.expression, target)])
    if isinstance(node, exp.Not):
        return bool_not(fold(node.this, target))
    if (
        isinstance(node, (exp.EQ, exp.NullSafeEQ, exp.GTE, exp.LTE))
        and isinstance(node.this, exp.Column)
        and node.this == node.expression
    ):
        return UNKNOWN  # col = col
    ops = {exp.EQ: "==", exp.NEQ: "!=", exp.GT: ">", exp.GTE: ">=", exp.LT: "<", exp.LTE: "<="}
    if isinstance(node, exp.Binary) and type(node) in ops:  # isinstance narrows for mypy
        fn = {
            "==": lambda a, b: a == b,
            "!=": lambda a, b: a != b,
            ">": lambda a, b: a > b,
            ">=": lambda a, b: a >= b,
            "<": lambda a, b: a < b,
            "<=": lambda a, b: a <= b,
        }[ops[type(node)]]
        left, right = fold(node.this, target), fold(node.expression, target)
        if isinstance(left, str) and isinstance(right, str) and left != right:
            return UNKNOWN  # collations may compare 'a' = 'A ' as equal
        return compare(fn, left, right)
    if isinstance(node, exp.Is):
        inner = fold(node.this, target)
        if inner is ROW or inner is UNKNOWN:
            return inner
        if isinstance(node.expression, exp.Null):
            return inner is None
        return UNKNOWN
    if node is not None and _target_column(node, target):
        return ROW
    return UNKNOWN
