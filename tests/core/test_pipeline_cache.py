"""The pipeline's decision cache: a decision is reused only for text the rules judge alike."""

from __future__ import annotations

import pytest

from hoop.core.guardrails import GuardRule
from hoop.core.pipeline import Pipeline, Subject
from hoop.core.sql.textmode import postgres_mode

UNBOUNDED = GuardRule("no-unbounded", "block", statements=("delete", "update"), where="missing-or-trivial")


@pytest.mark.parametrize(("dialect", "param"), [("postgres", "$1"), ("mysql", "?")])
def test_a_harmless_twin_does_not_decide_for_a_literal_that_changes_the_verdict(dialect: str, param: str) -> None:
    pipeline = Pipeline([UNBOUNDED])
    who = Subject("alice", frozenset(), "db", dialect)
    assert pipeline.check(who, "delete from t where id=1000 or 1=2").action == "allow"
    assert pipeline.check(who, "delete from t where id=1000 or 1=1").action == "block"
    assert pipeline.check(who, "update t set a = 1 where id = 5 or 'x' = 'x'").action == "block"
    # A parameter may be true: ORed with a row condition, the statement is not bounded.
    assert pipeline.check(who, f"delete from t where id = {param} or {param}").action == "block"


def test_row_bound_texts_of_one_shape_still_share_a_decision() -> None:
    pipeline = Pipeline([UNBOUNDED])
    who = Subject("alice", frozenset(), "db", "postgres")
    for n in range(50):
        assert pipeline.check(who, f"update accounts set balance = balance + {n} where id = {n}").action == "allow"
    assert len(pipeline._shapes) == 1  # one shape, classified once, stands for all fifty


def test_the_session_text_mode_is_part_of_every_cache_key() -> None:
    pipeline = Pipeline([GuardRule("no-truncate", "block", statements=("truncate",))])
    who = Subject("alice", frozenset(), "db", "postgres")
    text = "SELECT 'a\\' AS x, ' ; TRUNCATE t; -- '"
    assert pipeline.check(who, text).action == "allow"
    assert pipeline.check(who, text, mode=postgres_mode("UTF8", "off")).action == "block"
