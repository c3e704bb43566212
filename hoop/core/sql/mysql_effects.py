"""What a MySQL / MariaDB statement does beyond its own kind: the inner statements and flags
rules match on (see pg_effects.py for the PostgreSQL side and the reasons).

- REPLACE inserts, and first deletes every row whose unique key the new row repeats: an inner
  insert and an inner delete (bounded by that key: WHERE "present").
- INSERT ... ON DUPLICATE KEY UPDATE also updates the conflicting rows (WHERE "present").
- ALTER TABLE ... DROP [COLUMN] / DROP INDEX|KEY / DROP PRIMARY KEY / DROP FOREIGN KEY /
  DROP CONSTRAINT / DROP CHECK / DROP PARTITION is a drop of that part; TRUNCATE PARTITION
  empties it, and so does DISCARD [PARTITION ...] TABLESPACE (the data file is deleted).
- MariaDB's CREATE OR REPLACE TABLE | SEQUENCE | DATABASE | USER | ROLE drops what it replaces
  first (the table and its rows): an inner drop of it.
- Other sessions of the shared account: KILL in every form, SHOW [FULL] PROCESSLIST, SHOW
  EXPLAIN / SHOW ANALYZE FOR <id>, EXPLAIN FOR CONNECTION <id>, SHOW ENGINE ... STATUS (lists
  other transactions and their queries), and the process-list tables.
"""

from __future__ import annotations

from sqlglot import exp

from .model import Statement, bool_and, where_state
from .mysql_fold import Target, fold
from .mysql_lexer import Tok

# Tables that list other connections, their users and their running statements.
_SESSION_TABLES = frozenset(
    {
        "information_schema.processlist",
        "performance_schema.threads",
        "performance_schema.processlist",
        "performance_schema.session_connect_attrs",
        "performance_schema.session_account_connect_attrs",
        "sys.processlist",
        "sys.x$processlist",
        "sys.session",
        "sys.x$session",
        # InnoDB's transaction views name each transaction's connection id and running query.
        "information_schema.innodb_trx",
        "information_schema.innodb_lock_waits",
        "information_schema.innodb_locks",
        "information_schema.metadata_lock_info",
        # Other threads' prepared statement text, user variables, session variables and status,
        # statement texts by digest, and the locks they hold (with their thread ids).
        "performance_schema.prepared_statements_instances",
        "performance_schema.user_variables_by_thread",
        "performance_schema.variables_by_thread",
        "performance_schema.status_by_thread",
        "performance_schema.events_statements_summary_by_digest",
        "performance_schema.metadata_locks",
        "performance_schema.data_locks",
        "performance_schema.data_lock_waits",
        "sys.statement_analysis",
        "sys.x$statement_analysis",
        "sys.innodb_lock_waits",
        "sys.x$innodb_lock_waits",
        "sys.schema_table_lock_waits",
        "sys.x$schema_table_lock_waits",
    }
)
# performance_schema event tables hold every thread's current and recent statements.
_SESSION_TABLE_PREFIXES = tuple(
    f"performance_schema.events_{what}_{when}"
    for what in ("statements", "stages", "waits", "transactions")
    for when in ("current", "history")
)


def reaches_other_sessions(words: list[str], tables: set[str]) -> bool:
    """Statement-level facts: the first keywords and the tables it reads."""
    w = words + ["", "", ""]
    if w[0] == "KILL":
        return True
    if w[0] == "SHOW" and (
        "PROCESSLIST" in (w[1], w[2]) or (w[1] in ("EXPLAIN", "ANALYZE") and "FOR" in w[2:]) or w[1] == "ENGINE"
    ):
        return True
    # Unqualified "processlist" read while information_schema is the current database.
    return any(t in _SESSION_TABLES or t.startswith(_SESSION_TABLE_PREFIXES) or t == "processlist" for t in tables)


def _name(table: exp.Table) -> set[str]:
    out = {table.name.lower()}
    if table.alias:
        out.add(table.alias.lower())
    return out


