"""WHERE folding by form: which predicates bound a write, and which hold for every row."""

from __future__ import annotations

import pytest

from hoop.core.guardrails import GuardRule
from hoop.core.pipeline import Pipeline, Subject
from hoop.core.sql import classify


def where(predicate: str) -> str | None:
    return classify(f"DELETE FROM t WHERE {predicate}", "postgres").statements[0].where


@pytest.mark.parametrize(
    "predicate",
    [
        "id + 0 = id + 0",
        "NOT (id <> id)",
        "id = t.id",
        "id IS NOT DISTINCT FROM id",
        "CASE WHEN true THEN true ELSE id = 1 END",
        "COALESCE(true, id = 1)",
        "NULLIF(id, id) IS NULL",
        "(id, 1) = (id, 1)",
        "id IN (id)",
        "id = ANY(ARRAY[id, 0])",
        "id BETWEEN id AND id",
        "id = (SELECT id)",
        "ok OR NOT ok",
        "id = 2 OR id <> 2",
        "x IS NULL OR x IS NOT NULL",
        "NOT (ok AND NOT ok)",
        "name LIKE '%'",
        "NOT (id = 0 AND now() < '2000-01-01')",
        "id = 0 OR '10'::int > '9'::int",
        "id = 0 OR 1.4::int = 1",
        "id = 0 OR 2::bool",
        "id = 0 OR 'a '::char(2) = 'a'",
        "id = 0 OR 'B' > 'a'",
        "id OPERATOR(pg_catalog.=) id",
    ],
)
def test_always_true(predicate: str) -> None:
    assert where(predicate) == "trivial"


@pytest.mark.parametrize(
    "predicate",
    [
        "id = 1",
        "NOT (id <> 1)",
        "CASE WHEN id = 2 THEN true ELSE false END",
        "COALESCE(name, '') <> ''",
        "id IN (1, 2)",
        "id BETWEEN 1 AND 3",
        "id = (SELECT 0)",
        "id = 1 AND ok",
        "id = 1 OR 3 > 20",
        "id = 0 OR 1.6::int = 1",
        "name LIKE 'a%'",
        "id + 1 <> id + 1 OR id = 3",
        "id = random()",
    ],
)
def test_bounded(predicate: str) -> None:
    assert where(predicate) == "present"


def test_a_shape_is_not_reused_for_a_literal_that_flips_a_negated_conjunction() -> None:
    pipeline = Pipeline([GuardRule("no-unbounded", "block", statements=("delete",), where="missing-or-trivial")])
    alice = Subject("alice", frozenset(), "pg", "postgres")
    assert pipeline.check(alice, "DELETE FROM t WHERE NOT (id <> 0 AND 1 = 1)").action == "allow"
    assert pipeline.check(alice, "DELETE FROM t WHERE NOT (id <> 0 AND 1 = 2)").action == "block"
    assert pipeline.check(alice, "DELETE FROM t WHERE NOT (id <> 0 AND 2 = 2)").action == "allow"
