"""PostgreSQL helpers shared by the classifier modules: reading pglast nodes, and folding a
predicate (WHERE, MERGE's join and action conditions) to ROW, MIXED, UNKNOWN or a constant.

The folding finds predicates true for every row by their form: constants, `x = x` and `x OR
NOT x` for any expression x, CASE / COALESCE / NULLIF / IN / BETWEEN / IS DISTINCT FROM whose
value does not depend on the row. It cannot find a predicate that holds for every row only
because of the data (`id > 0`) or by arithmetic (`id * 0 = 0`)."""

from __future__ import annotations

from collections.abc import Iterable

from pglast import ast, enums

from .model import MIXED, ROW, UNKNOWN, bool_and, bool_not, bool_or, compare, is_marker, truth
from .pg_forms import cast_const, complementary, const, contains, items, key, operator, scalar_subquery
from .pg_nodes import Target, dyn, fields, has_column, names, target_of

__all__ = ["Target", "dyn", "fields", "fold", "names", "target_of"]

_CMP = {
    "=": lambda a, b: a == b,
    "<>": lambda a, b: a != b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
}


_EQUAL_TRUE = frozenset({"=", "<=", ">="})  # true when both sides are the same non-null value
_EQUAL_FALSE = frozenset({"<>", "!=", "<", ">"})  # false then


def _same_sides(op: str, left: object, right: object, target: Target | None) -> object:
    """`x op x` for one expression x on both sides: true (or false) for every row where x is
    not null, whatever x is; None when the sides differ. A parameter on both sides may hold
    two different values (the shape cache puts one placeholder for every literal), and a
    function may return another value each call."""
    if op not in _EQUAL_TRUE and op not in _EQUAL_FALSE or key(left, target) != key(right, target):
        return None
    if not has_column((left, right), target):
        return None  # row-independent: folded as constants (a parameter stays unknown)
    if op in _EQUAL_TRUE:
        return UNKNOWN  # true on every non-null row: unbounded
    if contains((left, right), (ast.ParamRef,)):
        return MIXED  # false for every row when the values are equal
    if contains((left, right), (ast.FuncCall, ast.SubLink)):
        return None
    return False


def _compare(op: str, left: object, right: object, target: Target | None) -> object:
    same = _same_sides(op, left, right, target)
    if same is not None:
        return same
    if isinstance(left, ast.RowExpr) and isinstance(right, ast.RowExpr) and op in ("=", "<>", "!="):
        pairs = list(zip(dyn(left).args or (), dyn(right).args or (), strict=False))
        if len(pairs) == len(left.args or ()) == len(right.args or ()):
            parts = [_compare(op, a, b, target) for a, b in pairs]
            return bool_and(parts) if op == "=" else bool_or(parts)
    a, b = fold(left, target), fold(right, target)
    if isinstance(a, str) and isinstance(b, str) and op not in ("=", "<>", "!="):
        return UNKNOWN  # the order of strings depends on the collation
    return compare(_CMP[op], a, b)


def _distinct(node: ast.A_Expr, target: Target | None) -> object:
    """IS [NOT] DISTINCT FROM: like = and <>, but NULL is a value."""
    distinct = node.kind == enums.A_Expr_Kind.AEXPR_DISTINCT
    if key(node.lexpr, target) == key(node.rexpr, target) and has_column((node.lexpr, node.rexpr), target):
        if not distinct:
            return True  # even on NULL
        if contains((node.lexpr, node.rexpr), (ast.ParamRef,)):
            return MIXED
        if not contains((node.lexpr, node.rexpr), (ast.FuncCall, ast.SubLink)):
            return False
    a, b = fold(node.lexpr, target), fold(node.rexpr, target)
    if a is None or b is None:
        equal: object = a is b if not is_marker(a) and not is_marker(b) else compare(_CMP["="], a, b)
    else:
        equal = compare(_CMP["="], a, b)
    if equal is None:
        equal = UNKNOWN
    return bool_not(equal) if distinct else equal


def _join(values: list[object], selectors: list[object]) -> object:
    """The value of a CASE / COALESCE / NULLIF that picks one of `values`, where `selectors`
    are the folded conditions that could not be decided here (ROW: the row picks; UNKNOWN or
    MIXED: a value not known here picks, the same for every row)."""
    first = values[0]
    if all(not is_marker(v) and type(v) is type(first) and v == first for v in values):
        return first
    maybe_true = [v is True or v is UNKNOWN for v in values]
    if all(maybe_true):
        return UNKNOWN
    if any(s is UNKNOWN or s is MIXED for s in selectors):
        if any(maybe_true):
            return UNKNOWN  # the unknown may pick a branch true for every row
        if all(v is ROW for v in values):
            return ROW
        if any(v is ROW or v is MIXED for v in values):
            return MIXED
        return False if all(v is False or v is None for v in values) else UNKNOWN
    return MIXED if any(v is UNKNOWN or v is MIXED for v in values) else ROW


def _case(node: ast.CaseExpr, target: Target | None) -> object:
    values: list[object] = []
    selectors: list[object] = []
    for when in node.args or ():
        w = dyn(when)
        cond = truth(_compare("=", node.arg, w.expr, target) if node.arg is not None else fold(w.expr, target))
        if cond is False or cond is None:
            continue
        values.append(fold(w.result, target))
        if cond is True:
            break
        selectors.append(cond)
    else:
        values.append(fold(node.defresult, target) if node.defresult is not None else None)
    return values[-1] if not selectors else _join(values, selectors)


