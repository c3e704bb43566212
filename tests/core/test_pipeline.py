"""The decision path every door uses (`Pipeline.check`): what it decides, which rule and reason
it names, how it fails closed, and whom a rule applies to. Caching, prepared statements, mask
policies and routine catalogs are in test_pipeline_state.py."""

from __future__ import annotations

import pytest

from hoop.core.guardrails import OTHER_SESSIONS_RULE, GuardRule, builtin_rules
from hoop.core.pipeline import Pipeline, Subject
from hoop.core.sql import Classification, PreparedStatements
from hoop.core.sql.textmode import UTF8, TextMode

PG = Subject("alice", frozenset({"dev"}), "db", "postgres")
MY = Subject("alice", frozenset({"dev"}), "db", "mysql")
NO_DROP = GuardRule("no-drop", "block", statements=("drop table",))
HOLD_DELETES = GuardRule("hold-deletes", "review", statements=("delete",), approvers=("dba",), timeout=60)
RULES = [NO_DROP, HOLD_DELETES]
# A stored program the gateway's reader cannot follow: not a syntax error it could answer as the
# server would, but a text it cannot judge.
UNREADABLE = "CREATE PROCEDURE p() BEGIN FOR x DO DELETE FROM t; END FOR; END"


# -- allow / block / review ----------------------------------------------------------------


def test_a_statement_no_rule_matches_is_allowed_and_names_no_rule() -> None:
    decision = Pipeline(RULES).check(PG, "SELECT * FROM accounts WHERE id = 1")
    assert (decision.action, decision.rule, decision.reason, decision.review) == ("allow", "", "", None)
    assert decision.classification is not None and decision.classification.statements[0].kind == "select"


@pytest.mark.parametrize("subject", [PG, MY], ids=["postgres", "mysql"])
def test_a_block_names_its_rule_and_what_it_blocks(subject: Subject) -> None:
    decision = Pipeline(RULES).check(subject, "DROP TABLE accounts")
    assert (decision.action, decision.rule) == ("block", "no-drop")
    assert decision.reason == "rule no-drop blocks DROP TABLE"
    assert decision.review is None and decision.sqlstate == ""


def test_a_review_carries_the_rule_the_hold_needs() -> None:
    decision = Pipeline(RULES).check(PG, "DELETE FROM accounts WHERE id = 7")
    assert (decision.action, decision.rule) == ("review", "hold-deletes")
    assert decision.reason == "rule hold-deletes requires review for DELETE"
    assert decision.review is HOLD_DELETES  # timeout, approvers and approval count come from it


@pytest.mark.parametrize(
    "text",
    [
        "SELECT 1; DELETE FROM t WHERE id = 1; DROP TABLE t",
        "DROP TABLE t; DELETE FROM t WHERE id = 1",
        "DELETE FROM t WHERE id = 1; DROP TABLE t; SELECT 1",
    ],
)
def test_block_beats_review_whatever_the_order(text: str) -> None:
    decision = Pipeline(RULES).check(PG, text)
    assert (decision.action, decision.rule) == ("block", "no-drop")


def test_review_beats_allow_in_one_text() -> None:
    decision = Pipeline(RULES).check(PG, "SELECT 1; DELETE FROM t WHERE id = 1; SELECT 2")
    assert (decision.action, decision.rule) == ("review", "hold-deletes")


def test_a_statement_nested_in_a_do_block_is_judged() -> None:
    decision = Pipeline(RULES).check(PG, "DO $$ BEGIN EXECUTE 'DROP TABLE t'; END $$")
    assert (decision.action, decision.rule) == ("block", "no-drop")


def test_sql_rules_do_not_judge_shell_commands_and_command_rules_do_not_judge_sql() -> None:
    pipeline = Pipeline([NO_DROP, GuardRule("no-rm", "block", commands=("rm",))])
    shell = Subject("alice", frozenset(), "host", "shell")
    assert pipeline.check(shell, "rm -rf /srv/data").rule == "no-rm"
    assert pipeline.check(shell, "echo drop table t").action == "allow"
    assert pipeline.check(PG, "SELECT 'rm'").action == "allow"


