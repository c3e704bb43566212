"""Routine and DO bodies are judged where they are defined: their statements are inner statements."""

from __future__ import annotations

from hoop.core.guardrails import Context, GuardRule, evaluate
from hoop.core.sql import Statement, classify

CTX = Context("dev", "alice", frozenset())
NO_DROP = GuardRule("no-drop", "block", statements=("drop",))
UNBOUNDED = GuardRule("unbounded", "block", statements=("delete", "update"), where="missing")
SECRET = GuardRule("secret", "block", tables=("secret",), dynamic="allow")


def one(sql: str) -> Statement:
    c = classify(sql, "postgres")
    assert c.error is None and len(c.statements) == 1, c.error
    return c.statements[0]


def verdict(rule: GuardRule, sql: str) -> str:
    return evaluate([rule], classify(sql, "postgres"), CTX).action


def kinds(stmt: Statement) -> list[tuple[str, str]]:
    return [(s.kind, s.object) for s in stmt.walk()][1:]


def test_plpgsql_statements_of_every_form_are_inner() -> None:
    f = one(
        """CREATE FUNCTION f(a int) RETURNS SETOF int LANGUAGE plpgsql AS $f$
        DECLARE c CURSOR FOR SELECT * FROM cur_t; v int := (SELECT max(id) FROM dflt_t); r record;
        BEGIN
          DELETE FROM t WHERE id = a;
          PERFORM g(1);
          v := (SELECT count(*) FROM assign_t);
          FOR r IN SELECT * FROM loop_t LOOP NULL; END LOOP;
          IF EXISTS (SELECT 1 FROM cond_t) THEN RETURN QUERY SELECT id FROM rq_t; END IF;
          CALL p();
          RETURN;
        END $f$"""
    )
    assert not f.dynamic
    assert {"t", "cur_t", "dflt_t", "assign_t", "loop_t", "cond_t", "rq_t"} <= f.tables
    assert {"g", "p"} <= f.functions
    assert ("delete", "") in kinds(f) and ("call", "p") in kinds(f)


def test_blocked_statement_in_any_body_form_blocks_the_create() -> None:
    for sql in (
        "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN DROP TABLE t; END $$",
        "CREATE PROCEDURE p() LANGUAGE sql AS 'DROP TABLE t'",
        "CREATE FUNCTION f() RETURNS int BEGIN ATOMIC DROP TABLE t; SELECT 1; END",
        "DO $$ BEGIN IF true THEN DROP TABLE t; END IF; END $$",
        "DO $$ BEGIN EXECUTE 'DROP TABLE t'; END $$",  # a constant string is read as SQL
        "CREATE FUNCTION tf() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN DROP TABLE t; RETURN NEW; END $$",
    ):
        assert verdict(NO_DROP, sql) == "block", sql
    assert verdict(UNBOUNDED, "CREATE PROCEDURE p() BEGIN ATOMIC DELETE FROM t; END") == "block"
    assert verdict(UNBOUNDED, "CREATE PROCEDURE p(i int) BEGIN ATOMIC DELETE FROM t WHERE id = i; END") == "allow"
    assert verdict(SECRET, "CREATE FUNCTION f() RETURNS int RETURN (SELECT count(*) FROM secret)") == "block"


def test_dynamic_parts_and_other_languages_are_dynamic() -> None:
    for sql in (
        "DO $$ BEGIN EXECUTE 'drop ' || 'table t'; END $$",
        "DO $$ DECLARE r record; BEGIN FOR r IN EXECUTE format('select %s', 1) LOOP END LOOP; END $$",
        "CREATE FUNCTION f() RETURNS SETOF int LANGUAGE plpgsql AS $$ BEGIN RETURN QUERY EXECUTE $1; END $$",
        "DO $$ DECLARE c refcursor; BEGIN OPEN c FOR EXECUTE 'sel' || 'ect 1'; END $$",
        "DO LANGUAGE plpython3u 'plpy.execute(\"drop table t\")'",
        "CREATE FUNCTION f() RETURNS int LANGUAGE plperl AS 'return 1'",
        "CREATE FUNCTION f() RETURNS int AS 'lib', 'sym' LANGUAGE c",
    ):
        assert one(sql).dynamic, sql
        assert verdict(NO_DROP, sql) == "block", sql


