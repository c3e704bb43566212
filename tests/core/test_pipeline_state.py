"""What the pipeline remembers between statements, and when it forgets: cached decisions (by
text and by shape), rule changes, a session's prepared statements, mask policies and the
routine catalogs of the connections."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hoop.core.guardrails import GuardRule
from hoop.core.masking import MaskRule
from hoop.core.pipeline import Pipeline, Subject
from hoop.core.sql import Classification, PreparedStatements
from hoop.core.sql.routines import postgres_catalog
from hoop.core.sql.textmode import UTF8, TextMode, mysql_mode

PG = Subject("alice", frozenset({"dev"}), "db", "postgres")
NO_DROP = GuardRule("no-drop", "block", statements=("drop table",))
NO_TRUNCATE = GuardRule("no-truncate", "block", statements=("truncate",))
UNBOUNDED = GuardRule("unbounded", "block", statements=("delete", "update"), where="missing-or-trivial")


def count_parses(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts the pipeline classifies from now on (a cache hit classifies nothing)."""
    seen: list[str] = []
    real: Callable[[str, str, TextMode], Classification] = pipeline._classify

    def counting(text: str, dialect: str, mode: TextMode = UTF8) -> Classification:
        seen.append(text)
        return real(text, dialect, mode)

    monkeypatch.setattr(pipeline, "_classify", counting)
    return seen


# -- rule changes --------------------------------------------------------------------------


def test_set_rules_drops_cached_decisions_and_bumps_the_version() -> None:
    pipeline = Pipeline([NO_DROP])
    assert pipeline.check(PG, "TRUNCATE t").action == "allow"
    before = pipeline.version
    pipeline.set_rules([NO_DROP, NO_TRUNCATE], [])
    assert pipeline.version == before + 1  # the doors re-judge what they prepared under `before`
    assert pipeline.check(PG, "TRUNCATE t").rule == "no-truncate"
    pipeline.set_rules([], [])
    assert pipeline.version == before + 2
    assert pipeline.check(PG, "TRUNCATE t").action == "allow"  # a cached block is not kept either


# -- cache keys ----------------------------------------------------------------------------


def test_a_decision_cached_for_one_subject_is_not_reused_for_another() -> None:
    pipeline = Pipeline([GuardRule("ext", "block", statements=("drop table",), groups=("ext",))])
    insider = Subject("alice", frozenset({"dev"}), "db", "postgres")
    outsider = Subject("alice", frozenset({"dev", "ext"}), "db", "postgres")  # same name, other groups
    assert pipeline.check(insider, "DROP TABLE t").action == "allow"
    assert pipeline.check(outsider, "DROP TABLE t").action == "block"
    assert pipeline.check(insider, "DROP TABLE t").action == "allow"


def test_a_decision_cached_under_one_mysql_text_mode_is_not_reused_under_another() -> None:
    pipeline = Pipeline([NO_TRUNCATE])
    my = Subject("alice", frozenset(), "db", "mysql")
    text = "SELECT 'a\\' AS x, ' ; TRUNCATE t; -- '"  # one literal, or a literal and a TRUNCATE
    plain = mysql_mode("utf8mb4", "NO_BACKSLASH_ESCAPES")
    escapes = mysql_mode("utf8mb4", "")
    assert pipeline.check(my, text, mode=escapes).action == "block"
    assert pipeline.check(my, text, mode=plain).action == "allow"
    assert pipeline.check(my, text, mode=escapes).action == "block"


# -- shapes --------------------------------------------------------------------------------


def test_a_stable_shape_decides_for_every_text_of_that_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = Pipeline([UNBOUNDED])
    parsed = count_parses(pipeline, monkeypatch)
    assert pipeline.check(PG, "UPDATE t SET a = 1 WHERE id = 1").action == "allow"
    assert len(parsed) == 2  # the text, and its shape to see that no literal can change the verdict
    for n in range(2, 20):
        assert pipeline.check(PG, f"UPDATE t SET a = {n} WHERE id = {n}").action == "allow"
    assert len(parsed) == 2


