"""PostgreSQL classification facts (pglast)."""

from __future__ import annotations

from hoop.core.sql import PLANNED_ONLY, PreparedStatements, classify


def one(sql: str):
    c = classify(sql, "postgres")
    assert c.error is None, c.error
    assert len(c.statements) == 1
    return c.statements[0]


def test_multi_statement_texts_are_each_statement() -> None:
    c = classify("SELECT 'é';  DELETE FROM t WHERE id = 1", "postgres")
    assert [s.kind for s in c.statements] == ["select", "delete"]
    assert [s.text for s in c.statements] == ["SELECT 'é'", "DELETE FROM t WHERE id = 1"]


def test_where_states() -> None:
    assert one("DELETE FROM t").where == "missing"
    assert one("DELETE FROM t WHERE NOT (1 <> 1)").where == "trivial"
    assert one("DELETE FROM t WHERE random() < 2").where == "trivial"  # row-independent: unbounded
    assert one("DELETE FROM t WHERE id = 3 AND true").where == "present"
    assert one("DELETE FROM t WHERE 1 = 0").where == "present"
    assert one("SELECT * FROM t").where is None


def test_cte_dml_is_inner_with_its_own_where() -> None:
    s = one("WITH a AS (DELETE FROM s.t RETURNING *), b AS (UPDATE u SET x = 1 WHERE id = 2 RETURNING *) SELECT 1")
    assert s.kind == "select"
    assert {(i.kind, i.where) for i in s.inner} == {("delete", "missing"), ("update", "present")}
    assert {"s.t", "u"} <= s.tables


def test_plain_explain_is_planned_only_and_analyze_is_not() -> None:
    planned = classify("EXPLAIN DELETE FROM t", "postgres")
    assert [s.kind for s in planned.walk()] == ["explain", "delete"]
    assert [s.kind for s in planned.walk(executed_only=True)] == ["explain"]
    assert PLANNED_ONLY in planned.statements[0].inner[0].flags
    analyzed = classify("EXPLAIN (ANALYZE) DELETE FROM t", "postgres")
    assert [s.kind for s in analyzed.walk(executed_only=True)] == ["explain", "delete"]


def test_flags() -> None:
    assert one("COPY t TO PROGRAM 'gzip > /tmp/x'").flags == {"program"}
    assert one("COPY t FROM '/tmp/x'").flags == {"server_file"}
    assert one("COPY t FROM STDIN").flags == frozenset()
    assert "server_file" in one("SELECT x FROM t WHERE y = pg_catalog.pg_stat_file('base')::text").flags
    assert "password_hash_read" in one("SELECT * FROM t JOIN LATERAL (SELECT * FROM pg_shadow) s ON true").flags
    assert one("ALTER ROLE r WITH LOGIN").flags == frozenset()
    assert one("CREATE USER MAPPING FOR r SERVER s OPTIONS (user 'a', password 'b')").flags == {"password_change"}


def test_kinds_and_objects() -> None:
    assert (one("DROP MATERIALIZED VIEW v").kind, one("DROP MATERIALIZED VIEW v").object) == (
        "drop",
        "materialized view",
    )
    assert one("CREATE UNIQUE INDEX i ON t (a)").object == "index"
    assert one("SELECT * INTO copy_t FROM t").kind == "create"
    assert one("SET ROLE admin").object == "role"
    assert one("START TRANSACTION").kind == "begin"
    assert one("VACUUM FULL t").kind == "vacuum"
    assert one("CALL p(1)").object == "p"
    do = one("DO $$ BEGIN END $$")
    assert do.kind == "do" and not do.dynamic


def test_create_function_body_is_inner_and_call_is_a_function() -> None:
    f = one("CREATE FUNCTION f() RETURNS int BEGIN ATOMIC DELETE FROM t; SELECT 1; END")
    assert (f.kind, f.object, f.dynamic) == ("create", "function", False)
    assert [(s.kind, s.where) for s in f.inner] == [("delete", "missing"), ("select", None)]
    assert one("SELECT public.f()").functions == {"public.f"}


def test_execute_resolves_through_prepared_statements() -> None:
    session = PreparedStatements()
    session.observe(classify("PREPARE wipe AS DELETE FROM t", "postgres"))
    resolved = session.resolve(classify("EXECUTE wipe", "postgres"))
    assert [s.kind for s in resolved.walk()] == ["execute", "delete"]
    unknown = session.resolve(classify("EXECUTE other", "postgres"))
    assert unknown.statements[0].dynamic
    session.observe(classify("DEALLOCATE ALL", "postgres"))
    assert session.resolve(classify("EXECUTE wipe", "postgres")).statements[0].dynamic


def test_syntax_error_is_reported_and_cached() -> None:
    c = classify("DELETE FROM", "postgres")
    assert c.statements == () and c.error and "syntax error" in c.error
    assert classify("DELETE FROM", "postgres") is c
