"""Every corpus statement gets the verdict a user expects under the corpus rules."""

from __future__ import annotations

import pytest
from core.sql import corpus_mysql, corpus_postgres

from hoop.core.guardrails import Context, RuleSet
from hoop.core.sql import classify

CTX = Context(connection="prod", user="alice", groups=frozenset({"dev"}))
CASES = [
    ("postgres", corpus_postgres, "BLOCK"),
    ("postgres", corpus_postgres, "ALLOW"),
    ("mysql", corpus_mysql, "BLOCK"),
    ("mysql", corpus_mysql, "ALLOW"),
]


def test_corpus_sizes() -> None:
    assert len(corpus_postgres.BLOCK) >= 60 and len(corpus_postgres.ALLOW) >= 40
    assert len(corpus_mysql.BLOCK) >= 50 and len(corpus_mysql.ALLOW) >= 40


@pytest.mark.parametrize(
    ("dialect", "sql", "expected"),
    [(d, sql, want.lower()) for d, mod, want in CASES for sql in getattr(mod, want)],
)
def test_corpus_verdict(dialect: str, sql: str, expected: str) -> None:
    mod = corpus_postgres if dialect == "postgres" else corpus_mysql
    verdict = RuleSet(mod.RULES).evaluate(classify(sql, dialect), CTX)  # type: ignore[arg-type]
    assert verdict.action == expected, f"{sql!r}: {verdict.reason}"
    if expected == "block" and verdict.syntax:  # answered as the server's own syntax error: no rule involved
        assert verdict.rule is None and verdict.reason
    elif expected == "block":
        assert verdict.rule is not None and verdict.rule.name in verdict.reason
