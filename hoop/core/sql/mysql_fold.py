"""Folding a MySQL predicate (sqlglot tree) to ROW, UNKNOWN or a constant: is a WHERE clause
row-dependent, always true, or unknowable here? See model.py for the three-valued helpers."""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from .model import MIXED, ROW, UNKNOWN, bool_and, bool_not, bool_or, compare, is_marker, truth


@dataclass(frozen=True, slots=True)
class Target:
    """The rows a predicate bounds: the tables a DELETE / UPDATE writes (names and aliases).
    Only their columns make a predicate row-dependent: `DELETE t FROM t JOIN s ON true WHERE
    s.k = 1` reaches every row of t. An unqualified column counts when it can only be theirs
    (`unqualified`: one table in scope) and is not inside a subquery."""

    names: frozenset[str]
    unqualified: bool
    empty_string_is_null: bool = False  # MariaDB sql_mode EMPTY_STRING_IS_NULL: '' is NULL


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


def opaque(value: object) -> object:
    """A folded value an IS test or a choice cannot compute: ROW and UNKNOWN stay, MIXED
    becomes UNKNOWN (`x IS FALSE` negates it); None for a constant."""
    if value is MIXED:
        return UNKNOWN
    return value if is_marker(value) else None


def _unwrap(node: exp.Expr) -> exp.Expr:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def _same_column(a: exp.Expr, b: exp.Expr, target: Target | None) -> bool:
    """`id = id` in any spelling: parentheses, backticks, case, or the target's name as qualifier
    on one side only (`c.id = id` where only c is in scope)."""
    a, b = _unwrap(a), _unwrap(b)
    if not isinstance(a, exp.Column) or not isinstance(b, exp.Column) or a.name.lower() != b.name.lower():
        return False
    qa, qb = a.table.lower(), b.table.lower()
    if qa == qb:
        return True
    own = target.names if target is not None and target.unqualified else frozenset()
    return (qa or next(iter(own), "")) in own and (qb or next(iter(own), "")) in own and len(own) <= 2


def _choice(values: list[object], by_row: bool) -> object:
    """One of several folded values, not known which: a constant when all are the same one;
    ROW when the choice depends on the row (`by_row`) and none is UNKNOWN; else UNKNOWN (any
    of them may be the one taken for every row)."""
    first = values[0]
    if first is not UNKNOWN and all(type(v) is type(first) and v == first for v in values):
        return first
    if (by_row or all(v is ROW for v in values)) and not any(opaque(v) is UNKNOWN for v in values):
        return ROW
    return UNKNOWN


def _branches(arms: list[tuple[object, exp.Expr | None]], default: exp.Expr | None, target: Target | None) -> object:
    """IF / CASE: the value of the first arm whose condition holds, or the default; arms whose
    condition is a constant false or NULL are never taken."""
    possible: list[object] = []
    by_row = False
    for cond, value in arms:
        c = truth(cond)
        if c is False or c is None:
            continue
        possible.append(fold(value, target))
        if c is True:
            return _choice(possible, by_row)
        by_row = by_row or c is ROW
    possible.append(fold(default, target) if default is not None else None)
    return _choice(possible, by_row)


def _special(node: exp.Expr, target: Target | None) -> tuple[bool, object]:
    """IF, CASE, COALESCE / IFNULL, NULLIF: folded through their arguments, since a constant
    first argument can make them constant whatever columns the others name."""
    if isinstance(node, exp.If):
        return True, _branches([(fold(node.this, target), node.args.get("true"))], node.args.get("false"), target)
    if isinstance(node, exp.Case):
        subject = node.this
        arms = [
            (
                fold(arm.this, target)
                if subject is None
                else compare(lambda a, b: a == b, fold(subject, target), fold(arm.this, target)),
                arm.args.get("true"),
            )
            for arm in node.args.get("ifs") or []
        ]
        return True, _branches(arms, node.args.get("default"), target)
    if isinstance(node, exp.Coalesce):
        values = [fold(node.this, target)] + [fold(e, target) for e in node.expressions]
        for i, v in enumerate(values):
            if v is None:
                continue
            return True, (v if opaque(v) is None else _choice(values[i:], v is ROW))
        return True, None
    if isinstance(node, exp.In) and not node.args.get("query") and node.expressions:
        subject = fold(node.this, target)
        values = [fold(e, target) for e in node.expressions]
        if subject is ROW or opaque(subject) is not None:
            return True, subject if subject is ROW else UNKNOWN
        if subject is None:
            return True, None
        hits = [compare(lambda a, b: a == b, subject, v) for v in values]
        if any(h is True for h in hits):
            return True, True  # `1 IN (1, id)`: the constant is in the list whatever the row
        return True, bool_or(hits)
    if isinstance(node, exp.Nullif):
        value, other = fold(node.this, target), fold(node.expression, target)
        if value is None:
            return True, None
        same = compare(lambda a, b: a == b, value, other)
        if opaque(same) is None:
            return True, None if same else value
        return True, _choice([value, None], same is ROW)
    return False, None


def fold(node: exp.Expr | None, target: Target | None = None) -> object:
    if node is not None:
        handled, value = _special(node, target)
        if handled:
            return value
    if isinstance(node, exp.Paren):
        return fold(node.this, target)
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    if isinstance(node, exp.Null):
        return None
    if isinstance(node, exp.Literal):
        if node.is_string:
            return None if node.this == "" and target is not None and target.empty_string_is_null else node.this
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
    if isinstance(node, (exp.EQ, exp.NullSafeEQ, exp.GTE, exp.LTE)) and _same_column(
        node.this, node.expression, target
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
        if opaque(inner) is not None:
            return opaque(inner)
        if isinstance(node.expression, exp.Null):
            return inner is None
        return UNKNOWN
    if node is not None and _target_column(node, target):
        return ROW
    return UNKNOWN
