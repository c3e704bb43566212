"""What a PostgreSQL statement does, beyond its own kind: the inner statements rules match on.

A rule is written for an effect ("delete without a WHERE", "drop"), so every statement with
that effect must carry it, whatever its outer kind:

- MERGE: each WHEN action is an inner insert / update / delete on the target table. An
  update or delete of the matched rows is bounded only by the join condition and the
  action's own AND condition; folded together they give the WHERE state (`ON true` with no
  row-dependent condition is "trivial"; so is `ON s.k = 1`, which no column of the target
  bounds: see pg_fold.Target). WHEN NOT MATCHED BY SOURCE acts on every target row
  the source does not match, which is all of them for an empty source: unbounded ("trivial")
  unless its own condition depends on the row.
- COPY t FROM (STDIN, a file, a program) inserts into t; COPY t TO / COPY (query) TO reads.
- INSERT ... ON CONFLICT DO UPDATE also updates, and only conflicting rows ("present").
- ALTER TABLE ... DROP COLUMN / DROP CONSTRAINT is a drop of that column or constraint.
- ALTER TABLE ... ALTER COLUMN ... TYPE ... USING expr sets the column of every row to expr:
  an update without a WHERE clause.

It also names the functions and relations that reach other sessions of the server: every
user of a connection shares one upstream account, so these let one user watch or end
another's work (the "other_sessions" flag).
"""

from __future__ import annotations

from pglast import ast, enums
from pglast.stream import RawStream

from .model import Statement, bool_and, where_state
from .pg_fold import dyn, fold, target_of

# Signalling another backend: cancel its query, end it, or make it log its memory.
_SIGNAL_FUNCS = {
    "pg_cancel_backend",
    "pg_terminate_backend",
    "pg_signal_backend",
    "pg_log_backend_memory_contexts",
}
# Seeing other backends: their pids (the handle the signal functions take), users and query
# text. pg_stat_get_backend_* read one backend's fields by its slot; pg_blocking_pids and
# pg_safe_snapshot_blocking_pids name the backends blocking a pid; pg_stat_get_progress_info
# backs the pg_stat_progress_* views (pid and relation of every running VACUUM, COPY, ...).
_ACTIVITY_FUNCS = {
    "pg_stat_get_activity",
    "pg_stat_get_backend_idset",
    "pg_blocking_pids",
    "pg_safe_snapshot_blocking_pids",
    "pg_stat_get_progress_info",
    "pg_stat_statements",
    "pg_stat_statements_reset",
    "pg_prepared_xact",
}
_ACTIVITY_FUNC_PREFIXES = ("pg_stat_get_backend_",)
# Views over the same data. pg_locks on its own is left out: it shows pids and locked objects
# but neither the user nor the query, the pid alone ends nothing once the signal functions are
# blocked, and clients read it to debug their own locks; joined to pg_stat_activity (the usual
# way to see who holds a lock) the activity view is flagged.
# pg_stat_statements (an extension) keeps every session's statements; pg_prepared_xacts lists
# the prepared transactions any session of the account may then COMMIT or ROLLBACK PREPARED.
_ACTIVITY_RELATIONS = {
    "pg_stat_activity",
    "pg_stat_replication",
    "pg_stat_wal_receiver",
    "pg_stat_statements",
    "pg_stat_statements_info",
    "pg_prepared_xacts",
}
_ACTIVITY_RELATION_PREFIXES = ("pg_stat_progress_",)


def other_sessions_function(qualified: str) -> bool:
    base = qualified.rsplit(".", 1)[-1]
    return base in _SIGNAL_FUNCS or base in _ACTIVITY_FUNCS or base.startswith(_ACTIVITY_FUNC_PREFIXES)


def other_sessions_relation(schema: str | None, name: str) -> bool:
    if schema not in (None, "", "pg_catalog", "public"):
        return False  # a user's own table of that name (pg_stat_statements lives where it was installed)
    return name in _ACTIVITY_RELATIONS or name.startswith(_ACTIVITY_RELATION_PREFIXES)


def effects(node: ast.Node, tables: set[str]) -> list[Statement]:
    """The inner statements that state `node`'s effects; `tables` are those the node touches."""
    cls = type(node)
    if cls is ast.MergeStmt:
        return _merge(dyn(node))
    if cls is ast.CopyStmt:
        return _copy(dyn(node), tables)
    if cls is ast.InsertStmt:
        return _upsert(dyn(node))
    if cls is ast.AlterTableStmt:
        return _alter_drops(dyn(node))
    return []


def _relation(rv: ast.RangeVar) -> str:
    name = str(rv.relname).lower()
    return f"{rv.schemaname.lower()}.{name}" if rv.schemaname else name