def _coalesce(args: Iterable[object], target: Target | None) -> object:
    values: list[object] = []
    selectors: list[object] = []
    for arg in args:
        value = fold(arg, target)
        if value is None:
            continue
        values.append(value)
        if not is_marker(value):
            break
        selectors.append(value)  # whether this one is null decides
    else:
        values.append(None)
    return values[-1] if not selectors else _join(values, selectors)


def _nullif(node: ast.A_Expr, target: Target | None) -> object:
    equal = truth(_compare("=", node.lexpr, node.rexpr, target))
    if equal is True:
        return None
    value = fold(node.lexpr, target)
    if equal is False or equal is None:
        return value
    return _join([value, None], [equal])


def _like(node: ast.A_Expr, target: Target | None) -> object:
    """`x LIKE '%'` holds for every non-null x."""
    pattern = fold(node.rexpr, target)
    if isinstance(pattern, str) and pattern and set(pattern) == {"%"}:
        return UNKNOWN if operator(node) in ("~~", "~~*") else False
    return ROW if has_column((node.lexpr, node.rexpr), target) else UNKNOWN


def fold(node: object, target: Target | None = None) -> object:
    """Return ROW, MIXED, UNKNOWN, or a Python constant (None for SQL NULL). With a `target`,
    ROW means "depends on the target's row"; without, any column counts."""
    expr = scalar_subquery(node)
    if expr is not None:
        return fold(expr, target)
    if isinstance(node, ast.A_Const):
        return const(node)
    if isinstance(node, ast.TypeCast):
        return cast_const(fold(node.arg, target), node.typeName)
    if isinstance(node, ast.BoolExpr):
        op = dyn(node).boolop
        if op == enums.BoolExprType.NOT_EXPR:
            return bool_not(fold(dyn(node).args[0], target))
        operands = items(node, op)
        args = [fold(a, target) for a in operands]
        if op == enums.BoolExprType.AND_EXPR:
            # `x AND NOT x`: false for every row where x is not null
            return False if complementary(operands, target) else bool_and(args)
        # `x OR NOT x`: true for every row where x is not null
        return bool_or([*args, UNKNOWN]) if complementary(operands, target) else bool_or(args)
    if isinstance(node, ast.A_Expr):
        return _a_expr(node, target)
    if isinstance(node, ast.CaseExpr):
        return _case(node, target)
    if isinstance(node, ast.CoalesceExpr):
        return _coalesce(node.args or (), target)
    if isinstance(node, ast.NullTest):
        inner = fold(node.arg, target)
        if inner is MIXED:
            return UNKNOWN
        if inner in (ROW, UNKNOWN):
            return inner
        return (inner is None) == (node.nulltesttype == enums.NullTestType.IS_NULL)
    if isinstance(node, ast.BooleanTest):
        inner = fold(node.arg, target)
        if inner is MIXED:
            return UNKNOWN
        if inner in (ROW, UNKNOWN):
            return inner
        test = dyn(node).booltesttype.name
        want = {"IS_TRUE": True, "IS_NOT_TRUE": True, "IS_FALSE": False, "IS_NOT_FALSE": False}.get(test)
        if want is None:  # IS [NOT] UNKNOWN
            res = inner is None
            return res if test == "IS_UNKNOWN" else not res
        res = inner is not None and bool(truth(inner)) == want
        return not res if "_NOT_" in test else res
    return ROW if has_column(node, target) else UNKNOWN


def _a_expr(node: ast.A_Expr, target: Target | None) -> object:
    kind = node.kind
    kinds = enums.A_Expr_Kind
    op = operator(node)
    if kind == kinds.AEXPR_OP and op in _CMP and node.lexpr is not None:
        return _compare(op, node.lexpr, node.rexpr, target)
    if kind == kinds.AEXPR_IN and isinstance(node.rexpr, (tuple, list)):
        negated = op != "="
        parts = [_compare("<>" if negated else "=", node.lexpr, item, target) for item in node.rexpr]
        return bool_and(parts) if negated else bool_or(parts)
    if kind in (kinds.AEXPR_OP_ANY, kinds.AEXPR_OP_ALL) and isinstance(node.rexpr, ast.A_ArrayExpr) and op in _CMP:
        parts = [_compare(op, node.lexpr, item, target) for item in node.rexpr.elements or ()]
        return bool_or(parts) if kind == kinds.AEXPR_OP_ANY else bool_and(parts)
    if kind in (kinds.AEXPR_DISTINCT, kinds.AEXPR_NOT_DISTINCT):
        return _distinct(node, target)
    if kind == kinds.AEXPR_NULLIF:
        return _nullif(node, target)
    if kind in (kinds.AEXPR_LIKE, kinds.AEXPR_ILIKE):
        return _like(node, target)
    if kind in (kinds.AEXPR_BETWEEN, kinds.AEXPR_NOT_BETWEEN, kinds.AEXPR_BETWEEN_SYM, kinds.AEXPR_NOT_BETWEEN_SYM):
        low, high = node.rexpr  # type: ignore[misc]

        def between(a: object, b: object) -> object:
            return bool_and([_compare(">=", node.lexpr, a, target), _compare("<=", node.lexpr, b, target)])

        inside = between(low, high)
        if kind in (kinds.AEXPR_BETWEEN_SYM, kinds.AEXPR_NOT_BETWEEN_SYM):
            inside = bool_or([inside, between(high, low)])
        return inside if kind in (kinds.AEXPR_BETWEEN, kinds.AEXPR_BETWEEN_SYM) else bool_not(inside)
    return ROW if has_column(node, target) else UNKNOWN
