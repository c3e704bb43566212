"""Folding a MySQL predicate (sqlglot tree) to ROW, UNKNOWN or a constant: is a WHERE clause
row-dependent, always true, or unknowable here? See model.py for the three-valued helpers."""

from __future__ import annotations

from sqlglot import exp

from .model import ROW, UNKNOWN, bool_and, bool_not, bool_or, compare


def fold(node: exp.Expr | None) -> object:
    if isinstance(node, exp.Paren):
        return fold(node.this)
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
        return bool_and([fold(node.this), fold(node.expression)])
    if isinstance(node, exp.Or):
        return bool_or([fold(node.this), fold(node.expression)])
    if isinstance(node, exp.Not):
        return bool_not(fold(node.this))
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
        left, right = fold(node.this), fold(node.expression)
        if isinstance(left, str) and isinstance(right, str) and left != right:
            return UNKNOWN  # collations may compare 'a' = 'A ' as equal
        return compare(fn, left, right)
    if isinstance(node, exp.Is):
        inner = fold(node.this)
        if inner is ROW or inner is UNKNOWN:
            return inner
        if isinstance(node.expression, exp.Null):
            return inner is None
        return UNKNOWN
    if node is not None and next(node.find_all(exp.Column), None) is not None:
        return ROW
    return UNKNOWN
