"""User-defined routines that already exist upstream, so a call is judged by what it runs.

`SELECT f()`, `CALL p()` and a write to a table with triggers run code the statement's text
does not show. The gateway reads that code from the server's catalog (function and procedure
bodies, triggers, PostgreSQL rules) and builds a `RoutineCatalog`: each body classified once
with the same classifiers as top-level text. `expand` then attaches the body of every routine a
statement can reach (calls, the triggers and rules of the tables it writes, and transitively the
calls and writes inside those bodies) as inner statements, so every rule applies to them.

Built-in functions are not in the catalog (the gateway reads only non-system schemas, and not
extension members), so they are unaffected. Names are matched as written or unqualified, over
every schema: a call is judged by every routine it could resolve to (overloads included).
A body that cannot be read (another language, no privilege to see it, a parse failure) is
`dynamic`. `version` is a fingerprint of the catalog's content: decisions cached under one
version are never reused under another.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from .model import PLANNED_ONLY, Classification, Statement

# Which trigger events a statement kind can fire; kinds not listed fire none.
_FIRES: dict[str, frozenset[str]] = {
    "insert": frozenset({"insert"}),
    "update": frozenset({"update"}),
    "delete": frozenset({"delete"}),
    "truncate": frozenset({"truncate"}),
    "copy": frozenset({"insert"}),
    "load_data": frozenset({"insert"}),
    "replace": frozenset({"insert", "update", "delete"}),
    "merge": frozenset({"insert", "update", "delete"}),
    "upsert": frozenset({"insert", "update"}),
}
_ALL_EVENTS = frozenset({"insert", "update", "delete", "truncate"})
ANY = frozenset({"*"})  # a Trigger with these events runs for every statement that names the table
MAX_ROUTINES = 512  # routines one statement may reach; beyond, its effect is not judged: dynamic


def _fires(kind: str) -> frozenset[str]:
    hit = _FIRES.get(kind)
    if hit is not None:
        return hit
    return frozenset(e for e in _ALL_EVENTS if e in kind)  # "insert ... on conflict" and the like


@dataclass(frozen=True, slots=True)
class Routine:
    """One routine (or trigger/rule action) as the statement that stands for its body."""

    name: str  # schema.name, lower case; "trigger schema.name" for an inline trigger body
    body: Statement  # kind "routine": inner = the body's statements; dynamic when unreadable


@dataclass(frozen=True, slots=True)
class Trigger:
    table: str  # schema.table, lower case
    events: frozenset[str]  # insert | update | delete | truncate, or ANY
    routine: str  # the Routine it runs


def routine(name: str, classification: Classification, *, unreadable: str = "") -> Routine:
    """A Routine from the classification of its definition: a CREATE (or DO) statement whose
    inner statements are the body; other statements stand for themselves."""
    name = name.lower()
    text = f"body of {name}"
    if unreadable or classification.error is not None or not classification.statements:
        return Routine(name, Statement(kind="routine", text=text, object=name, dynamic=True))
    inner: list[Statement] = []
    dynamic = False
    for stmt in classification.statements:
        if stmt.kind == "create" or stmt.kind == "do":  # the definition: its inner statements are the body
            inner.extend(stmt.inner)
        else:
            inner.append(stmt)
        dynamic = dynamic or stmt.dynamic
    return Routine(name, Statement(kind="routine", text=text, object=name, dynamic=dynamic, inner=tuple(inner)))


class RoutineCatalog:
    """Routines and triggers of one upstream database; immutable once built."""

    def __init__(self, routines: Iterable[Routine] = (), triggers: Iterable[Trigger] = (), source: str = "") -> None:
        self.routines: dict[str, list[Routine]] = {}
        self.triggers: dict[str, list[Trigger]] = {}
        self.by_name: dict[str, Routine] = {}
        for r in routines:
            self.by_name[r.name] = r
            for key in {r.name, r.name.rsplit(".", 1)[-1]}:
                self.routines.setdefault(key, []).append(r)
        for t in triggers:
            for key in {t.table, t.table.rsplit(".", 1)[-1]}:
                self.triggers.setdefault(key, []).append(t)
        self.version = hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()[:16] if source else ""

    def __bool__(self) -> bool:
        return bool(self.routines or self.triggers)

    def _called(self, stmt: Statement) -> Iterable[str]:
        names = set(stmt.functions)
        if stmt.kind == "call" and stmt.object:
            names.add(stmt.object)
        for name in names:
            for r in self.routines.get(name.lower(), ()):
                yield r.name

    def _fired(self, stmt: Statement) -> Iterable[str]:
        events = _fires(stmt.kind) | ANY
        for table in stmt.tables:
            for t in self.triggers.get(table.lower(), ()):
                if t.events & events:
                    yield t.routine

    def reachable(self, stmt: Statement) -> tuple[list[str], bool]:
        """Names of every routine `stmt` can run, transitively; True when there were too many."""
        found: list[str] = []
        seen: set[str] = set()
        todo = [stmt]
        while todo:
            for s in todo.pop().walk(executed_only=True):
                for name in (*self._called(s), *self._fired(s)):
                    if name in seen or name not in self.by_name:
                        continue  # a cycle ends here: the routine's body is already attached
                    if len(found) >= MAX_ROUTINES:
                        return found, True
                    seen.add(name)
                    found.append(name)
                    todo.append(self.by_name[name].body)
        return found, False


def blame(expanded: Classification, draws: Callable[[Classification], bool]) -> str:
    """The routine whose body alone draws a verdict (`draws` tells), so that a refusal can say
    where the statement it refused comes from; "" when no single body does."""
    for stmt in expanded.statements:
        for inner in stmt.inner:
            if inner.kind == "routine" and draws(Classification((inner,), dialect=expanded.dialect)):
                return inner.object
    return ""


def expand(classification: Classification, catalog: RoutineCatalog | None) -> Classification:
    """Attach to each statement the bodies of the routines it can run (see the module doc)."""
    if not catalog or classification.error is not None:
        return classification
    out: list[Statement] = []
    changed = False
    for stmt in classification.statements:
        if PLANNED_ONLY in stmt.flags:
            out.append(stmt)
            continue
        names, too_many = catalog.reachable(stmt)
        if names or too_many:
            changed = True
            bodies = tuple(catalog.by_name[n].body for n in names)
            stmt = replace(stmt, inner=stmt.inner + bodies, dynamic=stmt.dynamic or too_many)
        out.append(stmt)
    return replace(classification, statements=tuple(out)) if changed else classification


# ---- builders from catalog rows (the doors fetch the rows; classifying them is pure) ----

_PG_EVENTS = ((4, "insert"), (8, "delete"), (16, "update"), (32, "truncate"))  # pg_trigger.tgtype bits
_PG_RULE_EVENTS = {"2": "update", "3": "insert", "4": "delete"}  # pg_rewrite.ev_type
# A view or a row-level policy runs its routines for any statement that names the table.
_USE_EVENTS = {"default": frozenset({"insert"}), "check": frozenset({"insert", "update"})}
_USE_EVENTS["index"] = _USE_EVENTS["check"]


def postgres_catalog(
    routines: Iterable[tuple[str, str, str, str | None]],
    triggers: Iterable[tuple[str, str, int, str, str]],
    rules: Iterable[tuple[str, str, str, str, str]] = (),
    uses: Iterable[tuple[str, str, str, str, str]] = (),
) -> RoutineCatalog:
    """routines: (schema, name, language, pg_get_functiondef or None when not sql/plpgsql);
    triggers: (schema, table, tgtype, routine schema, routine name);
    rules: (schema, table, rule name, ev_type, pg_get_ruledef);
    uses: (schema, table, view | default | check | policy | index, routine schema, routine name)."""
    from . import classify  # cached on the exact text: an unchanged catalog costs no parse

    routines, triggers, rules, uses = list(routines), list(triggers), list(rules), list(uses)
    out: list[Routine] = []
    for schema, name, language, definition in routines:
        qualified = f"{schema}.{name}"
        if definition is None:
            out.append(routine(qualified, Classification(()), unreadable=f"language {language}"))
        else:
            out.append(routine(qualified, classify(definition, "postgres")))
    trig = [
        Trigger(f"{s}.{t}".lower(), frozenset(e for bit, e in _PG_EVENTS if tgtype & bit), f"{fs}.{fn}".lower())
        for s, t, tgtype, fs, fn in triggers
    ]
    for schema, table, rule_name, ev_type, definition in rules:
        name = f"rule {schema}.{table}.{rule_name}"
        out.append(routine(name, classify(definition, "postgres")))
        events = frozenset({_PG_RULE_EVENTS[ev_type]}) if ev_type in _PG_RULE_EVENTS else _ALL_EVENTS
        trig.append(Trigger(f"{schema}.{table}".lower(), events, name.lower()))
    for schema, table, what, fschema, fname in uses:
        trig.append(Trigger(f"{schema}.{table}".lower(), _USE_EVENTS.get(what, ANY), f"{fschema}.{fname}".lower()))
    return RoutineCatalog(out, trig, source=repr((routines, triggers, rules, uses)))


def mysql_catalog(
    routines: Iterable[tuple[str, str, str, str]],
    triggers: Iterable[tuple[str, str, str, str, str]],
    views: Iterable[tuple[str, str, str]] = (),
) -> RoutineCatalog:
    """routines: (schema, name, parameter names joined by commas, body; "" when the account may
    not read it); triggers: (schema, trigger name, table, event, body); views: (schema, name,
    definition): a view that calls a stored function runs it for every statement naming it."""
    from . import classify

    routines, triggers, views = list(routines), list(triggers), list(views)
    out: list[Routine] = []
    for schema, name, params, body in routines:
        unreadable = "" if body.strip() else "definition not visible to the gateway's account"
        declared = ", ".join("`" + p.replace("`", "``") + "` INT" for p in params.split(",") if p)
        definition = classify(f"CREATE PROCEDURE hoop_body({declared}) {body}", "mysql")
        out.append(routine(f"{schema}.{name}", definition, unreadable=unreadable))
    trig = []
    for schema, name, table, event, body in triggers:
        rname = f"trigger {schema}.{name}".lower()
        out.append(routine(rname, classify(f"CREATE PROCEDURE hoop_body() {body}", "mysql")))
        trig.append(Trigger(f"{schema}.{table}".lower(), frozenset({event.lower()}), rname))
    known = {n for r in out for n in (r.name, r.name.rsplit(".", 1)[-1])}
    for schema, name, view_sql in views:
        found = classify(view_sql, "mysql")
        calls = frozenset(f for s in found.walk() for f in s.functions if f in known)
        if calls:
            vname = f"view {schema}.{name}".lower()
            out.append(
                Routine(vname, Statement(kind="routine", text=f"body of {vname}", object=vname, functions=calls))
            )
            trig.append(Trigger(f"{schema}.{name}".lower(), ANY, vname))
    return RoutineCatalog(out, trig, source=repr((routines, triggers, views)))
