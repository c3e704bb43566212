"""Reading pglast nodes for the PostgreSQL classifier modules, and the rows a predicate bounds."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pglast import ast


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


def has_column(node: object, target: Target | None = None, nested: bool = False) -> bool:
    if isinstance(node, (tuple, list)):
        return any(has_column(n, target, nested) for n in node)
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
        return any(has_column(getattr(node, s), target, inside) for s in fields(node))
    return False
