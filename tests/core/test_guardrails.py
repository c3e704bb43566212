"""Guardrail evaluation and rule configuration (pure)."""

from __future__ import annotations

import pytest

from hoop.core.errors import ConfigError
from hoop.core.guardrails import (
    Context,
    GuardRule,
    RuleSet,
    builtin_rules,
    evaluate,
    parse_duration,
    rule_from_mapping,
    rule_to_mapping,
)
from hoop.core.sql import Classification, classify, classify_shell

DEV = Context(connection="prod-db", user="alice", groups=frozenset({"dev"}))
OPS = Context(connection="prod-db", user="bob", groups=frozenset({"ops"}))
STAGING = Context(connection="staging-db", user="alice", groups=frozenset({"dev"}))


def pg(sql: str):
    return classify(sql, "postgres")


def test_block_beats_review_beats_allow_across_statements() -> None:
    rules = [
        GuardRule("review-deletes", "review", statements=("delete",), approvers=("ops",)),
        GuardRule("no-drop", "block", statements=("drop table",)),
    ]
    assert evaluate(rules, pg("DELETE FROM t WHERE id = 1"), DEV).action == "review"
    v = evaluate(rules, pg("DELETE FROM t WHERE id = 1; DROP TABLE t"), DEV)
    assert (v.action, v.rule.name, v.reason) == (
        "block",
        "no-drop",
        "rule no-drop blocks DROP TABLE",
    )
    assert evaluate(rules, pg("DROP VIEW v"), DEV).action == "allow"  # "drop table" matches kind + object only


def test_connections_groups_and_enabled_decide_which_rules_apply() -> None:
    rules = [
        GuardRule("prod-only", "block", statements=("truncate",), connections=("prod-*",), groups=("dev",)),
        GuardRule("off", "block", statements=("select",), enabled=False),
    ]
    assert evaluate(rules, pg("TRUNCATE t"), DEV).action == "block"
    assert evaluate(rules, pg("TRUNCATE t"), OPS).action == "allow"
    assert evaluate(rules, pg("TRUNCATE t"), STAGING).action == "allow"
    assert evaluate(rules, pg("SELECT 1"), DEV).action == "allow"


def test_syntax_error_is_refused_as_the_server_would_only_when_a_rule_applies() -> None:
    rules = [GuardRule("prod", "review", statements=("delete",), connections=("prod-*",))]
    v = evaluate(rules, pg("SELECT 1;\nDELTE FROM t"), DEV)
    assert v.action == "block" and v.syntax and v.rule is None
    assert v.reason == 'syntax error at or near "DELTE"' and v.position == 11  # 1-based, in characters
    assert evaluate(rules, pg("DELTE FROM t"), STAGING).action == "allow"


def test_text_the_gateway_cannot_read_fails_closed_naming_the_rule_that_applies() -> None:
    rules = [GuardRule("prod", "review", statements=("delete",), connections=("prod-*",))]
    v = evaluate(rules, Classification((), "statement not understood", "mysql"), DEV)
    assert v.action == "block" and not v.syntax and v.reason.startswith("could not parse the statement (")
    assert v.reason.endswith("blocked because rule prod applies")


def test_dynamic_statements_get_the_rule_fail_mode() -> None:
    do = pg("DO $$ BEGIN EXECUTE 'DELETE FROM ' || 't'; END $$")
    base = {"name": "w", "action": "block", "statements": ("delete",)}
    assert evaluate([GuardRule(**base)], do, DEV).action == "block"
    plain = pg("DO $$ BEGIN DELETE FROM t; END $$")  # not dynamic: the DELETE inside is judged
    assert evaluate([GuardRule(**base, dynamic="allow")], plain, DEV).action == "block"
    review = evaluate([GuardRule(**base, dynamic="review")], do, DEV)
    assert review.action == "review" and "cannot be known" in review.reason
    assert evaluate([GuardRule(**base, dynamic="allow")], do, DEV).action == "allow"


def test_where_modes_and_table_globs() -> None:
    missing = GuardRule("m", "block", statements=("delete",), where="missing")
    trivial = GuardRule("t", "block", statements=("delete",), where="missing-or-trivial", tables=("billing.*",))
    assert evaluate([missing], pg("DELETE FROM t WHERE true"), DEV).action == "allow"
    assert evaluate([missing], pg("DELETE FROM t"), DEV).action == "block"
    assert evaluate([trivial], pg("DELETE FROM billing.invoices WHERE 1=1"), DEV).action == "block"
    assert evaluate([trivial], pg("DELETE FROM public.invoices WHERE 1=1"), DEV).action == "allow"
    named = GuardRule("n", "block", tables=("invoices",))
    assert evaluate([named], pg("SELECT * FROM billing.invoices"), DEV).action == "block"


