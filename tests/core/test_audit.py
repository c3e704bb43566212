"""The audit trail is hash-chained: any edit, deletion or reordering is found and named."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hoop.core import audit
from hoop.core.secrets import Secret
from hoop.core.store.base import Store, open_store


@pytest.fixture
def store(store_target: Path | Secret) -> Iterator[Store]:
    s = open_store(store_target)
    for i in range(5):
        audit.record(s, "alice", "statement", "pg", text=f"SELECT {i}")
    yield s
    s.close()


def test_fresh_log_verifies(store: Store) -> None:
    result = audit.verify(store)
    assert result.ok and result.checked == 5


def test_edited_row_is_named(store: Store) -> None:
    store.execute('UPDATE audit SET detail = \'{"text":"SELECT 42"}\' WHERE id = 3')
    result = audit.verify(store)
    assert not result.ok and result.bad_id == 3 and "edited" in result.problem


def test_deleted_row_is_named(store: Store) -> None:
    store.execute("DELETE FROM audit WHERE id = 2")
    result = audit.verify(store)
    assert not result.ok and result.bad_id == 3


def test_reordered_rows_are_found(store: Store) -> None:
    store.execute("UPDATE audit SET id = 100 WHERE id = 2")
    store.execute("UPDATE audit SET id = 2 WHERE id = 4")
    store.execute("UPDATE audit SET id = 4 WHERE id = 100")
    result = audit.verify(store)
    assert not result.ok and result.bad_id == 2


def test_appends_from_two_stores_extend_one_chain(store: Store) -> None:
    other = store.reopen()
    for i in range(10):
        audit.record(store if i % 2 else other, "op", "token.issue", str(i))
    other.close()
    assert audit.verify(store).ok and audit.verify(store).checked == 15


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
