"""Both engines run the same numbered migrations: they end with the same tables and columns
(in each engine's own types), migrating again changes nothing, and gateways that start
together against one store migrate it once between them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support.stores import columns, opened

from hoop.core.secrets import Secret
from hoop.core.store.base import Store
from hoop.core.store.migrations import MIGRATIONS

# Each engine's column type, as the kind of value it holds.
_KIND = {
    "TEXT": "text",
    "text": "text",
    "REAL": "float",
    "double precision": "float",
    "INTEGER": "integer",
    "bigint": "integer",
    "integer": "integer",  # schema_migrations.version only: a small number
    "BLOB": "bytes",
    "bytea": "bytes",
}


def _shape(store: Store) -> dict[str, dict[str, tuple[str, bool]]]:
    """table -> column -> (kind of value, NOT NULL)."""
    if store.dialect.name == "sqlite":
        found = {}
        for table in columns(store):
            info = store.query(f"SELECT name, type, \"notnull\", pk FROM pragma_table_info('{table}')")
            # An INTEGER PRIMARY KEY is never NULL in SQLite either (it is the rowid).
            found[table] = {c["name"]: (_KIND[c["type"]], bool(c["notnull"] or c["pk"])) for c in info}
        return found
    rows = store.query(
        "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
    )
    shaped: dict[str, dict[str, tuple[str, bool]]] = {}
    for r in rows:
        shaped.setdefault(r["table_name"], {})[r["column_name"]] = (_KIND[r["data_type"]], r["is_nullable"] == "NO")
    return shaped


def test_both_engines_end_with_the_same_tables_and_columns(tmp_path: Path, store_target: Path | Secret) -> None:
    with opened(tmp_path / "reference.db") as sqlite, opened(store_target) as other:
        assert _shape(other) == _shape(sqlite)
        assert "recording_chunks" in _shape(other) and "user" in _shape(other)["tokens"]
        # in the same order too: `SELECT *` rows (`hoop sessions --json`) list them alike
        assert {t: list(c) for t, c in _shape(other).items()} == {t: list(c) for t, c in _shape(sqlite).items()}


def test_migrating_again_changes_nothing(store_target: Path | Secret) -> None:
    with opened(store_target) as first:
        before = _shape(first)
        first.execute("INSERT INTO users(name, groups, source, created, updated) VALUES ('ann', '[]', 'local', 1, 1)")
    with opened(store_target) as again:
        assert _shape(again) == before
        versions = [r["version"] for r in again.query("SELECT version FROM schema_migrations ORDER BY version")]
        assert versions == [v for v, _, _ in MIGRATIONS]
        assert again.query("SELECT name FROM users") == [{"name": "ann"}]  # nothing was made afresh


_OPEN = """
import sys
from pathlib import Path
from hoop.core.secrets import Secret
from hoop.core.store.base import open_store, is_postgres_dsn
target = sys.stdin.readline().strip()
sys.stdin.readline()  # both processes go at once
store = open_store(Secret(target) if is_postgres_dsn(target) else Path(target))
print(store.one("SELECT count(*) AS n FROM schema_migrations")["n"])
"""


def test_two_processes_migrating_a_new_store_at_once_both_succeed(store_target: Path | Secret) -> None:
    target = store_target.reveal() if isinstance(store_target, Secret) else str(store_target)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for proc in procs:  # both are started and waiting before either opens the store
        assert proc.stdin is not None
        proc.stdin.write(target + "\n")
        proc.stdin.flush()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = [proc.communicate(timeout=60) for proc in procs]
    assert [(proc.returncode, out.strip()) for proc, (out, _) in zip(procs, results, strict=True)] == [
        (0, str(len(MIGRATIONS)))
    ] * 2, [err for _, err in results]
    with opened(store_target) as store:
        assert store.one("SELECT count(*) AS n FROM schema_migrations") == {"n": len(MIGRATIONS)}