def dml_where(tree: exp.Delete | exp.Update, empty_string_is_null: bool = False) -> str:
    """The WHERE state of a DELETE / UPDATE: its WHERE and its joins' ON conditions together,
    folded against each table it writes; "missing" without a WHERE clause. With several
    written tables (`DELETE a, b FROM ...`, `UPDATE a JOIN b SET a.x = .., b.y = ..`) each
    must be bounded by its own columns: `WHERE a.id = 1` leaves every row of b joined."""
    scope = [t for t in tree.find_all(exp.Table) if t.find_ancestor(exp.Select) is None]
    written: list[frozenset[str]] = []
    if isinstance(tree, exp.Delete) and tree.args.get("tables"):
        # DELETE t1, t2 FROM ...: names or aliases of the FROM tables
        written = [frozenset({t.name.lower()}) for t in tree.args["tables"]]
    elif isinstance(tree, exp.Update) and len(scope) > 1:
        qualifiers = {c.table.lower() for e in tree.expressions for c in [e.this] if isinstance(c, exp.Column)}
        # an unqualified SET column may belong to any of the tables: no column is known to bound
        written = [frozenset({q}) for q in qualifiers] if "" not in qualifiers else [frozenset()]
    elif isinstance(tree.this, exp.Table):
        written = [frozenset(_name(tree.this))]
    conditions: list[exp.Expr] = [j.args["on"] for j in tree.find_all(exp.Join) if j.args.get("on") is not None]
    conditions = [c for c in conditions if c.find_ancestor(exp.Select) is None]
    where = tree.args.get("where")
    if where is None:
        return "missing"  # a join's ON condition alone does not count as a WHERE clause
    states = set()
    for names in written or [frozenset()]:
        target = Target(names, unqualified=len(scope) <= 1, empty_string_is_null=empty_string_is_null)
        states.add(where_state(bool_and([fold(c, target) for c in [*conditions, where.this]])))
    return "trivial" if "trivial" in states else "present"


def _target(tree: exp.Insert) -> frozenset[str]:
    table = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
    if not isinstance(table, exp.Table) or not table.name:
        return frozenset()
    return frozenset({(f"{table.db}.{table.name}" if table.db else table.name).lower()})


def dml_effects(tree: exp.Expr, replace: bool, text: str) -> list[Statement]:
    if not isinstance(tree, exp.Insert):
        return []
    target = _target(tree)
    if replace:
        return [
            Statement(kind="insert", text=text, tables=target),
            Statement(
                kind="delete",
                text=f"REPLACE: rows with the same unique key as the new ones ({text[:60]})",
                tables=target,
                where="present",
            ),
        ]
    conflict = tree.args.get("conflict")
    if isinstance(conflict, exp.OnConflict) and conflict.args.get("duplicate"):
        return [Statement(kind="update", text=f"ON DUPLICATE KEY UPDATE ({text[:60]})", tables=target, where="present")]
    return []


_DROP_PARTS = {
    "COLUMN": "column",
    "INDEX": "index",
    "KEY": "index",
    "PRIMARY": "primary key",
    "FOREIGN": "foreign key",
    "CONSTRAINT": "constraint",
    "CHECK": "check",
    "PARTITION": "partition",
}


def alter_table_effects(toks: list[Tok], table: str, name_end: int) -> list[Statement]:
    """Each `DROP ...` / `TRUNCATE PARTITION` alter specification of `ALTER TABLE <table> ...`,
    whose name ends before token `name_end`: specifications are separated by top-level commas."""
    specs: list[list[Tok]] = [[]]
    depth = 0
    for t in toks[name_end:]:
        if t.text == "(":
            depth += 1
        elif t.text == ")":
            depth -= 1
        if t.text == "," and depth == 0:
            specs.append([])
        else:
            specs[-1].append(t)
    out = []
    tables = frozenset({table}) if table else frozenset()
    for spec in specs:
        words = [t.up for t in spec] + [""]
        if words[0] == "DROP" and words[1] not in ("SYSTEM", "DEFAULT", ""):
            part = _DROP_PARTS.get(words[1], "column")  # `DROP c` drops column c
            text = " ".join(t.text for t in spec)
            out.append(Statement(kind="drop", text=text, object=part, tables=tables))
        elif words[0] == "DISCARD" and "TABLESPACE" in words:
            # The table's (or partitions') data file is deleted: its rows are gone.
            part = "partition" if words[1] == "PARTITION" else "table"
            out.append(Statement(kind="truncate", text=" ".join(t.text for t in spec), object=part, tables=tables))
        elif words[0] == "TRUNCATE" and words[1] == "PARTITION":
            out.append(
                Statement(kind="truncate", text=" ".join(t.text for t in spec), object="partition", tables=tables)
            )
    return out


# Objects CREATE OR REPLACE drops before creating them anew (a view or a routine keeps no data).
_REPLACED = frozenset({"table", "sequence", "database", "user", "role"})
_NAMED_TABLES = frozenset({"table", "sequence"})


def replaced_effects(words: list[str], obj: str, name: str, text: str) -> list[Statement]:
    """The drop a `CREATE OR REPLACE <obj> <name>` does first (not of TEMPORARY tables, which
    shadow the real one without touching it)."""
    if words[1:3] != ["OR", "REPLACE"] or obj not in _REPLACED or "TEMPORARY" in words[3:4]:
        return []
    tables = frozenset({name}) if obj in _NAMED_TABLES and name else frozenset()
    return [Statement(kind="drop", text=f"CREATE OR REPLACE ({text[:60]})", object=obj, tables=tables)]
