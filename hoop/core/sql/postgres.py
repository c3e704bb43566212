"""PostgreSQL classification with pglast (the real PostgreSQL parser).

Each top-level statement becomes one `Statement`; every data-modifying statement found anywhere
below it (CTEs, COPY (query), rule actions) becomes an `inner` statement with its own WHERE
state, and its tables/functions/flags are also merged upward so the parent never looks smaller
than what it runs. Plain EXPLAIN only plans: its target is kept in `inner` but flagged
`PLANNED_ONLY` (and not merged), EXPLAIN ANALYZE executes and is treated like the statement.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace
from typing import cast

from pglast import ast, parse_sql
from pglast.parser import ParseError
from pglast.stream import RawStream

from .model import PLANNED_ONLY, Classification, Statement, where_state
from .pg_effects import effects, other_sessions_function, other_sessions_relation
from .pg_fold import dyn as _dyn
from .pg_fold import fields as _fields
from .pg_fold import fold as _fold
from .pg_fold import names as _names
from .pg_fold import target_of
from .pg_strings import TooManyLiterals, as_conforming
from .plpgsql import do_body, routine_body, routine_references
from .textmode import UTF8, TextMode

# Functions that touch the server's file system.
SERVER_FILE_FUNCS = frozenset(
    {
        "pg_read_file",
        "pg_read_binary_file",
        "pg_stat_file",
        "pg_ls_dir",
        "pg_ls_logdir",
        "pg_ls_waldir",
        "pg_ls_tmpdir",
        "pg_ls_archive_statusdir",
        "pg_ls_logicalsnapdir",
        "pg_ls_logicalmapdir",
        "pg_ls_replslotdir",
        "lo_import",
        "lo_export",
        "pg_file_write",
        "pg_file_rename",
        "pg_file_unlink",
        "pg_file_sync",
        "pg_file_read",
        "pg_file_length",
        "pg_logdir_ls",
    }
)
# Functions that run SQL given as text (or read a whole table by name): effect unknown statically.
DYNAMIC_FUNCS = frozenset(
    {
        "dblink",
        "dblink_exec",
        "dblink_open",
        "dblink_send_query",
        "query_to_xml",
        "query_to_xmlschema",
        "query_to_xml_and_xmlschema",
        "table_to_xml",
        "table_to_xmlschema",
        "table_to_xml_and_xmlschema",
        "ts_stat",
        # every table and view of a schema (pg_catalog holds pg_stat_activity) or database
        "schema_to_xml",
        "schema_to_xmlschema",
        "schema_to_xml_and_xmlschema",
        "database_to_xml",
        "database_to_xmlschema",
        "database_to_xml_and_xmlschema",
    }
)
# Catalogs that expose password hashes (or foreign-server passwords in umoptions).
PASSWORD_HASH_RELATIONS = frozenset({"pg_authid", "pg_shadow", "pg_user_mappings", "pg_user_mapping"})

_DML = (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)

_SIMPLE_KINDS: dict[type, tuple[str, str]] = {
    ast.SelectStmt: ("select", ""),
    ast.InsertStmt: ("insert", ""),
    ast.UpdateStmt: ("update", ""),
    ast.DeleteStmt: ("delete", ""),
    ast.MergeStmt: ("merge", ""),
    ast.TruncateStmt: ("truncate", "table"),
    ast.CopyStmt: ("copy", ""),
    ast.DoStmt: ("do", ""),
    ast.CallStmt: ("call", ""),
    ast.PrepareStmt: ("prepare", ""),
    ast.ExecuteStmt: ("execute", ""),
    ast.DeallocateStmt: ("deallocate", ""),
    ast.ExplainStmt: ("explain", ""),
    ast.VariableShowStmt: ("show", ""),
    ast.LockStmt: ("lock", "table"),
    ast.ListenStmt: ("listen", ""),
    ast.UnlistenStmt: ("unlisten", ""),
    ast.NotifyStmt: ("notify", ""),
    ast.LoadStmt: ("load", ""),
    ast.CheckPointStmt: ("checkpoint", ""),
    ast.ClusterStmt: ("cluster", ""),
    ast.ReindexStmt: ("reindex", ""),
    ast.DiscardStmt: ("discard", ""),
    ast.CommentStmt: ("comment", ""),
    ast.SecLabelStmt: ("security label", ""),
    ast.DeclareCursorStmt: ("declare", "cursor"),
    ast.ClosePortalStmt: ("close", "cursor"),
    ast.ReassignOwnedStmt: ("reassign", "owned"),
    ast.DropOwnedStmt: ("drop", "owned"),
    ast.ConstraintsSetStmt: ("set", "constraints"),
    ast.RefreshMatViewStmt: ("refresh", "materialized view"),
    ast.CreateStmt: ("create", "table"),
    ast.ImportForeignSchemaStmt: ("import", "foreign schema"),
    ast.IndexStmt: ("create", "index"),
    ast.ViewStmt: ("create", "view"),
    ast.CreatedbStmt: ("create", "database"),
    ast.DropdbStmt: ("drop", "database"),
    ast.CreateTrigStmt: ("create", "trigger"),
    ast.CreatePLangStmt: ("create", "language"),
    ast.CreateSeqStmt: ("create", "sequence"),
    ast.AlterSeqStmt: ("alter", "sequence"),
    ast.CreateFdwStmt: ("create", "foreign data wrapper"),
    ast.AlterFdwStmt: ("alter", "foreign data wrapper"),
    ast.CreateAmStmt: ("create", "access method"),
    ast.CreateStatsStmt: ("create", "statistics"),
    ast.CreateTableSpaceStmt: ("create", "tablespace"),
    ast.DropTableSpaceStmt: ("drop", "tablespace"),
    ast.CompositeTypeStmt: ("create", "type"),
    ast.CreateEnumStmt: ("create", "type"),
    ast.CreateRangeStmt: ("create", "type"),
    ast.RuleStmt: ("create", "rule"),
    ast.CreateEventTrigStmt: ("create", "event trigger"),
    ast.DropRoleStmt: ("drop", "role"),
    ast.AlterRoleStmt: ("alter", "role"),
    ast.AlterRoleSetStmt: ("alter", "role"),
    ast.AlterSystemStmt: ("alter", "system"),
    ast.ReplicaIdentityStmt: ("alter", "table"),
    ast.AlterTableMoveAllStmt: ("alter", "table"),
    ast.AlterDefaultPrivilegesStmt: ("alter", "default privileges"),
}
_TX_KINDS = {
    "BEGIN": "begin",
    "START": "begin",
    "COMMIT": "commit",
    "ROLLBACK": "rollback",
    "SAVEPOINT": "savepoint",
    "RELEASE": "release",
    "ROLLBACK_TO": "rollback",
    "PREPARE": "prepare transaction",
    "COMMIT_PREPARED": "commit",
    "ROLLBACK_PREPARED": "rollback",
}


def _objtype(value: object) -> str:
    """ObjectType.OBJECT_FOREIGN_TABLE -> "foreign table"; OBJECT_MATVIEW -> "materialized view"."""
    name = getattr(value, "name", "") or ""
    name = name.removeprefix("OBJECT_").lower().replace("_", " ")
    return {"matview": "materialized view", "tabconstraint": "table", "column": "table"}.get(name, name)


def _camel_object(cls_name: str, prefix: str) -> str:
    core = cls_name.removeprefix(prefix).removesuffix("Stmt")
    return " ".join(w.lower() for w in re.findall(r"[A-Z][a-z]*|[A-Z]+(?![a-z])", core)) or "object"


def _kind(node: ast.Node) -> tuple[str, str]:
    cls = type(node)
    n = _dyn(node)
    if cls is ast.SelectStmt and n.intoClause is not None:
        return "create", "table"  # SELECT ... INTO new_table creates a table
    if cls is ast.TransactionStmt:
        return _TX_KINDS.get(n.kind.name.removeprefix("TRANS_STMT_"), "unknown"), ""
    if cls is ast.VacuumStmt:
        return ("vacuum" if n.is_vacuumcmd else "analyze"), ""
    if cls is ast.VariableSetStmt:
        is_reset = n.kind.name.startswith("VAR_RESET")
        return ("reset" if is_reset else "set"), (n.name or "").lower()
    if cls is ast.FetchStmt:
        return ("move" if n.ismove else "fetch"), "cursor"
    if cls is ast.CreateRoleStmt:
        return "create", n.stmt_type.name.removeprefix("ROLESTMT_").lower()
    if cls is ast.CreateFunctionStmt:
        return "create", "procedure" if n.is_procedure else "function"
    if cls in (ast.GrantStmt, ast.GrantRoleStmt):
        obj = "role" if cls is ast.GrantRoleStmt else _objtype(n.objtype)
        return ("grant" if n.is_grant else "revoke"), obj
    if cls is ast.DropStmt:
        return "drop", _objtype(n.removeType)
    if cls in (ast.DefineStmt, ast.CreateTableAsStmt):
        return "create", _objtype(n.kind if cls is ast.DefineStmt else n.objtype)
    if cls in (
        ast.AlterTableStmt,
        ast.AlterObjectSchemaStmt,
        ast.AlterOwnerStmt,
        ast.AlterFunctionStmt,
    ):
        attr = {ast.AlterTableStmt: "objtype", ast.AlterFunctionStmt: "objtype"}.get(cls, "objectType")
        return "alter", _objtype(getattr(node, attr))
    if cls is ast.RenameStmt:
        return "alter", _objtype(n.renameType)
    if cls in _SIMPLE_KINDS:
        return _SIMPLE_KINDS[cls]
    for prefix in ("Create", "Alter", "Drop"):
        if cls.__name__.startswith(prefix):
            return prefix.lower(), _camel_object(cls.__name__, prefix)
    return "unknown", ""


class _Facts:
    __slots__ = ("dynamic", "flags", "functions", "inner", "tables")

    def __init__(self) -> None:
        self.tables: set[str] = set()
        self.functions: set[str] = set()
        self.flags: set[str] = set()
        self.inner: list[Statement] = []
        self.dynamic = False

    def absorb(self, stmt: Statement) -> None:
        self.inner.append(stmt)
        self.tables |= stmt.tables
        self.functions |= stmt.functions
        self.flags |= stmt.flags


def _add_relation(facts: _Facts, schema: str | None, name: str) -> None:
    name = name.lower()
    facts.tables.add(f"{schema.lower()}.{name}" if schema else name)
    if name in PASSWORD_HASH_RELATIONS:
        facts.flags.add("password_hash_read")
    if other_sessions_relation(schema and schema.lower(), name):
        facts.flags.add("other_sessions")


def _add_function(facts: _Facts, qualified: str) -> None:
    facts.functions.add(qualified)
    base = qualified.rsplit(".", 1)[-1]
    if base in SERVER_FILE_FUNCS:
        facts.flags.add("server_file")
    if base in DYNAMIC_FUNCS:
        facts.dynamic = True
    if other_sessions_function(base):
        facts.flags.add("other_sessions")


def _visit(value: object, facts: _Facts) -> None:
    """Collect facts from a subtree; nested DML becomes an inner Statement."""
    if isinstance(value, (tuple, list)):
        for item in value:
            _visit(item, facts)
        return
    if not isinstance(value, ast.Node):
        return
    if isinstance(value, _DML):
        facts.absorb(_statement(value, None))
        return
    if isinstance(value, ast.RangeVar):
        _add_relation(facts, value.schemaname, cast(str, value.relname))  # the parser always names a RangeVar
    elif isinstance(value, ast.FuncCall):
        _add_function(facts, _names(value.funcname))
    for slot in _fields(value):
        _visit(getattr(value, slot), facts)


def _deparse(node: ast.Node) -> str:
    try:
        return RawStream()(node)
    except Exception:  # noqa: BLE001 - the text is informative only; the facts come from the tree
        return type(node).__name__


def _has_password_option(options: Iterable[object] | None) -> bool:
    return any(getattr(o, "defname", "") == "password" for o in options or ())


def _explain_analyzes(node: ast.ExplainStmt) -> bool:
    """Does any ANALYZE option say on? The server takes the last of repeated options, so one
    that says on runs the statement whatever the others say."""
    for opt in node.options or ():
        if opt.defname == "analyze":
            if opt.arg is None:
                return True
            arg = next(
                (getattr(opt.arg, a) for a in ("sval", "boolval", "ival") if hasattr(opt.arg, a)),
                None,
            )
            # anything we cannot read as "off" counts as ANALYZE: fail closed
            if str(arg).lower() not in ("false", "off", "0", "no"):
                return True
    return False


def _statement(node: ast.Node, text: str | None) -> Statement:
    kind, obj = _kind(node)
    facts = _Facts()
    cls = type(node)
    n = _dyn(node)
    planned: Statement | None = None
    if cls is ast.ExplainStmt:
        target = _statement(n.query, None)
        if _explain_analyzes(n):
            facts.absorb(target)
        else:
            planned = _mark_planned(target)
    elif cls in (ast.PrepareStmt, ast.DeclareCursorStmt):
        facts.absorb(_statement(n.query, None))
        obj = (n.name if cls is ast.PrepareStmt else obj).lower()
    elif cls is ast.RuleStmt:
        _visit(n.relation, facts)
        for action in n.actions or ():
            facts.absorb(_statement(action, None))
    elif cls in (ast.CreateFunctionStmt, ast.DoStmt):
        # deferred code is judged where it is defined: every statement of the body is inner
        body = (
            routine_body(n, text if text is not None else _deparse(node), classify_postgres, _inner_statement)
            if cls is ast.CreateFunctionStmt
            else do_body(n, classify_postgres, _inner_statement)
        )
        for stmt in body.statements:
            facts.absorb(stmt)
        facts.dynamic = body.dynamic
    elif cls is ast.CreateTrigStmt:
        _visit([n.relation, n.whenClause], facts)
        facts.functions.add(_names(n.funcname))  # the routine it runs: judged through the catalog
    elif cls in (ast.DefineStmt, ast.CreateCastStmt, ast.CreateEventTrigStmt):
        _visit([getattr(node, s) for s in _fields(node)], facts)
        facts.functions |= routine_references(node)  # routines it will call: judged through the catalog
    else:
        _visit([getattr(node, s) for s in _fields(node)], facts)
    if cls is ast.CopyStmt:
        if n.is_program:
            facts.flags.add("program")
        elif n.filename is not None:
            facts.flags.add("server_file")
    elif cls is ast.LoadStmt:
        facts.flags.add("server_file")  # LOAD 'library' loads a file from the server
    elif cls is ast.DropStmt and obj in (
        "table",
        "view",
        "materialized view",
        "sequence",
        "index",
        "foreign table",
    ):
        for parts in n.objects or ():
            facts.tables.add(_names(parts))
    elif cls in (
        ast.CreateRoleStmt,
        ast.AlterRoleStmt,
        ast.CreateUserMappingStmt,
        ast.AlterUserMappingStmt,
    ):
        if _has_password_option(n.options):
            facts.flags.add("password_change")
    elif cls in (ast.ExecuteStmt, ast.DeallocateStmt):
        obj = "all" if getattr(node, "isall", False) else (n.name or "").lower()
    elif cls is ast.CallStmt and n.funccall is not None:
        obj = _names(n.funccall.funcname)
    facts.inner.extend(effects(node, facts.tables))  # MERGE actions, COPY direction, upsert, column drops
    where = None
    if cls in (ast.UpdateStmt, ast.DeleteStmt):
        rows = target_of(n.relation, n.usingClause if cls is ast.DeleteStmt else n.fromClause)
        where = where_state(_fold(n.whereClause, rows)) if n.whereClause is not None else "missing"
    return Statement(
        kind=kind,
        text=text if text is not None else _deparse(node),
        object=obj,
        tables=frozenset(facts.tables),
        functions=frozenset(facts.functions),
        where=where,
        dynamic=facts.dynamic or kind == "unknown",
        flags=frozenset(facts.flags),
        inner=tuple(facts.inner) + ((planned,) if planned else ()),
    )


def _inner_statement(node: ast.Node) -> Statement:
    return _statement(node, None)


def _mark_planned(stmt: Statement) -> Statement:
    return replace(stmt, flags=stmt.flags | {PLANNED_ONLY})


def _syntax_error(exc: ParseError, sql: str, same_text: bool) -> Classification:
    """The parser's message and the 1-based character position the server reports (pglast
    gives a 0-based character index, none at the end of the input: the server then points
    just past the last character). Text rewritten for backslash escapes has no position."""
    message = str(exc.args[0]) if exc.args else str(exc)
    index = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else None
    position = (index + 1 if index is not None else len(sql) + 1) if same_text else None
    return Classification((), message, syntax=True, error_at=position)


def classify_postgres(sql: str, mode: TextMode = UTF8) -> Classification:
    """Classify every statement of `sql` as the server reads it under `mode`; a syntax error
    yields Classification.error."""
    original = sql
    try:
        if mode.backslash_escapes:
            sql = as_conforming(sql)
        raws = parse_sql(sql)
    except ParseError as exc:
        return _syntax_error(exc, sql, sql == original)
    except TooManyLiterals as exc:
        return Classification((), str(exc))
    except Exception as exc:  # noqa: BLE001 - fail closed on anything the parser throws
        return Classification((), f"parser failure: {type(exc).__name__}: {exc}")
    out = []
    for raw in raws:
        start = raw.stmt_location or 0
        text = sql[start : start + raw.stmt_len] if raw.stmt_len else sql[start:]
        try:
            out.append(_statement(cast(ast.Node, raw.stmt), text.strip()))  # a RawStmt always holds one
        except Exception as exc:  # noqa: BLE001 - an unexpected tree shape is "not understood"
            return Classification(tuple(out), f"could not classify: {type(exc).__name__}: {exc}")
    return Classification(tuple(out))
