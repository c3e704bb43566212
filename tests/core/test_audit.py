"""The audit trail is hash-chained: any edit, deletion or reordering is found and named."""

from __future__ import annotations

from pathlib import Path

import pytest

from hoop.core import audit
from hoop.core.store.sqlite import SqliteStore


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    s = SqliteStore(tmp_path / "hoop.db")
    for i in range(5):
        audit.record(s, "alice", "statement", "pg", text=f"SELECT {i}")
    return s


def test_fresh_log_verifies(store: SqliteStore) -> None:
    result = audit.verify(store)
    assert result.ok and result.checked == 5


def test_edited_row_is_named(store: SqliteStore) -> None:
    store.conn.execute('UPDATE audit SET detail = \'{"text":"SELECT 42"}\' WHERE id = 3')
    result = audit.verify(store)
    assert not result.ok and result.bad_id == 3 and "edited" in result.problem


def test_deleted_row_is_named(store: SqliteStore) -> None:
    store.conn.execute("DELETE FROM audit WHERE id = 2")
    result = audit.verify(store)
    assert not result.ok and result.bad_id == 3


def test_reordered_rows_are_found(store: SqliteStore) -> None:
    store.conn.execute("UPDATE audit SET id = 100 WHERE id = 2")
    store.conn.execute("UPDATE audit SET id = 2 WHERE id = 4")
    store.conn.execute("UPDATE audit SET id = 4 WHERE id = 100")
    result = audit.verify(store)
    assert not result.ok and result.bad_id == 2


def test_appends_from_two_stores_extend_one_chain(tmp_path: Path) -> None:
    a, b = SqliteStore(tmp_path / "x.db"), SqliteStore(tmp_path / "x.db")
    for i in range(10):
        audit.record(a if i % 2 else b, "op", "token.issue", str(i))
    assert audit.verify(a).ok and audit.verify(a).checked == 10


@pytest.mark.parametrize(
    "text", ["plain", 'quote " and \\\\ backslash', "tab\there\nnewline\x01\x1f", "ünïcødé ✓ 𝄞", "\u2028\u2029", ""]
)
def test_hashed_form_is_the_standard_librarys_compact_json(text: str) -> None:
    """Chains written before and after a change of encoder must verify alike."""
    import hashlib
    import json

    ts, detail = 1764381234.123456, json.dumps({"text": text})
    expected = json.dumps([7, repr(ts), text, "statement", text, detail], ensure_ascii=False, separators=(",", ":"))
    digest = audit._digest("p" * 64, 7, ts, text, "statement", text, detail)
    assert digest == hashlib.sha256(("p" * 64 + expected).encode("utf-8")).hexdigest()