def test_planned_only_explain_is_not_judged_but_explain_analyze_is() -> None:
    rules = [GuardRule("d", "block", statements=("delete",))]
    assert evaluate(rules, pg("EXPLAIN DELETE FROM t"), DEV).action == "allow"
    assert evaluate(rules, pg("EXPLAIN ANALYZE DELETE FROM t"), DEV).action == "block"


def test_sql_rules_do_not_judge_shell_and_command_rules_do_not_judge_sql() -> None:
    sql_rules = RuleSet(builtin_rules())
    assert sql_rules.evaluate(classify_shell("curl x | sh"), DEV).action == "allow"
    shell_rules = RuleSet([GuardRule("no-rm", "block", commands=("rm",))])
    assert shell_rules.evaluate(pg("DELTE"), DEV).action == "allow"
    assert shell_rules.evaluate(classify_shell("echo 'open"), DEV).action == "block"
    everything = RuleSet([GuardRule("hold-all", "review")])
    assert everything.evaluate(pg("SELECT 1"), DEV).action == "review"
    assert everything.evaluate(classify_shell("ls"), DEV).action == "review"


def test_rule_from_mapping_validates_and_round_trips() -> None:
    data = {
        "action": "review",
        "statements": ["DELETE", "update"],
        "where": "missing-or-trivial",
        "approvers": ["ops"],
        "approvals": 2,
        "timeout": "5m",
        "connections": "prod-*, billing",
    }
    rule = rule_from_mapping(data, file="hoop.toml", key="guardrails.careful")
    assert rule.name == "careful" and rule.statements == ("delete", "update") and rule.timeout == 300.0
    assert rule.connections == ("prod-*", "billing")
    assert rule_from_mapping(rule_to_mapping(rule), file="db", key="x") == rule
    assert rule_to_mapping(GuardRule("a", "block")) == {"name": "a", "action": "block"}


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("action", "deny", "expected one of block, review"),
        ("where", "sometimes", "expected one of any"),
        ("flags", ["server_files"], "expected flags among"),
        ("approvals", 0, "expected an integer >= 1"),
        ("timeout", "5 minutes", "expected a positive duration"),
        ("enabled", "yes", "expected true or false"),
        ("tables", [1], "expected a list of non-empty strings"),
        ("colour", "red", "unknown key"),
    ],
)
def test_rule_from_mapping_errors_name_the_key(field: str, value: object, problem: str) -> None:
    data = {"action": "block", field: value}
    with pytest.raises(ConfigError) as exc:
        rule_from_mapping(data, file="hoop.toml", key="guardrails.r")
    assert exc.value.file == "hoop.toml" and exc.value.key == f"guardrails.r.{field}"
    assert problem in exc.value.problem


def test_missing_action_and_durations() -> None:
    with pytest.raises(ConfigError, match="guardrails.r.action"):
        rule_from_mapping({}, file="f", key="guardrails.r")
    with pytest.raises(ConfigError, match=r"rules\[0\]\.name"):
        rule_from_mapping({"action": "block"}, file="f", key="rules[0]")
    assert [parse_duration(v) for v in (30, "30s", "5m", "1h", "1h30m", "90")] == [
        30,
        30,
        300,
        3600,
        5400,
        90,
    ]
    assert parse_duration("soon") is None and parse_duration(True) is None


def test_builtins_are_named_and_can_be_switched_off() -> None:
    names = {r.name for r in builtin_rules()}
    assert names == {
        "builtin-password-hash-read",
        "builtin-password-change",
        "builtin-server-files",
        "builtin-other-sessions",
    }
    sql = classify("SELECT LOAD_FILE('/etc/passwd')", "mysql")
    assert evaluate(builtin_rules(), sql, DEV).action == "block"
    off = [GuardRule(**{**r.__dict__, "enabled": False}) for r in builtin_rules()]
    assert evaluate(off, sql, DEV).action == "allow"


def test_ruleset_is_fast_enough_for_the_hot_path() -> None:
    import time

    rules = RuleSet(
        [
            *builtin_rules(),
            *(GuardRule(f"r{i}", "block", statements=("drop",), tables=(f"t{i}",)) for i in range(50)),
        ]
    )
    c = pg("WITH d AS (DELETE FROM x WHERE id = 1 RETURNING *) SELECT * FROM d JOIN y USING (id)")
    start = time.perf_counter()
    for _ in range(2000):
        assert rules.evaluate(c, DEV).action == "allow"
    assert (time.perf_counter() - start) / 2000 < 0.0005  # well under half a millisecond per query
