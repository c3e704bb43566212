"""A rule's `statements` accept only kinds the classifiers produce; the vocabulary covers both
dialects' corpora, so a valid rule never fails to load."""

from __future__ import annotations

import pytest
from core.sql import corpus_mysql, corpus_postgres

from hoop.core.errors import ConfigError
from hoop.core.guardrails import builtin_rules, rule_from_mapping
from hoop.core.sql import classify, classify_shell
from hoop.core.sql.kinds import known_statement, statement_vocabulary


def _all(dialect: str, corpus: object) -> list[str]:
    return [*corpus.BLOCK, *corpus.ALLOW]  # type: ignore[attr-defined]


@pytest.mark.parametrize(("dialect", "corpus"), [("postgres", corpus_postgres), ("mysql", corpus_mysql)])
def test_every_classified_statement_is_in_the_vocabulary(dialect: str, corpus: object) -> None:
    kinds, pairs = statement_vocabulary()
    outside = []
    for sql in _all(dialect, corpus):
        for stmt in classify(sql, dialect).walk():  # type: ignore[arg-type]
            full = f"{stmt.kind} {stmt.object}".strip()
            if stmt.kind not in kinds or not known_statement(full):
                outside.append((sql, full))
    assert not outside


def test_corpus_rules_and_builtins_validate() -> None:
    for rule in [*corpus_postgres.RULES, *corpus_mysql.RULES, *builtin_rules()]:
        for entry in rule.statements:
            assert known_statement(entry), entry


@pytest.mark.parametrize(
    "entry",
    [
        "select",
        "drop",
        "drop table",
        "drop column",
        "drop *",
        "create *",
        "alter table",
        "merge",
        "replace",
        "copy",
        "truncate",
        "set search_path",
        "show processlist",
        "kill",
        "load_data",
        "prepare transaction",
        "security label",
        "grant role",
        "command",
        "command rm",
        "*",
        "del*",
    ],
)
def test_known_entries_are_accepted(entry: str) -> None:
    rule = rule_from_mapping({"action": "block", "statements": [entry]}, file="t.toml", key="guardrails.r")
    assert rule.statements == (entry,)


@pytest.mark.parametrize("entry", ["trunc", "delte", "drop tabel", "create tabel", "selects", "zz*", "drop  tablez"])
def test_unknown_entries_are_refused_listing_the_valid_kinds(entry: str) -> None:
    with pytest.raises(ConfigError) as err:
        rule_from_mapping({"action": "block", "statements": ["delete", entry]}, file="t.toml", key="guardrails.r")
    message = str(err.value)
    assert "guardrails.r.statements" in message and "unknown statement kind" in message
    assert repr(" ".join(entry.split())) in message
    assert "truncate" in message and "merge" in message and "delete" in message  # the valid ones are listed


def test_shell_commands_are_known() -> None:
    stmt = classify_shell("rm -rf /tmp/x").statements[0]
    assert known_statement(stmt.kind) and known_statement(f"{stmt.kind} {stmt.object}")