# -- fail closed ---------------------------------------------------------------------------


def test_an_exception_while_deciding_is_a_block_naming_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = Pipeline()  # not even a rule: a failure to decide must still never allow

    def broken(text: str, dialect: str, mode: TextMode = UTF8) -> Classification:
        raise RuntimeError("classifier bug")

    monkeypatch.setattr(pipeline, "_classify", broken)
    decision = pipeline.check(PG, "SELECT 1")
    assert (decision.action, decision.rule) == ("block", "internal")
    assert decision.reason == "the gateway could not evaluate this statement (RuntimeError)"
    monkeypatch.undo()
    assert pipeline.check(PG, "SELECT 1").action == "allow"  # the failure was not cached


def test_a_statement_the_gateway_cannot_read_is_blocked_where_a_rule_applies() -> None:
    pipeline = Pipeline([GuardRule("prod-drop", "block", statements=("drop table",), connections=("prod",))])
    prod = Subject("alice", frozenset(), "prod", "mysql")
    decision = pipeline.check(prod, UNREADABLE)
    assert (decision.action, decision.rule, decision.sqlstate) == ("block", "prod-drop", "")
    assert decision.reason == (
        "could not parse the statement (FOR without IN in a stored program); blocked because rule prod-drop applies"
    )
    # Where no rule applies there is nothing to protect: the server reads it as it likes.
    assert pipeline.check(MY, UNREADABLE).action == "allow"


def test_an_unreadable_statement_is_blocked_even_where_only_a_review_rule_applies() -> None:
    decision = Pipeline([HOLD_DELETES]).check(MY, UNREADABLE)
    assert (decision.action, decision.rule, decision.review) == ("block", "hold-deletes", None)


def test_an_unreadable_statement_names_a_blocking_rule_before_a_review_rule() -> None:
    decision = Pipeline([HOLD_DELETES, NO_DROP]).check(MY, UNREADABLE)
    assert (decision.action, decision.rule) == ("block", "no-drop")


@pytest.mark.parametrize(
    ("subject", "text", "message", "position"),
    [
        (PG, "SELEC 1", 'syntax error at or near "SELEC"', 1),
        (PG, "SELECT 1; SELECT (2", "syntax error at end of input", 20),
        (MY, "CREATE PROCEDURE p() BEGIN WHILE 1 DO SELECT 1; END", "unterminated BEGIN ... END block", None),
    ],
)
def test_a_syntax_error_is_answered_as_the_server_would_without_naming_a_rule(
    subject: Subject, text: str, message: str, position: int | None
) -> None:
    decision = Pipeline(RULES).check(subject, text)
    assert (decision.action, decision.rule, decision.reason) == ("block", "", message)
    assert (decision.sqlstate, decision.position) == ("42601", position)


def test_a_syntax_error_where_no_rule_applies_goes_to_the_server() -> None:
    pipeline = Pipeline([GuardRule("prod-drop", "block", statements=("drop table",), connections=("prod",))])
    assert pipeline.check(PG, "SELEC 1").action == "allow"  # the server answers it itself


# -- statements whose effect cannot be known (`dynamic`) -------------------------------------


def unknown_execute(pipeline: Pipeline, subject: Subject = PG) -> tuple[str, str, str]:
    """`EXECUTE p` of a name this session never prepared: its effect is unknown."""
    d = pipeline.check(subject, "EXECUTE p", PreparedStatements())
    return d.action, d.rule, d.reason


def test_an_unknown_effect_takes_the_rules_dynamic_mode_block_by_default() -> None:
    action, rule, reason = unknown_execute(Pipeline([HOLD_DELETES]))  # a review rule, dynamic = block
    assert (action, rule) == ("block", "hold-deletes")
    assert reason == "rule hold-deletes blocks EXECUTE p: its effect cannot be known before it runs"


