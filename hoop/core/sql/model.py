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
from decimal import Decimal
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
    argv: tuple[str, ...] = ()  # shell commands: the words as split (program as written)
    why_dynamic: str = ""  # shell commands: what the gateway cannot expand, when dynamic

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

    PostgreSQL refuses a PREPARE of a name that exists and keeps the first body, so there a
    second PREPARE adds its body to the ones an EXECUTE is judged by instead of replacing
    them; and a name once prepared under review (`held`: approved or not, the gateway cannot
    tell) stays unknown for the session. (MySQL replaces the body of an existing name.)
    """

    def __init__(self) -> None:
        self._bodies: dict[str, tuple[Statement, ...]] = {}
        self._dynamic: set[str] = set()
        self._held: set[str] = set()

    def held(self, classification: Classification) -> None:
        """Statements decided "review": their PREPAREs may run once an approver says so."""
        for stmt in classification.statements:
            if stmt.kind == "prepare" and stmt.object:
                self._held.add(stmt.object.lower())

    def observe(self, classification: Classification) -> None:
        keeps_first = classification.dialect == "postgres"
        for stmt in classification.statements:
            name = stmt.object.lower()
            if stmt.kind == "prepare" and name:
                earlier = self._bodies.get(name, ()) if keeps_first else ()
                self._bodies[name] = earlier + stmt.inner
                if stmt.dynamic or (keeps_first and name in self._held):
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
        keeps_first = classification.dialect == "postgres"
        out = []
        for stmt in classification.statements:
            name = stmt.object.lower()
            if stmt.kind == "prepare" and name:
                bodies[name] = (bodies.get(name, ()) if keeps_first else ()) + stmt.inner
                (dynamic.add if stmt.dynamic or (keeps_first and name in self._held) else dynamic.discard)(name)
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


# ---- Three-valued folding of WHERE predicates, shared by the dialects ----
# A folded value is ROW (depends on the row), UNKNOWN (row-independent but not computable here,
# e.g. random() or a parameter), MIXED (depends on the row unless a value not known here makes it
# a constant: `id = 1 AND $1` is row-dependent when $1 is true and false for every row when it is
# not), or a Python constant (None for SQL NULL).
#
# The folding must never take a predicate as bounded when some value of its unknowns makes it
# true for every row: the decision cache relies on it (a text's shape is classified with every
# literal unknown, and reused for all texts of that shape only if it comes out the same). So an
# operation that could turn "false" into "true" (NOT, a comparison, IS TRUE, ...) turns MIXED
# into UNKNOWN rather than keeping it row-dependent.


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


ROW = _Marker("ROW")
UNKNOWN = _Marker("UNKNOWN")
MIXED = _Marker("MIXED")


def is_marker(value: object) -> bool:
    return value is ROW or value is UNKNOWN or value is MIXED


def truth(value: object) -> object:
    """SQL truthiness of a folded constant (MySQL: WHERE 1 / WHERE 'a' are legal). A string is
    true when PostgreSQL reads it as true or MySQL's cast to a number (its leading numeric
    part, 0 without one: '1abc' is 1) is not 0."""
    if is_marker(value) or value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    text = str(value).strip().lower()
    if text in ("t", "true", "y", "yes", "on"):
        return True
    number = _NUMERIC_PREFIX.match(text)
    return number is not None and float(number.group()) != 0


_NUMERIC_PREFIX = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?")


def bool_and(values: list[object]) -> object:
    """AND of folded values. A row-dependent operand with an unknown one is MIXED: false for
    every row if the unknown is false, so a NOT around it may be true for every row."""
    vals = [truth(v) for v in values]
    if any(v is False for v in vals):
        return False
    row = any(v is ROW for v in vals)
    if any(v is MIXED for v in vals) or (row and any(v is UNKNOWN for v in vals)):
        return MIXED
    for marker in (ROW, UNKNOWN, None):
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
    for marker in (UNKNOWN, ROW, MIXED, None):
        if any(v is marker for v in vals):
            return marker
    return False


def bool_not(value: object) -> object:
    v = truth(value)
    if v is MIXED:
        return UNKNOWN  # NOT (row AND unknown): true for every row when the unknown is false
    return v if v is ROW or v is UNKNOWN or v is None else not v


def _number(value: object) -> Decimal | None:
    """A finite number for a numeric comparison ('1' = 1 compares numerically on both servers)."""
    try:
        if isinstance(value, float):
            value = repr(value)
        number = Decimal(cast(Any, value))
    except (TypeError, ValueError, ArithmeticError):
        return None
    return number if number.is_finite() else None


def compare(op: Callable[[Any, Any], object], left: object, right: object) -> object:
    if left is MIXED or right is MIXED:
        return UNKNOWN  # may compare a constant false with a constant: any outcome for every row
    if left is ROW or right is ROW:
        return ROW
    if left is UNKNOWN or right is UNKNOWN:
        return UNKNOWN
    if left is None or right is None:
        return None
    if isinstance(left, bool) != isinstance(right, bool):
        return UNKNOWN
    if isinstance(left, str) != isinstance(right, str) or isinstance(left, float) or isinstance(right, float):
        left, right = _number(left), _number(right)
        if left is None or right is None:
            return UNKNOWN
    try:
        return bool(op(left, right))
    except (TypeError, ArithmeticError):
        return UNKNOWN


def where_state(folded: object) -> str:
    """Map a folded WHERE predicate to "present" or "trivial" (missing is decided by the caller)."""
    v = truth(folded)
    if v is ROW or v is MIXED or v is False or v is None:
        return "present"  # row-dependent, or matches nothing
    return "trivial"  # constant true, or row-independent and unknowable: treat as unbounded
