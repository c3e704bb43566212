"""PostgreSQL helpers shared by the classifier modules: reading pglast nodes, and folding a
predicate (WHERE, MERGE's join and action conditions) to ROW, UNKNOWN or a constant."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pglast import ast, enums

from .model import ROW, UNKNOWN, bool_and, bool_not, bool_or, compare, opaque


def dyn(node: object) -> Any:
    """The node as `Any`, for reading fields after dispatching on `type(node) is X`.

    pglast's stubs cannot follow that dispatch (only isinstance narrows) and declare every field
    Optional; the code below reads the fields the parser always fills for that node class."""
    return node


def fields(node: ast.Node) -> Iterable[str]:
    """Field names of a pglast node: the keys of its class's __slots__ (the stubs omit them)."""
    slots: Iterable[str] = getattr(type(node), "__slots__")  # noqa: B009 - attribute unknown to the stubs
    return slots


def names(items: Iterable[object] | None) -> str:
    return ".".join(str(getattr(i, "sval", "")).lower() for i in items or ())


# ---- WHERE folding: is the predicate row-dependent, constant true/false, or unknowable? ----

_CMP = {
    "=": lambda a, b: a == b,
    "<>": lambda a, b: a != b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
}


@dataclass(frozen=True, slots=True)
class Target:
    """The rows a predicate bounds: the target table of a DELETE / UPDATE / MERGE. Only a
    column of the target makes a predicate row-dependent; `DELETE FROM t USING s WHERE s.k = 1`
    or `MERGE ... ON s.k = 1` depends on the source alone and reaches every row of t.

    `names`: the table's name and alias. `unqualified`: whether an unqualified column can only
    be the target's (no other relation in scope). A column inside a subquery is the target's
    only when qualified with its name: unqualified, it may be the subquery's own."""

    names: frozenset[str]
    unqualified: bool


def target_of(relation: ast.RangeVar | None, others: object) -> Target | None:
    if relation is None:
        return None
    own = {str(relation.relname).lower()}
    if relation.alias is not None:
        own.add(str(relation.alias.aliasname).lower())
    return Target(frozenset(own), not others)


def _has_column(node: object, target: Target | None = None, nested: bool = False) -> bool:
    if isinstance(node, (tuple, list)):
        return any(_has_column(n, target, nested) for n in node)
    if isinstance(node, ast.CurrentOfExpr):
        return True
    if isinstance(node, ast.ColumnRef):
        if target is None:
            return True
        parts = names(node.fields).split(".")
        if len(parts) >= 2:
            return parts[-2] in target.names
        return target.unqualified and not nested
    if isinstance(node, ast.Node):
        inside = nested or isinstance(node, ast.SelectStmt)
        return any(_has_column(getattr(node, s), target, inside) for s in fields(node))
    return False


def _const(node: ast.A_Const) -> object:
    if node.isnull:
        return None
    val = dyn(node.val)
    for attr in ("boolval", "ival", "sval"):
        if hasattr(val, attr):
            return getattr(val, attr)
    if hasattr(val, "fval"):
        return float(val.fval)
    return UNKNOWN


def fold(node: object, target: Target | None = None) -> object:
    """Return ROW, UNKNOWN, or a Python constant (None for SQL NULL). With a `target`, ROW means
    "depends on the target's row"; without, any column counts."""
    if isinstance(node, ast.A_Const):
        return _const(node)
    if isinstance(node, ast.TypeCast):
        inner = fold(node.arg, target)
        if opaque(inner) is not None or inner is None:
            return opaque(inner)
        tname = names(node.typeName.names).rsplit(".", 1)[-1] if node.typeName else ""
        if tname in ("bool", "boolean"):
            return str(inner).strip().lower() in ("t", "true", "y", "yes", "on", "1")
        return inner
    if isinstance(node, ast.BoolExpr):
        args = [fold(a, target) for a in dyn(node).args]
        op = dyn(node).boolop.name
        if op == "AND_EXPR":
            return bool_and(args)
        if op == "OR_EXPR":
            return bool_or(args)
        return bool_not(args[0])
    if isinstance(node, ast.A_Expr) and node.kind == enums.A_Expr_Kind.AEXPR_OP:
        op = names(node.name)
        if op in _CMP and node.lexpr is not None:
            if isinstance(node.lexpr, ast.ColumnRef) and node.lexpr == node.rexpr and op in ("=", "<=", ">="):
                return UNKNOWN  # col = col: true on every non-null row
            return compare(_CMP[op], fold(node.lexpr, target), fold(node.rexpr, target))
    if isinstance(node, ast.NullTest):
        inner = fold(node.arg, target)
        if opaque(inner) is not None:
            return opaque(inner)
        return (inner is None) == (node.nulltesttype == enums.NullTestType.IS_NULL)
    if isinstance(node, ast.BooleanTest):
        inner = fold(node.arg, target)
        if opaque(inner) is not None:
            return opaque(inner)
        test = dyn(node).booltesttype.name
        want = {"IS_TRUE": True, "IS_NOT_TRUE": True, "IS_FALSE": False, "IS_NOT_FALSE": False}.get(test)
        if want is None:  # IS [NOT] UNKNOWN
            res = inner is None
            return res if test == "IS_UNKNOWN" else not res
        res = inner is not None and bool(inner) == want
        return not res if "_NOT_" in test else res
    return ROW if _has_column(node, target) else UNKNOWN
