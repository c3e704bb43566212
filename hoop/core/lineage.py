"""Lineage of result columns: which source columns each output column of a statement derives from.

A column rule masks a column read as it is (the doors see its origin in the result's column
descriptions). A value can also leave through an expression (`replace(email, '@', ' at ')`,
`email || ''`, `json_build_object('e', email)`, `string_agg(ssn, ',')`), a view or a CTE; the
result then names no origin, or the view. For those columns the doors ask this module which
source columns the output *derives* from: an output derived from a masked column is masked
whole.

How: the statement is parsed with sqlglot in the server's dialect, its relations are resolved
against the upstream catalog (`Relation`, looked up by the door; views are expanded from their
definitions), `*` is expanded, and each output expression is walked. A column reached through
any function or operator taints the output, except through `SAFE_FUNCTIONS` and boolean-valued
nodes (`SAFE_NODES`: comparisons, `IS NULL`, `LIKE`, `IN`, `EXISTS`, `AND`/`OR`/`NOT`), which
cannot return the value itself; so `count(email)`, `length(email)` and `email = 'x'` are not
masked, and `CASE WHEN email LIKE 'a%' THEN 'yes' END` is not, while `CASE WHEN ... THEN email
END` is. What cannot be followed (a relation the catalog does not know, a recursive CTE, a
statement the parser rejects, several statements whose outputs cannot be told apart) raises
`LineageUnknown` with the reason; the masking rule's `on_unknown` then decides (mask or block).

Not masking's job: inference through predicates (`WHERE email LIKE 'a%'` narrows rows, and a
boolean output reveals one bit per row).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.qualify import qualify

from hoop.core.masking import ColumnRef

# Functions whose result cannot carry the argument's value: a count, a length.
SAFE_FUNCTIONS = frozenset({"count", "length", "char_length", "character_length", "octet_length", "bit_length"})
# Boolean-valued nodes: comparisons and tests (their operands are not the output).
SAFE_NODES: tuple[type[exp.Expression], ...] = (
    exp.EQ,
    exp.NEQ,
    exp.NullSafeEQ,
    exp.NullSafeNEQ,
    exp.GT,
    exp.GTE,
    exp.LT,
    exp.LTE,
    exp.Is,
    exp.Like,
    exp.ILike,
    exp.In,
    exp.Between,
    exp.Exists,
    exp.And,
    exp.Or,
    exp.Not,
    exp.Count,
    exp.Length,
)
MAX_DEPTH = 16  # views of views, nested subqueries: deeper is unknown
DIALECTS = {"postgres": "postgres", "mysql": "mysql"}

Taint = frozenset[ColumnRef]
NONE: Taint = frozenset()


class LineageUnknown(Exception):
    """The statement's output cannot be followed to its sources; the message says why."""


@dataclass(frozen=True)
class Relation:
    """A table or view as the upstream catalog knows it (names lower-case)."""

    schema: str
    name: str
    columns: tuple[str, ...]
    view: str | None = None  # a view's definition (its SELECT), in the server's dialect


Catalog = Mapping[tuple[str, str], "Relation | None"]  # (schema as written or "", name) -> relation
Outputs = list[tuple[Taint, ...]]  # per statement that returns rows, the sources of each column


class LineageCache:
    """Lineages by key (a statement text, with whatever else decides what its names mean) for
    `ttl` seconds, at most `size` of them; one found unknown is kept as its reason and raised
    again, so a statement that cannot be followed is not parsed at every execution either."""

    def __init__(self, ttl: float, size: int) -> None:
        self.ttl, self.size = ttl, size
        self.entries: dict[Hashable, tuple[float, Outputs | str]] = {}

    def get(self, key: Hashable) -> Outputs | None:
        """The lineage if known within `ttl` (raises LineageUnknown for one found unknown)."""
        hit = self.entries.get(key)
        if hit is None or time.monotonic() - hit[0] >= self.ttl:
            return None
        if isinstance(hit[1], str):
            raise LineageUnknown(hit[1])
        return hit[1]

    async def follow(self, key: Hashable, compute: Callable[[], Awaitable[Outputs]]) -> Outputs:
        """The cached lineage, or `compute`'s, kept (raises LineageUnknown)."""
        known = self.get(key)
        if known is not None:
            return known
        if len(self.entries) >= self.size:
            self.entries.clear()
        try:
            out: Outputs | str = await compute()
        except LineageUnknown as why:
            out = str(why)
        self.entries[key] = (time.monotonic(), out)
        if isinstance(out, str):
            raise LineageUnknown(out)
        return out

    def clear(self) -> None:
        self.entries.clear()


