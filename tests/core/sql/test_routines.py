"""Calls of routines that exist upstream are judged by their bodies (RoutineCatalog + expand)."""

from __future__ import annotations

from hoop.core.guardrails import GuardRule
from hoop.core.pipeline import Pipeline, Subject
from hoop.core.sql.routines import mysql_catalog, postgres_catalog

PG = Subject("alice", frozenset(), "pg", "postgres")
MY = Subject("alice", frozenset(), "my", "mysql")
RULES = [
    GuardRule("unbounded", "block", statements=("delete", "update"), where="missing"),
    GuardRule("no-truncate", "block", statements=("truncate",)),
]


def pg_def(name: str, body: str, language: str = "plpgsql", returns: str = "void") -> tuple[str, str, str, str]:
    return (
        "public",
        name,
        language,
        f"CREATE OR REPLACE FUNCTION public.{name}() RETURNS {returns} LANGUAGE {language} AS $f$ {body} $f$",
    )


def test_a_call_is_judged_by_the_body_and_builtins_are_not_affected() -> None:
    pipe = Pipeline(RULES)
    assert pipe.check(PG, "SELECT wipe()").action == "allow"  # unknown upstream: nothing to judge
    pipe.set_routines("pg", postgres_catalog([pg_def("wipe", "BEGIN DELETE FROM t; END")], []))
    blocked = pipe.check(PG, "SELECT wipe()")
    assert blocked.action == "block" and blocked.rule == "unbounded"
    assert blocked.reason.endswith("(in public.wipe, which this statement runs)")
    assert pipe.check(PG, "SELECT public.wipe()").action == "block"
    assert pipe.check(PG, "SELECT count(*), now() FROM t").action == "allow"
    assert pipe.check(PG, "EXPLAIN SELECT wipe()").action == "allow"  # only planned


def test_a_redefined_routine_is_judged_anew() -> None:
    pipe = Pipeline(RULES)
    pipe.set_routines("pg", postgres_catalog([pg_def("f", "BEGIN PERFORM 1; END")], []))
    assert pipe.check(PG, "SELECT f()").action == "allow"
    pipe.set_routines("pg", postgres_catalog([pg_def("f", "BEGIN DELETE FROM t; END")], []))
    assert pipe.check(PG, "SELECT f()").action == "block"


def test_calls_nest_cycles_end_and_other_languages_are_dynamic() -> None:
    pipe = Pipeline(RULES)
    pipe.set_routines(
        "pg",
        postgres_catalog(
            [
                pg_def("a", "BEGIN PERFORM b(); END"),
                pg_def("b", "BEGIN PERFORM a(); PERFORM c(); END"),
                pg_def("c", "DELETE FROM t", language="sql"),
                ("public", "py", "plpython3u", None),
            ],
            [],
        ),
    )
    assert pipe.check(PG, "SELECT a()").action == "block"
    py = pipe.check(PG, "SELECT py()")
    assert py.action == "block" and "cannot be known" in py.reason


def test_a_write_fires_the_triggers_of_its_table() -> None:
    pipe = Pipeline(RULES)
    catalog = postgres_catalog(
        [pg_def("tf", "BEGIN TRUNCATE audit; RETURN NEW; END", returns="trigger")],
        [("public", "t", 4 | 1, "public", "tf")],  # FOR EACH ROW, ON INSERT
        [("public", "u", "r", "4", "CREATE RULE r AS ON DELETE TO public.u DO ALSO DELETE FROM t;")],
    )
    pipe.set_routines("pg", catalog)
    fired = pipe.check(PG, "INSERT INTO t VALUES (1)")
    assert fired.action == "block" and "(in public.tf, which this statement runs)" in fired.reason
    own = pipe.check(PG, "TRUNCATE t")  # refused for what it is itself: no routine named
    assert own.action == "block" and "which this statement runs" not in own.reason
    assert pipe.check(PG, "UPDATE t SET x = 1 WHERE id = 1").action == "allow"  # an INSERT trigger
    assert pipe.check(PG, "SELECT * FROM t").action == "allow"
    assert pipe.check(PG, "DELETE FROM u WHERE id = 1").action == "block"  # the rule deletes all of t


def test_mysql_routines_and_triggers() -> None:
    catalog = mysql_catalog(
        [
            ("app", "p", "", "BEGIN DELETE FROM t; END"),
            ("app", "hidden", "", ""),
            ("app", "purge", "p_all", "BEGIN DELETE FROM t WHERE p_all; END"),
        ],
        [("app", "tr", "orders", "INSERT", "BEGIN UPDATE stock SET n = n - 1; END")],
    )
    pipe = Pipeline(RULES)
    pipe.set_routines("my", catalog)
    assert pipe.check(MY, "CALL p()").action == "block"
    assert pipe.check(MY, "CALL app.p()").action == "block"
    assert pipe.check(MY, "CALL hidden()").action == "block"  # body not visible: dynamic
    assert pipe.check(MY, "INSERT INTO orders VALUES (1)").action == "block"
    assert pipe.check(MY, "DELETE FROM orders WHERE id = 1").action == "allow"
    trivial = Pipeline([GuardRule("trivial", "block", statements=("delete",), where="missing-or-trivial")])
    trivial.set_routines("my", catalog)
    assert trivial.check(MY, "CALL purge(1)").action == "block"  # a parameter is a value, not a column


def test_views_defaults_and_checks_run_the_routines_they_call() -> None:
    pipe = Pipeline(RULES)
    pipe.set_routines(
        "pg",
        postgres_catalog(
            [pg_def("wipe", "BEGIN DELETE FROM t; RETURN 1; END", returns="int")],
            [],
            [],
            [("public", "v", "view", "public", "wipe"), ("public", "d", "default", "public", "wipe")],
        ),
    )
    assert pipe.check(PG, "SELECT * FROM v").action == "block"
    assert pipe.check(PG, "INSERT INTO d VALUES (1)").action == "block"
    assert pipe.check(PG, "SELECT * FROM d").action == "allow"  # a default runs on INSERT only


def test_operators_aggregates_and_casts_are_judged_by_the_routines_they_call() -> None:
    pipe = Pipeline(RULES)
    pipe.set_routines("pg", postgres_catalog([pg_def("wipe", "BEGIN DELETE FROM t; RETURN 1; END", returns="int")], []))
    for sql in (
        "CREATE OPERATOR ## (function = public.wipe, leftarg = int, rightarg = int)",
        "CREATE AGGREGATE agg(int) (sfunc = wipe, stype = int)",
        "CREATE CAST (int AS text) WITH FUNCTION wipe(int)",
        "CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION wipe()",
    ):
        assert pipe.check(PG, sql).action == "block", sql
    assert pipe.check(PG, "CREATE OPERATOR ## (function = int4pl, leftarg = int, rightarg = int)").action == "allow"
