"""WHERE folding: forms that are true for every row whatever columns they name, and their
bounded neighbours, in both dialects."""

from __future__ import annotations

import pytest

from hoop.core.sql import classify
from hoop.core.sql.textmode import mysql_mode

MYSQL = mysql_mode("utf8mb4", "STRICT_TRANS_TABLES")


@pytest.mark.parametrize(
    ("where", "state"),
    [
        ("'1abc'", "trivial"),
        ("'abc'", "present"),  # cast to 0: matches nothing
        ("IF(1, 1, id)", "trivial"),
        ("IF(id = 1, 1, 0)", "present"),
        ("IF(RAND() < 2, 1, id)", "trivial"),
        ("COALESCE(1, id)", "trivial"),
        ("COALESCE(v, 'x') = 'y'", "present"),
        ("IFNULL(1, id)", "trivial"),
        ("CASE WHEN 1 THEN 1 ELSE id END", "trivial"),
        ("CASE 2 WHEN 1 THEN 1 ELSE id = 3 END", "present"),
        ("NULLIF(1, 2)", "trivial"),
        ("NOT (RAND() > 2 AND id = 1)", "trivial"),
        ("id = 1 AND RAND() < 0.5", "present"),
        ("NOT (id = 1)", "present"),
        ("(id) = id", "trivial"),
        ("`ID` = id", "trivial"),
        ("c.id = id", "trivial"),
        ("1 IN (1, id)", "trivial"),
        ("1 IN (id, 2)", "present"),
        ("1 NOT IN (1, id)", "present"),  # matches nothing
        # A pattern decides as a range bound does (`id > -1`): counted as bounding, so that
        # `v LIKE ?` is judged the same for every value (the decision cache relies on it).
        ("v LIKE '%'", "present"),
    ],
)
def test_mysql_where(where: str, state: str) -> None:
    result = classify(f"DELETE FROM c WHERE {where}", "mysql", MYSQL)
    assert result.statements[0].where == state, result


@pytest.mark.parametrize(
    ("where", "state"),
    [
        ("(id = 1 AND random() > 2) IS FALSE", "trivial"),
        ("NOT (random() > 2 AND id = 1)", "trivial"),
        ("(id = 1) IS FALSE", "present"),
    ],
)
def test_postgres_negated_unknown(where: str, state: str) -> None:
    result = classify(f"DELETE FROM c WHERE {where}", "postgres")
    assert result.statements[0].where == state, result


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("NOT (1 AND id <> 2)", "NOT (0 AND id <> 2)"),
        ("5 IN (6, id)", "1 IN (1, id)"),
        ("IF(0, 1, id)", "IF(1, 1, id)"),
        ("COALESCE(NULL, id) OR 0", "COALESCE(NULL, id) OR 1"),
    ],
)
def test_a_decision_is_not_reused_for_a_text_of_the_same_shape(first: str, second: str) -> None:
    from hoop.core.guardrails import GuardRule
    from hoop.core.pipeline import Pipeline, Subject

    rule = GuardRule(name="bounded", action="block", statements=("delete",), where="missing-or-trivial")
    pipeline = Pipeline([rule])
    subject = Subject("alice", frozenset({"dev"}), "my", "mysql")
    assert pipeline.check(subject, f"DELETE FROM c WHERE {first}", mode=MYSQL).action == "allow"
    assert pipeline.check(subject, f"DELETE FROM c WHERE {second}", mode=MYSQL).action == "block"