def parse(sql: str, dialect: str) -> list[Any]:
    try:
        return [e for e in sqlglot.parse(sql, read=DIALECTS[dialect]) if e is not None]
    except SqlglotError as error:
        raise LineageUnknown(f"the statement could not be parsed for lineage: {_first_line(error)}") from None


def relations_named(sql: str, dialect: str) -> set[tuple[str, str]]:
    """The relations a statement names (schema as written or "", name), CTE names excluded:
    what the door looks up in the catalog before `lineage`."""
    out: set[tuple[str, str]] = set()
    for statement in parse(sql, dialect):
        ctes = {cte.alias_or_name.lower() for cte in statement.find_all(exp.CTE)}
        for table in statement.find_all(exp.Table):
            if not isinstance(table.this, exp.Identifier):
                continue  # a table function
            name, schema = table.name.lower(), table.db.lower()
            if not schema and name in ctes:
                continue
            out.add((schema, name))
    return out


def lineage(sql: str, dialect: str, catalog: Catalog) -> list[tuple[Taint, ...]]:
    """For each statement of `sql` that returns rows, the sources of each output column."""
    return [out for statement in parse(sql, dialect) if (out := _statement(statement, dialect, catalog)) is not None]


def by_position(outputs: list[tuple[Taint, ...]], width: int) -> list[Taint | None]:
    """The sources of each of a result's `width` columns, from the lineage of the statements
    of its text: the one statement of that width, or (several statements in one text, whose
    results cannot be told apart) the union at each position. None: not followed."""
    fitting = [o for o in outputs if len(o) == width]
    if not fitting:
        return [None] * width
    return [frozenset().union(*(o[i] for o in fitting)) for i in range(width)]


def _statement(statement: exp.Expression, dialect: str, catalog: Catalog) -> tuple[Taint, ...] | None:
    walker = _Walker(dialect, catalog)
    if isinstance(statement, (exp.Insert, exp.Update, exp.Delete)):
        returning = statement.args.get("returning")
        if returning is None:
            return None
        return walker.returning(statement, returning)
    if not isinstance(statement, (exp.Query, exp.Subquery)):
        return None  # SET, SHOW, DDL...: no user data to follow
    return walker.query(statement)


@dataclass
class _Source:
    """What an alias in a FROM clause stands for."""

    relation: Relation | None = None  # a table, or a view (expanded through `outputs`)
    outputs: dict[str, Taint] = field(default_factory=dict)  # a derived table, CTE or view: by column
    everything: Taint | None = None  # a table function: any of its columns derives from its arguments