def _text(node: ast.Node, fallback: str) -> str:
    try:
        return RawStream()(node)
    except Exception:  # noqa: BLE001 - the text is informative only
        return fallback


_MATCH_TEXT = {
    enums.MergeMatchKind.MERGE_WHEN_MATCHED: "WHEN MATCHED",
    enums.MergeMatchKind.MERGE_WHEN_NOT_MATCHED_BY_SOURCE: "WHEN NOT MATCHED BY SOURCE",
    enums.MergeMatchKind.MERGE_WHEN_NOT_MATCHED_BY_TARGET: "WHEN NOT MATCHED",
}
_ACTIONS = {enums.CmdType.CMD_INSERT: "insert", enums.CmdType.CMD_UPDATE: "update", enums.CmdType.CMD_DELETE: "delete"}


def _merge(n: ast.MergeStmt) -> list[Statement]:
    target = frozenset({_relation(n.relation)}) if n.relation is not None else frozenset()
    target_rows = target_of(n.relation, n.sourceRelation)  # only the target's columns bound its rows
    out = []
    for clause in n.mergeWhenClauses or ():
        c = dyn(clause)
        kind = _ACTIONS.get(enums.CmdType(c.commandType))
        if kind is None:
            continue  # DO NOTHING
        match = enums.MergeMatchKind(c.matchKind)
        text = f"MERGE {_MATCH_TEXT.get(match, '')} THEN {kind.upper()}"
        where = None
        if kind != "insert":
            condition = fold(c.condition, target_rows) if c.condition is not None else True
            if match == enums.MergeMatchKind.MERGE_WHEN_NOT_MATCHED_BY_SOURCE:
                where = where_state(condition)  # every unmatched target row: bounded only by its condition
            else:
                where = where_state(bool_and([fold(n.joinCondition, target_rows), condition]))
        out.append(Statement(kind=kind, text=text, tables=target, where=where))
    return out


def _copy(n: ast.CopyStmt, tables: set[str]) -> list[Statement]:
    if n.is_from and n.relation is not None:
        return [
            Statement(
                kind="insert", text=f"COPY {_relation(n.relation)} FROM", tables=frozenset({_relation(n.relation)})
            )
        ]
    if not n.is_from:
        return [Statement(kind="select", text="COPY TO", tables=frozenset(tables))]
    return []


def _upsert(n: ast.InsertStmt) -> list[Statement]:
    conflict = n.onConflictClause
    if conflict is None or conflict.action != enums.OnConflictAction.ONCONFLICT_UPDATE or n.relation is None:
        return []
    target = _relation(n.relation)
    return [
        Statement(
            kind="update",
            text=f"INSERT INTO {target} ... ON CONFLICT DO UPDATE",
            tables=frozenset({target}),
            where="present",
        )
    ]


_DROPS = {enums.AlterTableType.AT_DropColumn: "column", enums.AlterTableType.AT_DropConstraint: "constraint"}


def _rewrites(cmd: ast.AlterTableCmd) -> bool:
    """Does ALTER COLUMN ... TYPE ... USING set the column to anything but its own value (cast)?"""
    using = dyn(cmd.def_).raw_default if cmd.def_ is not None else None
    while isinstance(using, ast.TypeCast):
        using = using.arg
    if using is None:
        return False
    return not (isinstance(using, ast.ColumnRef) and getattr(dyn(using).fields[-1], "sval", None) == cmd.name)


def _alter_drops(n: ast.AlterTableStmt) -> list[Statement]:
    if n.objtype not in (enums.ObjectType.OBJECT_TABLE, enums.ObjectType.OBJECT_FOREIGN_TABLE) or n.relation is None:
        return []  # ALTER TYPE ... DROP ATTRIBUTE shares the node but removes no data
    table = _relation(n.relation)
    out = []
    for cmd in n.cmds or ():
        if dyn(cmd).subtype == enums.AlterTableType.AT_AlterColumnType and _rewrites(dyn(cmd)):
            out.append(
                Statement(
                    kind="update",
                    text=_text(cmd, f"ALTER TABLE {table} ALTER COLUMN {dyn(cmd).name} TYPE ... USING"),
                    tables=frozenset({table}),
                    where="missing",
                )
            )
            continue
        what = _DROPS.get(dyn(cmd).subtype)
        if what is not None:
            name = dyn(cmd).name or ""
            out.append(
                Statement(
                    kind="drop",
                    text=_text(cmd, f"ALTER TABLE {table} DROP {what.upper()} {name}"),
                    object=what,
                    tables=frozenset({table}),
                )
            )
    return out
