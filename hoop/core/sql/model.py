"""The dialect-neutral shape of a classified statement.

PostgreSQL (pglast), MySQL (sqlglot + our own lexer) and shell command lines all produce these
objects, so one guardrail engine serves every protocol. The model states facts; it never says
"safe". Whatever a classifier cannot understand is reported (``error``, ``dynamic`` or kind
``"unknown"``) so that policy can fail closed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, cast

# Flag set on the statements nested in a plain EXPLAIN (without ANALYZE): the server only plans
# them, it does not run them. Guardrails skip such subtrees; `Classification.walk` still yields them.
PLANNED_ONLY = "planned_only"


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement (or shell command) and the facts guardrails match on."""

    kind: str
    text: str
    object: str = ""
    tables: frozenset[str] = field(default_factory=frozenset)
    functions: frozenset[str] = field(default_factory=frozenset)
    where: str | None = None  # update/delete only: "missing" | "trivial" | "present"
    dynamic: bool = False
    flags: frozenset[str] = field(default_factory=frozenset)
    inner: tuple[Statement, ...] = ()

    def walk(self, *, executed_only: bool = False) -> Iterator[Statement]:
        """This statement and every nested one, depth first."""
        if executed_only and PLANNED_ONLY in self.flags:
            return
        yield self
        for child in self.inner:
            yield from child.walk(executed_only=executed_only)


@dataclass(frozen=True, slots=True)
class Classification:
    """Every statement of one query text, or the parse error that prevented classifying it."""

    statements: tuple[Statement, ...]
    error: str | None = None
    dialect: str = ""  # "postgres" | "mysql" | "shell": tells guardrails which rules can apply
    # A syntax error the server would report too (not a text the gateway merely cannot read):
    # `error` is then the message and `error_at` its 1-based character position in the text.
    syntax: bool = False
    error_at: int | None = None

    def walk(self, *, executed_only: bool = False) -> Iterator[Statement]:
        """All statements including nested ones; ``executed_only`` skips plain-EXPLAIN targets."""
        for stmt in self.statements:
            yield from stmt.walk(executed_only=executed_only)


class PreparedStatements:
    """Per-session memory of SQL-level ``PREPARE name ...`` so ``EXECUTE name`` can be judged.

    The session calls ``observe`` for statements the server accepted and ``resolve`` before
    evaluating guardrails: an ``execute`` statement then carries the prepared body in ``inner``.
    An EXECUTE of a name we never saw is marked dynamic (its effect is unknown: fail closed).
    """

    def __init__(self) -> None:
        self._bodies: dict[str, tuple[Statement, ...]] = {}
        self._dynamic: set[str] = set()

    def observe(self, classification: Classification) -> None:
        for stmt in classification.statements:
            name = stmt.object.lower()
            if stmt.kind == "prepare" and name:
                self._bodies[name] = stmt.inner
                if stmt.dynamic:
                    self._dynamic.add(name)
                else:
                    self._dynamic.discard(name)
            elif stmt.kind == "deallocate":
                if name in ("", "all"):
                    self._bodies.clear()
                    self._dynamic.clear()
                else:
                    self._bodies.pop(name, None)
                    self._dynamic.discard(name)

    def resolve(self, classification: Classification) -> Classification:
        """Attach each EXECUTE's prepared body, in statement order: a PREPARE earlier in the same
        text (`PREPARE p AS ...; EXECUTE p`) defines the name for the EXECUTEs after it."""
        if not any(s.kind == "execute" for s in classification.statements):
            return classification
        bodies, dynamic = dict(self._bodies), set(self._dynamic)
        out = []
        for stmt in classification.statements:
            name = stmt.object.lower()
            if stmt.kind == "prepare" and name:
                bodies[name] = stmt.inner
                (dynamic.add if stmt.dynamic else dynamic.discard)(name)
            elif stmt.kind == "deallocate":
                for gone in list(bodies) if name in ("", "all") else [name]:
                    bodies.pop(gone, None)
                    dynamic.discard(gone)
            elif stmt.kind == "execute" and not (classification.dialect == "mysql" and name == "immediate"):
                # (MariaDB's EXECUTE IMMEDIATE 'text' carries its own statements, or is dynamic)
                body = bodies.get(name)
                if body is None:
                    stmt = replace(stmt, dynamic=True)
                else:
                    stmt = replace(stmt, inner=stmt.inner + body, dynamic=stmt.dynamic or name in dynamic)
            out.append(stmt)
        return replace(classification, statements=tuple(out))