class _Walker:
    def __init__(self, dialect: str, catalog: Catalog) -> None:
        self.dialect = DIALECTS[dialect]
        self.catalog = catalog
        self.views: dict[tuple[str, str], dict[str, Taint]] = {}
        self.resolved: dict[tuple[str, str], Relation] = {}  # by the schema qualification gave it
        self.depth = 0

    # -- statements -----------------------------------------------------------------------------

    def query(self, statement: exp.Expression) -> tuple[Taint, ...]:
        qualified = self._qualified(statement)
        return tuple(self._outputs(qualified, {}, []))

    def returning(self, statement: exp.Expression, returning: exp.Expression) -> tuple[Taint, ...]:
        target = statement.this if not isinstance(statement.this, exp.Schema) else statement.this.this
        if not isinstance(target, exp.Table):
            raise LineageUnknown("the target of RETURNING is not a table")
        relation = self._relation(target)
        scope = {target.alias_or_name.lower(): self._table_source(relation)}
        for table in statement.find_all(exp.Table):  # UPDATE ... FROM, DELETE ... USING
            if table is not target and isinstance(table.this, exp.Identifier):
                scope[table.alias_or_name.lower()] = self._table_source(self._relation(table))
        taints = []
        for e in returning.expressions:
            if isinstance(e, exp.Star):
                taints += [frozenset({_ref(relation, c)}) for c in relation.columns]
            else:
                taints.append(self._unscoped(e, scope))
        return tuple(taints)

    def _unscoped(self, e: exp.Expression, scope: dict[str, _Source]) -> Taint:
        """RETURNING's unqualified columns belong to any relation of the statement that has them."""
        out: set[ColumnRef] = set()
        for col in _tainting_columns(e):
            for alias, source in scope.items():
                if col.table and col.table.lower() != alias:
                    continue
                if source.relation is not None and col.name.lower() in source.relation.columns:
                    out |= self._column_of(source, col.name.lower())
        return frozenset(out)

    # -- qualification --------------------------------------------------------------------------

    def _qualified(self, statement: exp.Expression) -> exp.Expression:
        """The statement with relations resolved, stars expanded and columns qualified."""
        schema: dict[str, Any] = {}
        statement = statement.copy()
        ctes = {cte.alias_or_name.lower() for cte in statement.find_all(exp.CTE)}
        for table in statement.find_all(exp.Table):
            if not isinstance(table.this, exp.Identifier):
                continue
            if not table.db and table.name.lower() in ctes:
                continue
            relation = self._relation(table)
            self.resolved[(relation.schema, relation.name)] = relation
            table.set("db", exp.to_identifier(relation.schema))
            schema.setdefault(relation.schema, {})[relation.name] = {c: "text" for c in relation.columns}
        try:
            return qualify(
                statement,
                schema=schema,
                dialect=self.dialect,
                validate_qualify_columns=True,
                quote_identifiers=False,
                identify=False,
            )
        except SqlglotError as error:
            raise LineageUnknown(f"the statement's columns could not be resolved: {_first_line(error)}") from None

    def _relation(self, table: exp.Table) -> Relation:
        key = (table.db.lower(), table.name.lower())
        relation = self.resolved.get(key) or self.catalog.get(key)
        if relation is None:
            shown = ".".join(p for p in key if p)
            raise LineageUnknown(f"relation {shown} is not in the catalog (a temporary table, or not visible)")
        return relation

    # -- outputs --------------------------------------------------------------------------------

    def _outputs(self, node: Any, ctes: dict[str, _Source], outer: list[dict[str, _Source]]) -> list[Taint]:
        """The taint of each output column of a query node."""
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise LineageUnknown(f"nested deeper than {MAX_DEPTH} levels")
            if isinstance(node, exp.Subquery):
                return self._outputs(node.this, ctes, outer)
            ctes = self._with(node, ctes, outer)
            if isinstance(node, exp.SetOperation):
                left = self._outputs(node.left, ctes, outer)
                right = self._outputs(node.right, ctes, outer)
                if len(left) != len(right):
                    raise LineageUnknown("the branches of a set operation differ in width")
                return [a | b for a, b in zip(left, right)]
            if not isinstance(node, exp.Select):
                raise LineageUnknown(f"{node.key} as a query is not followed")
            scope = self._scope(node, ctes, outer)
            return [self._taint(e, scope, ctes, outer) for e in node.expressions]
        finally:
            self.depth -= 1

    def _with(
        self, node: exp.Expression, ctes: dict[str, _Source], outer: list[dict[str, _Source]]
    ) -> dict[str, _Source]:
        with_ = node.args.get("with") or node.args.get("with_")
        if not isinstance(with_, exp.With):
            return ctes
        if with_.args.get("recursive"):
            raise LineageUnknown("a recursive CTE is not followed")
        ctes = dict(ctes)
        for cte in with_.expressions:
            names = [c.name.lower() for c in cte.args["alias"].columns] if cte.args.get("alias") else []
            outputs = self._outputs(cte.this, ctes, outer)
            labels = names or [_label(e) for e in cte.this.selects]
            ctes[cte.alias_or_name.lower()] = _Source(outputs=_by_name(labels, outputs))
        return ctes

    def _scope(
        self, select: exp.Select, ctes: dict[str, _Source], outer: list[dict[str, _Source]]
    ) -> dict[str, _Source]:
        scope: dict[str, _Source] = {}
        sources: list[exp.Expression] = []
        from_ = select.args.get("from") or select.args.get("from_")
        if from_ is not None:
            sources.append(from_.this)
        sources += [join.this for join in select.args.get("joins") or ()]
        for source in sources:
            alias = source.alias_or_name.lower()
            if isinstance(source, exp.Table) and isinstance(source.this, exp.Identifier):
                name = source.name.lower()
                if not source.db and name in ctes:
                    scope[alias] = ctes[name]
                else:
                    scope[alias] = self._table_source(self._relation(source))
            elif isinstance(source, exp.Subquery):
                outputs = self._outputs(source.this, ctes, [scope, *outer])
                labels = _alias_columns(source) or [_label(e) for e in source.this.selects]
                scope[alias] = _Source(outputs=_by_name(labels, outputs))
            else:  # a table function or UNNEST: its columns derive from its arguments
                args = [a for a in source.iter_expressions() if not isinstance(a, exp.TableAlias)]
                everything = frozenset().union(*(self._taint(a, {**scope}, ctes, outer) for a in args))
                scope[alias] = _Source(everything=everything)
        return scope

    def _table_source(self, relation: Relation) -> _Source:
        if relation.view is None:
            return _Source(relation=relation)
        return _Source(relation=relation, outputs=self._view(relation))

    def _view(self, relation: Relation) -> dict[str, Taint]:
        key = (relation.schema, relation.name)
        known = self.views.get(key)
        if known is not None:
            return known
        assert relation.view is not None
        statements = parse(relation.view, "postgres" if self.dialect == "postgres" else "mysql")
        if len(statements) != 1:
            raise LineageUnknown(f"the definition of view {relation.schema}.{relation.name} is not one query")
        self.depth += 1
        try:
            outputs = self._outputs(self._qualified(statements[0]), {}, [])
        finally:
            self.depth -= 1
        if len(outputs) != len(relation.columns):
            raise LineageUnknown(f"view {relation.schema}.{relation.name} has columns its definition does not match")
        known = self.views[key] = _by_name(list(relation.columns), outputs)
        return known

    # -- expressions ----------------------------------------------------------------------------

    def _taint(
        self, e: exp.Expression, scope: dict[str, _Source], ctes: dict[str, _Source], outer: list[dict[str, _Source]]
    ) -> Taint:
        if isinstance(e, SAFE_NODES) or (isinstance(e, exp.Anonymous) and e.name.lower() in SAFE_FUNCTIONS):
            return NONE
        if isinstance(e, exp.TableColumn):  # a whole row: `select u::text from users u`, `row_to_json(u)`
            return self._whole_row(e.name.lower(), [scope, *outer])
        if isinstance(e, exp.Column):
            if isinstance(e.this, exp.Star):  # `to_jsonb(users.*)`
                return self._whole_row(e.table.lower(), [scope, *outer])
            return self._column(e, [scope, *outer])
        if isinstance(e, exp.Window):  # its PARTITION BY and ORDER BY choose rows, not the value
            return self._taint(e.this, scope, ctes, outer)
        if isinstance(e, (exp.Subquery, exp.Select, exp.SetOperation)):  # a scalar or array subquery
            return frozenset().union(*self._outputs(e, ctes, [scope, *outer]))
        return frozenset().union(*(self._taint(child, scope, ctes, outer) for child in e.iter_expressions()))

    def _column(self, col: exp.Column, scopes: list[dict[str, _Source]]) -> Taint:
        alias, name = col.table.lower(), col.name.lower()
        for scope in scopes:
            source = scope.get(alias)
            if source is not None:
                return self._column_of(source, name)
        if not alias:
            return self._whole_row(name, scopes)  # a relation's name used as a value is its whole row
        raise LineageUnknown(f"column {alias}.{name} refers to nothing the statement reads")

    def _whole_row(self, alias: str, scopes: list[dict[str, _Source]]) -> Taint:
        """Every column of the relation `alias` names: a row value carries them all."""
        for scope in scopes:
            source = scope.get(alias)
            if source is None:
                continue
            if source.everything is not None:
                return source.everything
            if source.outputs:
                return frozenset().union(*source.outputs.values())
            assert source.relation is not None
            return frozenset(_ref(source.relation, c) for c in source.relation.columns)
        raise LineageUnknown(f"{alias} is neither a column nor a relation the statement reads")

    def _column_of(self, source: _Source, name: str) -> Taint:
        if source.everything is not None:
            return source.everything
        if source.outputs:
            if name not in source.outputs:
                raise LineageUnknown(f"column {name} is not an output of the relation it is read from")
            return source.outputs[name]
        assert source.relation is not None
        return frozenset({_ref(source.relation, name)})