def test_dynamic_review_holds_and_dynamic_allow_lets_it_through() -> None:
    review = GuardRule("careful", "block", statements=("drop table",), dynamic="review")
    action, rule, reason = unknown_execute(Pipeline([review]))
    assert (action, rule) == ("review", "careful")
    assert reason == "rule careful requires review for EXECUTE p: its effect cannot be known before it runs"
    assert unknown_execute(Pipeline([GuardRule("lax", "block", statements=("drop table",), dynamic="allow")]))[0] == (
        "allow"
    )


def test_the_strictest_dynamic_mode_of_the_applicable_rules_wins() -> None:
    lax = GuardRule("lax", "block", statements=("drop table",), dynamic="allow")
    careful = GuardRule("careful", "review", statements=("delete",), dynamic="review")
    strict = GuardRule("strict", "review", statements=("truncate",), connections=("prod",))
    assert unknown_execute(Pipeline([lax, careful, strict]))[:2] == ("review", "careful")  # strict: not here
    prod = Subject("alice", frozenset(), "prod", "postgres")
    assert unknown_execute(Pipeline([lax, careful, strict]), prod)[:2] == ("block", "strict")


def test_a_rule_that_matches_outranks_a_dynamic_mode_of_the_same_severity() -> None:
    unknown = GuardRule("unknown-held", "review", statements=("truncate",), dynamic="review")
    deletes = GuardRule("hold-deletes", "review", statements=("delete",), dynamic="review")
    for rules in ([unknown, deletes], [deletes, unknown]):
        decision = Pipeline(rules).check(PG, "EXECUTE p; DELETE FROM t WHERE id = 1", PreparedStatements())
        assert (decision.action, decision.rule) == ("review", "hold-deletes")
        assert decision.reason == "rule hold-deletes requires review for DELETE"


# -- whom a rule applies to ----------------------------------------------------------------


def test_rules_apply_only_on_the_connections_their_globs_match() -> None:
    pipeline = Pipeline([GuardRule("prod-drop", "block", statements=("drop table",), connections=("prod-*",))])
    for connection, action in [("prod-eu", "block"), ("prod-us", "block"), ("staging", "allow"), ("prod", "allow")]:
        subject = Subject("alice", frozenset(), connection, "postgres")
        assert pipeline.check(subject, "DROP TABLE t").action == action, connection


def test_rules_naming_groups_apply_only_to_their_members() -> None:
    pipeline = Pipeline([GuardRule("contractors", "block", statements=("drop table",), groups=("contractors", "ext"))])
    member = Subject("carl", frozenset({"dev", "ext"}), "db", "postgres")
    other = Subject("dana", frozenset({"dev"}), "db", "postgres")
    assert pipeline.check(member, "DROP TABLE t").rule == "contractors"
    assert pipeline.check(other, "DROP TABLE t").action == "allow"


def test_a_disabled_rule_never_applies() -> None:
    pipeline = Pipeline([GuardRule("off", "block", statements=("drop table",), enabled=False)])
    assert pipeline.check(PG, "DROP TABLE t").action == "allow"
    assert pipeline.check(PG, "SELEC 1").action == "allow"  # nor makes a syntax error its business


def test_judging_without_a_flag_keeps_every_other_rule() -> None:
    """A door that proved a statement signals only its own backend drops the other-sessions
    flag, and a configured rule on the function still holds it."""
    hold_signals = GuardRule("hold-signals", "review", functions=("pg_terminate_backend",), approvers=("dba",))
    pipeline = Pipeline([hold_signals, *builtin_rules()])
    decision = pipeline.check(PG, "SELECT pg_terminate_backend(4242)")
    assert (decision.action, decision.rule) == ("block", OTHER_SESSIONS_RULE)
    again = pipeline.without_flag(PG, decision, "other_sessions")
    assert (again.action, again.rule) == ("review", "hold-signals")
    plain = Pipeline(builtin_rules())
    assert plain.without_flag(PG, plain.check(PG, "SELECT pg_cancel_backend(4242)"), "other_sessions").action == "allow"