_NUMERIC_PREFIX = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?")

# ---- Three-valued folding of WHERE predicates, shared by the dialects ----
# A folded value is ROW (depends on the row), UNKNOWN (row-independent but not computable here,
# e.g. random() or a parameter), or a Python constant (None for SQL NULL).


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


ROW = _Marker("ROW")
UNKNOWN = _Marker("UNKNOWN")
# An AND of ROW with an UNKNOWN operand: row-dependent, or false for every row should the
# unknown be false. Both bound a WHERE, but a NOT (or IS FALSE) of it may be true for every
# row (`NOT (rand() > 2 AND id = 1)`), so negating it gives UNKNOWN, not ROW.
ROW_OR_FALSE = _Marker("ROW_OR_FALSE")
_ROWS = (ROW, ROW_OR_FALSE)


def truth(value: object) -> object:
    """SQL truthiness of a folded constant (MySQL: WHERE 1 / WHERE 'a' are legal). A string is
    true when PostgreSQL reads it as true or MySQL's cast to a number (its leading numeric
    part, 0 without one: '1abc' is 1) is not 0."""
    if isinstance(value, _Marker) or value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    text = str(value).strip().lower()
    if text in ("t", "true", "y", "yes", "on"):
        return True
    number = _NUMERIC_PREFIX.match(text)
    return number is not None and float(number.group()) != 0


def bool_and(values: list[object]) -> object:
    vals = [truth(v) for v in values]
    if any(v is False for v in vals):
        return False
    if any(v in _ROWS for v in vals):
        return ROW_OR_FALSE if any(v is UNKNOWN or v is ROW_OR_FALSE for v in vals) else ROW
    for marker in (UNKNOWN, None):
        if any(v is marker for v in vals):
            return marker
    return True


def bool_or(values: list[object]) -> object:
    """OR of folded values. An UNKNOWN operand (row-independent, value not known here: a
    parameter, random()) may be true, and then the whole OR is true for every row: so it
    outranks ROW, and `id = $1 OR $2` is not taken as bounded by `id = $1`."""
    vals = [truth(v) for v in values]
    if any(v is True for v in vals):
        return True
    for marker in (UNKNOWN, ROW, ROW_OR_FALSE, None):
        if any(v is marker for v in vals):
            return marker
    return False


def bool_not(value: object) -> object:
    v = truth(value)
    if v is ROW_OR_FALSE:
        return UNKNOWN
    return v if v is ROW or v is UNKNOWN or v is None else not v


def opaque(value: object) -> object:
    """A folded value an IS test or a cast cannot compute: ROW and UNKNOWN stay, ROW_OR_FALSE
    becomes UNKNOWN (`x IS FALSE` negates it); None for a constant."""
    if value is ROW_OR_FALSE:
        return UNKNOWN
    return value if value is ROW or value is UNKNOWN else None


def compare(op: Callable[[Any, Any], object], left: object, right: object) -> object:
    if left is ROW or right is ROW:
        return ROW
    if isinstance(left, _Marker) or isinstance(right, _Marker):
        return UNKNOWN  # (a ROW_OR_FALSE operand may be a constant false)
    if left is None or right is None:
        return None
    if isinstance(left, str) != isinstance(right, str):
        try:  # '1' = 1: compare numerically, as both servers do
            left, right = float(cast(Any, left)), float(cast(Any, right))
        except (TypeError, ValueError):
            return UNKNOWN
    try:
        return bool(op(left, right))
    except TypeError:
        return UNKNOWN


def where_state(folded: object) -> str:
    """Map a folded WHERE predicate to "present" or "trivial" (missing is decided by the caller)."""
    v = truth(folded)
    if v in _ROWS or v is False or v is None:
        return "present"  # row-dependent, or matches nothing
    return "trivial"  # constant true, or row-independent and unknowable: treat as unbounded