def _tainting_columns(e: exp.Expression) -> Iterable[exp.Column]:
    if isinstance(e, SAFE_NODES):
        return
    if isinstance(e, exp.Column):
        yield e
        return
    for child in e.iter_expressions():
        yield from _tainting_columns(child)


def _ref(relation: Relation, column: str) -> ColumnRef:
    return ColumnRef(relation.schema, relation.name, column)


def _label(e: exp.Expression) -> str:
    return e.alias_or_name.lower()


def _alias_columns(source: exp.Expression) -> list[str]:
    alias = source.args.get("alias")
    return [c.name.lower() for c in alias.columns] if isinstance(alias, exp.TableAlias) and alias.columns else []


def _by_name(labels: list[str], outputs: list[Taint]) -> dict[str, Taint]:
    """Outputs by column name; a name given twice derives from both (reading it is ambiguous)."""
    out: dict[str, Taint] = {}
    for label, taint in zip(labels, outputs):
        out[label] = out.get(label, NONE) | taint
    return out


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__


def catalog_from_statement(sql: str, dialect: str) -> Catalog:
    """A catalog built from the statement alone, for previews of draft rules over recorded
    history (no upstream to ask): each relation gets the columns the statement names for it.
    Enough for explicit expressions (`upper(t.email)`); a `*` or an ambiguous name cannot be
    expanded from it, and such statements come out unknown."""
    catalog: dict[tuple[str, str], Relation | None] = {}
    for statement in parse(sql, dialect):
        ctes = {cte.alias_or_name.lower() for cte in statement.find_all(exp.CTE)}
        tables = [
            t
            for t in statement.find_all(exp.Table)
            if isinstance(t.this, exp.Identifier) and (t.db or t.name.lower() not in ctes)
        ]
        named: dict[tuple[str, str], set[str]] = {(t.db.lower(), t.name.lower()): set() for t in tables}
        by_alias = {t.alias_or_name.lower(): (t.db.lower(), t.name.lower()) for t in tables}
        for col in statement.find_all(exp.Column):
            key = by_alias.get(col.table.lower()) if col.table else (next(iter(named)) if len(named) == 1 else None)
            if key is not None:
                named[key].add(col.name.lower())
        for (schema, name), columns in named.items():
            catalog[(schema, name)] = Relation(schema, name, tuple(sorted(columns)))
    return catalog