def test_harmless_do_blocks_run() -> None:
    for sql in (
        "DO $$ BEGIN RAISE NOTICE 'hi'; END $$",
        "DO 'BEGIN NULL; END'",
        "DO $$ DECLARE n int; BEGIN n := (SELECT count(*) FROM t); RAISE NOTICE '%', n; END $$",
        "DO $$ BEGIN EXECUTE 'SELECT 1'; END $$",
    ):
        assert not one(sql).dynamic, sql
        assert verdict(NO_DROP, sql) == "allow" and verdict(UNBOUNDED, sql) == "allow", sql


def test_a_body_the_parser_rejects_fails_closed() -> None:
    stmt = one("DO $$ BEGIN this is not plpgsql; END $$")
    assert stmt.dynamic and verdict(NO_DROP, "DO $$ BEGIN this is not plpgsql; END $$") == "block"


def test_trigger_names_its_routine_and_rule_actions_stay_inner() -> None:
    trig = one("CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW WHEN (NEW.id > 0) EXECUTE FUNCTION app.tf()")
    assert "app.tf" in trig.functions and "t" in trig.tables
    rule = one("CREATE RULE r AS ON INSERT TO t DO ALSO DELETE FROM u")
    assert [s.kind for s in rule.inner] == ["delete"] and verdict(UNBOUNDED, rule.text) == "block"


def test_variables_and_parameters_are_values_not_columns() -> None:
    trivial = GuardRule("trivial", "block", statements=("delete", "update"), where="missing-or-trivial")
    for sql in (
        "CREATE FUNCTION f(all_rows bool) RETURNS void LANGUAGE plpgsql AS "
        "$$ BEGIN DELETE FROM t WHERE all_rows; END $$",
        "CREATE FUNCTION f(a int) RETURNS void LANGUAGE plpgsql AS $$ BEGIN DELETE FROM t WHERE f.a = a; END $$",
        "DO $$ DECLARE yes bool := true; BEGIN UPDATE t SET x = 1 WHERE yes; END $$",
        "DO $$ <<blk>> DECLARE yes bool := true; BEGIN DELETE FROM t WHERE blk.yes OR id = 1; END $$",
        "CREATE FUNCTION tf() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN DELETE FROM t WHERE new.x = new.x; "
        "RETURN NEW; END $$",
        "CREATE FUNCTION f(everything bool) RETURNS void LANGUAGE sql AS 'DELETE FROM t WHERE everything'",
        "CREATE PROCEDURE p(everything bool) BEGIN ATOMIC DELETE FROM t WHERE everything; END",
    ):
        assert verdict(trivial, sql) == "block", sql
    bounded = (
        "CREATE FUNCTION f(p_id int) RETURNS void LANGUAGE plpgsql AS $$ BEGIN DELETE FROM t WHERE id = p_id; END $$"
    )
    assert verdict(trivial, bounded) == "allow"


def test_types_in_other_schemas_do_not_make_a_body_unreadable() -> None:
    """The server's catalog output qualifies every type outside the search path."""
    for sql in (
        "CREATE OR REPLACE FUNCTION app.f(m app.money_t) RETURNS SETOF app.acc LANGUAGE plpgsql AS "
        "$function$ DECLARE x app.money_t; y CONSTANT app.money_t := m; r app.acc%ROWTYPE; "
        "BEGIN DROP TABLE app.acc; RETURN; END $function$",
        "CREATE FUNCTION f() RETURNS TABLE (a app.t) LANGUAGE plpgsql AS $$ BEGIN DROP TABLE t; END $$",
        "DO $$ DECLARE x app.t; BEGIN DROP TABLE t; END $$",
        "DO $$ BEGIN DECLARE x app.t; BEGIN DROP TABLE t; END; END $$",
    ):
        stmt = one(sql)
        assert not stmt.dynamic, sql
        assert ("drop", "table") in kinds(stmt), sql
        assert verdict(NO_DROP, sql) == "block"