def test_a_shape_whose_verdict_depends_on_a_literal_is_never_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = Pipeline([UNBOUNDED])
    parsed = count_parses(pipeline, monkeypatch)
    assert pipeline.check(PG, "DELETE FROM t WHERE id = 5 OR 1 = 2").action == "allow"
    assert pipeline.check(PG, "DELETE FROM t WHERE id = 5 OR 1 = 1").action == "block"
    assert pipeline.check(PG, "DELETE FROM t WHERE id = 6 OR 2 = 3").action == "allow"
    assert parsed.count("DELETE FROM t WHERE id = 6 OR 2 = 3") == 1  # judged on its own text
    assert pipeline.check(PG, "DELETE FROM t WHERE id = 5 OR 1 = 1").action == "block"  # exact text: cached
    assert parsed.count("DELETE FROM t WHERE id = 5 OR 1 = 1") == 1


def test_a_shape_stands_only_for_its_own_subject_and_mode() -> None:
    pipeline = Pipeline([GuardRule("no-dev-updates", "block", statements=("update",), groups=("dev",))])
    ops = Subject("olga", frozenset({"ops"}), "db", "postgres")
    assert pipeline.check(ops, "UPDATE t SET a = 1 WHERE id = 1").action == "allow"
    assert pipeline.check(PG, "UPDATE t SET a = 2 WHERE id = 2").action == "block"


# -- PREPARE / EXECUTE ---------------------------------------------------------------------


def test_execute_is_judged_by_what_the_session_prepared_in_an_earlier_call() -> None:
    pipeline = Pipeline([UNBOUNDED])
    session = PreparedStatements()
    assert pipeline.check(PG, "PREPARE p AS SELECT 1", session).action == "allow"
    assert pipeline.check(PG, "EXECUTE p", session).action == "allow"
    assert pipeline.check(PG, "PREPARE wipe AS DELETE FROM t", session).action == "block"
    # The refused PREPARE never reached the server: `wipe` stays unknown, so its effect is too.
    refused = pipeline.check(PG, "EXECUTE wipe", session)
    assert refused.action == "block" and "its effect cannot be known" in refused.reason
    assert pipeline.check(PG, "DEALLOCATE p", session).action == "allow"
    assert pipeline.check(PG, "EXECUTE p", session).action == "block"  # gone: unknown again


def test_the_same_execute_text_is_judged_per_session_and_never_cached() -> None:
    pipeline = Pipeline([])
    calm, risky = PreparedStatements(), PreparedStatements()
    assert pipeline.check(PG, "PREPARE p AS SELECT 1", calm).action == "allow"
    assert pipeline.check(PG, "PREPARE p AS DELETE FROM t WHERE id = $1", risky).action == "allow"
    pipeline.set_rules([GuardRule("held", "review", statements=("delete",))], [])  # a rule added later
    assert pipeline.check(PG, "EXECUTE p(1)", calm).action == "allow"
    assert pipeline.check(PG, "EXECUTE p(1)", risky).action == "review"
    assert pipeline.check(PG, "EXECUTE p(1)", calm).action == "allow"


def test_a_prepare_earlier_in_the_same_text_defines_the_name_for_the_execute() -> None:
    pipeline = Pipeline([UNBOUNDED])
    session = PreparedStatements()
    blocked = pipeline.check(PG, "PREPARE w AS UPDATE t SET a = 1; EXECUTE w", session)
    assert (blocked.action, blocked.rule) == ("block", "unbounded")
    assert pipeline.check(PG, "PREPARE s AS SELECT 1; EXECUTE s", session).action == "allow"
    assert pipeline.check(PG, "EXECUTE s", session).action == "allow"  # observed: the text was allowed
    assert pipeline.check(PG, "EXECUTE w", session).action == "block"  # never observed: unknown
    redefined = pipeline.check(PG, "PREPARE s AS UPDATE t SET a = 1; DEALLOCATE s; EXECUTE s", session)
    assert redefined.action == "block"


