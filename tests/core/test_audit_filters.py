"""`hoop audit --decision WORD` selects the same events on both store engines: the word
exactly or any `WORD:outcome`, in any case; `_` and `%` are not wildcards."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest

from hoop.commands.filters import where_of
from hoop.core import audit
from hoop.core.secrets import Secret
from hoop.core.store.base import Store, open_store


@pytest.fixture
def store(store_target: Path | Secret) -> Iterator[Store]:
    s = open_store(store_target)
    yield s
    s.close()


def _decisions(store: Store, word: str) -> list[str]:
    args = argparse.Namespace(decision=word, since=None, until=None, user=None, connection=None)
    where = where_of(
        args,
        time="ts",
        user="actor",
        connection=audit.event_connection(store.dialect),
        decision=audit.event_decision(store.dialect),
    )
    rows = audit.events(store, where=where.condition(), params=where.params)
    return [row["detail"]["decision"] for row in rows]


def test_a_decision_word_matches_itself_and_its_outcomes_alike_on_every_engine(store: Store) -> None:
    for decision in ("allow", "review", "review:approved", "review:denied", "reviewer", "block"):
        audit.record(store, "alice", "statement", "pg", decision=decision)
    assert _decisions(store, "review") == ["review", "review:approved", "review:denied"]
    assert _decisions(store, "Review") == ["review", "review:approved", "review:denied"]
    assert _decisions(store, "revie_") == []
    assert _decisions(store, "%") == []