@pytest.mark.parametrize("mode", ["", "NO_BACKSLASH_ESCAPES"])
def test_mysql_execute_is_judged_by_the_prepared_text(mode: str) -> None:
    pipeline = Pipeline([NO_TRUNCATE])
    my, session, text_mode = (
        Subject("alice", frozenset(), "db", "mysql"),
        PreparedStatements(),
        mysql_mode("utf8mb4", mode),
    )
    assert pipeline.check(my, "PREPARE s FROM 'TRUNCATE t'", session, text_mode).action == "block"
    assert pipeline.check(my, "PREPARE s FROM 'SELECT 1'", session, text_mode).action == "allow"
    assert pipeline.check(my, "EXECUTE s", session, text_mode).action == "allow"
    assert pipeline.check(my, "EXECUTE nope", session, text_mode).action == "block"


# -- mask policies -------------------------------------------------------------------------


def test_mask_policies_are_built_once_per_connection_and_groups_and_afresh_after_set_rules() -> None:
    ssn = MaskRule("ssn", columns=("*.ssn",), exempt=("hr",), connections=("db",))
    pipeline = Pipeline([], [ssn])
    policy = pipeline.mask_policy(PG)
    assert policy.active and policy.exempted == ()
    assert pipeline.mask_policy(Subject("bob", frozenset({"dev"}), "db", "postgres")) is policy  # same key
    hr = pipeline.mask_policy(Subject("alice", frozenset({"hr"}), "db", "postgres"))
    assert not hr.active and hr.exempted == ("ssn",)
    assert not pipeline.mask_policy(Subject("alice", frozenset({"dev"}), "other", "postgres")).active
    pipeline.set_rules([], [])
    rebuilt = pipeline.mask_policy(PG)
    assert rebuilt is not policy and not rebuilt.active


# -- routine catalogs ----------------------------------------------------------------------


def pg_function(name: str, body: str) -> tuple[str, str, str, str]:
    definition = f"CREATE FUNCTION public.{name}() RETURNS void LANGUAGE plpgsql AS $f$ BEGIN {body} END $f$"
    return ("public", name, "plpgsql", definition)


def test_a_call_is_judged_by_the_catalog_of_its_own_connection() -> None:
    pipeline = Pipeline([NO_TRUNCATE])
    pipeline.set_routines("db", postgres_catalog([pg_function("wipe", "TRUNCATE t;")], []))
    blocked = pipeline.check(PG, "SELECT wipe()")
    assert (blocked.action, blocked.rule) == ("block", "no-truncate")
    assert blocked.reason == "rule no-truncate blocks TRUNCATE TABLE (in public.wipe, which this statement runs)"
    elsewhere = Subject("alice", frozenset({"dev"}), "other", "postgres")
    assert pipeline.check(elsewhere, "SELECT wipe()").action == "allow"  # no such routine there


def test_a_changed_catalog_bumps_the_version_and_replaces_cached_decisions() -> None:
    pipeline = Pipeline([NO_TRUNCATE])
    start = pipeline.version
    pipeline.set_routines("db", postgres_catalog([pg_function("f", "PERFORM 1;")], []))
    assert pipeline.version == start  # a first catalog: nothing was judged with another one
    assert pipeline.check(PG, "SELECT f()").action == "allow"
    pipeline.set_routines("db", postgres_catalog([pg_function("f", "PERFORM 1;")], []))
    assert pipeline.version == start  # the same content: cached decisions stand
    pipeline.set_routines("db", postgres_catalog([pg_function("f", "TRUNCATE t;")], []))
    assert pipeline.version == start + 1  # prepared statements are re-judged at their next execution
    assert pipeline.check(PG, "SELECT f()").action == "block"
