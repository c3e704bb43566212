"""Statements are classified by what they do: a rule written for an effect (delete without a
bounding WHERE, drop, update, insert) catches every statement with that effect, and the
built-in rule catches every way of reaching other sessions of the shared account."""

from __future__ import annotations

import pytest

from hoop.core.guardrails import Context, GuardRule, builtin_rules, evaluate
from hoop.core.sql import Statement, classify

CTX = Context("prod", "alice", frozenset({"dev"}))
UNBOUNDED_DELETE = GuardRule("no-unbounded-delete", "block", statements=("delete",), where="missing-or-trivial")
UNBOUNDED_UPDATE = GuardRule("no-unbounded-update", "block", statements=("update",), where="missing-or-trivial")


def effects(sql: str, dialect: str = "postgres") -> set[tuple[str, str, str | None, frozenset[str]]]:
    c = classify(sql, dialect)  # type: ignore[arg-type]
    assert c.error is None, c.error
    return {(s.kind, s.object, s.where, s.tables) for s in c.walk()}


def verdict(rule: GuardRule, sql: str, dialect: str = "postgres") -> str:
    return evaluate([rule], classify(sql, dialect), CTX).action  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "sql",
    [
        "MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE",
        "MERGE INTO t USING s ON 1 = 1 WHEN MATCHED THEN DELETE",
        "MERGE INTO t USING (SELECT 1 AS id) s ON t.id = t.id WHEN MATCHED THEN DELETE",
        "MERGE INTO t USING s ON true WHEN MATCHED AND 2 > 1 THEN DELETE",
        "MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED BY SOURCE THEN DELETE",
        "WITH x AS (MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE RETURNING 1) SELECT 1",
    ],
)
def test_merge_deleting_every_row_is_an_unbounded_delete(sql: str) -> None:
    assert verdict(UNBOUNDED_DELETE, sql) == "block"
    if classify(sql, "postgres").error is None:  # text the parser rejects is blocked all the same
        assert ("delete", "", "trivial", frozenset({"t"})) in effects(sql)


def test_merge_actions_bounded_by_the_join_are_present() -> None:
    sql = (
        "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED AND s.gone THEN DELETE "
        "WHEN MATCHED THEN UPDATE SET v = s.v WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.v) "
        "WHEN NOT MATCHED BY SOURCE AND t.v > 3 THEN UPDATE SET v = 0"
    )
    got = effects(sql)
    assert {("delete", "", "present", frozenset({"t"})), ("update", "", "present", frozenset({"t"}))} <= got
    assert ("insert", "", None, frozenset({"t"})) in got
    assert verdict(UNBOUNDED_DELETE, sql) == "allow" and verdict(UNBOUNDED_UPDATE, sql) == "allow"
    assert verdict(GuardRule("no-insert", "block", statements=("insert",), tables=("t",)), sql) == "block"
    assert verdict(GuardRule("no-insert-s", "block", statements=("insert",), tables=("s",)), sql) == "allow"
    update_all = "MERGE INTO t USING s ON true WHEN MATCHED THEN UPDATE SET v = 1"
    assert verdict(UNBOUNDED_UPDATE, update_all) == "block"


def test_copy_direction_is_insert_or_read() -> None:
    no_insert = GuardRule("no-insert", "block", statements=("insert",), tables=("orders",))
    for sql in ("COPY orders FROM STDIN", "COPY orders (id) FROM '/tmp/x.csv'", "COPY orders FROM PROGRAM 'cat x'"):
        assert ("insert", "", None, frozenset({"orders"})) in effects(sql)
        assert verdict(no_insert, sql) == "block"
    no_read = GuardRule("no-read", "block", statements=("select",), tables=("orders",))
    assert verdict(no_read, "COPY orders TO STDOUT") == "block"
    assert verdict(no_read, "COPY (SELECT * FROM public.orders) TO STDOUT") == "block"
    assert verdict(no_insert, "COPY orders TO STDOUT") == "allow"


def test_upserts_update() -> None:
    no_update = GuardRule("no-update", "block", statements=("update",), tables=("t",))
    pg = "INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET v = 2"
    my = "INSERT INTO t (id) VALUES (1) ON DUPLICATE KEY UPDATE v = 2"
    assert ("update", "", "present", frozenset({"t"})) in effects(pg)
    assert ("update", "", "present", frozenset({"t"})) in effects(my, "mysql")
    assert verdict(no_update, pg) == "block" and verdict(no_update, my, "mysql") == "block"
    assert verdict(no_update, "INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING") == "allow"
    assert verdict(UNBOUNDED_UPDATE, pg) == "allow"  # only the conflicting rows


def test_mysql_replace_inserts_and_deletes() -> None:
    for sql in ("REPLACE INTO t VALUES (1, 'a')", "REPLACE t SET id = 1", "REPLACE INTO t SELECT * FROM s"):
        got = effects(sql, "mysql")
        assert ("insert", "", None, frozenset({"t"})) in got and ("delete", "", "present", frozenset({"t"})) in got
        assert verdict(GuardRule("no-delete", "block", statements=("delete",)), sql, "mysql") == "block"


@pytest.mark.parametrize(
    ("sql", "dialect", "part"),
    [
        ("ALTER TABLE t DROP COLUMN secret", "postgres", "column"),
        ("ALTER TABLE IF EXISTS t ADD COLUMN x int, DROP COLUMN secret CASCADE", "postgres", "column"),
        ("ALTER TABLE t DROP CONSTRAINT t_pkey", "postgres", "constraint"),
        ("ALTER TABLE t DROP COLUMN secret", "mysql", "column"),
        ("ALTER TABLE t ADD x int, DROP secret", "mysql", "column"),
        ("ALTER TABLE t DROP PARTITION p0", "mysql", "partition"),
        ("ALTER TABLE t DROP CONSTRAINT c, DROP PRIMARY KEY", "mysql", "constraint"),
        ("ALTER /*!50000 TABLE t DROP secret */", "mysql", "column"),
    ],
)
def test_alter_table_drops_are_drops(sql: str, dialect: str, part: str) -> None:
    assert ("drop", part, None, frozenset({"t"})) in effects(sql, dialect)
    for entry in ("drop", f"drop {part}", "drop *"):
        assert verdict(GuardRule("no-drop", "block", statements=(entry,)), sql, dialect) == "block"
    assert (
        verdict(GuardRule("no-drop-other", "block", statements=("drop",), tables=("other",)), sql, dialect) == "allow"
    )


def test_other_alters_are_not_drops() -> None:
    no_drop = GuardRule("no-drop", "block", statements=("drop",))
    assert verdict(no_drop, "ALTER TABLE t ALTER COLUMN v DROP DEFAULT") == "allow"
    assert verdict(no_drop, "ALTER TABLE t ALTER COLUMN v DROP DEFAULT, ALTER v DROP NOT NULL") == "allow"
    assert verdict(no_drop, "ALTER TABLE t ALTER v DROP DEFAULT", "mysql") == "allow"
    assert verdict(no_drop, "ALTER TYPE pair DROP ATTRIBUTE b") == "allow"
    assert (
        verdict(
            GuardRule("no-truncate", "block", statements=("truncate",)), "ALTER TABLE t TRUNCATE PARTITION p0", "mysql"
        )
        == "block"
    )


def builtin(sql: str, dialect: str) -> str:
    return evaluate(builtin_rules(), classify(sql, dialect), CTX).action  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT pg_terminate_backend(12345)",
        "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE usename = current_user",
        "SELECT pg_catalog.pg_terminate_backend(1)",
        "SELECT * FROM pg_stat_activity",
        "SELECT query FROM pg_catalog.pg_stat_activity",
        "SELECT * FROM pg_stat_get_activity(NULL)",
        "SELECT pg_stat_get_backend_activity(s) FROM pg_stat_get_backend_idset() s",
        "SELECT pg_blocking_pids(1)",
        "SELECT * FROM pg_stat_progress_vacuum",
        "SELECT l.* FROM pg_locks l JOIN pg_stat_activity a USING (pid)",
        "WITH x AS (SELECT pid FROM pg_stat_activity) SELECT pg_cancel_backend(pid) FROM x",
        "PREPARE q AS SELECT pg_terminate_backend($1)",
        "CREATE VIEW v AS SELECT * FROM pg_stat_activity",
        "SELECT query FROM pg_stat_statements",
        "SELECT gid FROM pg_prepared_xacts",
        "COPY (SELECT * FROM pg_stat_activity) TO STDOUT",
        "SELECT * FROM query_to_xml('SELECT * FROM pg_stat_activity', true, true, '')",
    ],
)
def test_postgres_other_sessions_are_blocked_by_the_builtin(sql: str) -> None:
    assert builtin(sql, "postgres") == "block"


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT pg_backend_pid()",
        "SELECT * FROM pg_locks",
        "SELECT * FROM my_schema.pg_stat_activity",
        "SELECT * FROM pg_stat_user_tables",
        "SELECT current_setting('application_name')",
    ],
)
def test_postgres_own_session_facts_stay_allowed(sql: str) -> None:
    assert builtin(sql, "postgres") == "allow"


@pytest.mark.parametrize(
    "sql",
    [
        "KILL 5",
        "KILL QUERY 5",
        "KILL HARD CONNECTION 5",
        "KILL QUERY ID 5",
        "KILL USER 'app'",
        "PREPARE s FROM 'KILL 5'",
        "PREPARE s FROM 'KILL QUERY ID 9'",
        "EXECUTE IMMEDIATE 'KILL 5'",
        "SET STATEMENT max_statement_time=1 FOR KILL 5",
        "/*!50000 KILL 5 */",
        "SHOW PROCESSLIST",
        "SHOW FULL PROCESSLIST",
        "SELECT * FROM information_schema.PROCESSLIST",
        "SELECT ID, INFO FROM INFORMATION_SCHEMA.processlist WHERE USER = CURRENT_USER()",
        "SELECT * FROM performance_schema.threads",
        "SELECT SQL_TEXT FROM performance_schema.events_statements_current",
        "SELECT * FROM performance_schema.events_statements_history_long",
        "SELECT * FROM sys.processlist",
        "SHOW EXPLAIN FOR 5",
        "EXPLAIN FOR CONNECTION 5",
        "SHOW ENGINE INNODB STATUS",
        "SHOW ANALYZE FORMAT=JSON FOR 5",
        "EXPLAIN FORMAT=JSON FOR CONNECTION 5",
        "SELECT trx_mysql_thread_id, trx_query FROM information_schema.INNODB_TRX",
        "SELECT * FROM `information_schema`.`PROCESSLIST`",
    ],
)
def test_mysql_other_sessions_are_blocked_by_the_builtin(sql: str) -> None:
    assert builtin(sql, "mysql") == "block"


@pytest.mark.parametrize("sql", ["SELECT CONNECTION_ID()", "SHOW TABLES", "SELECT * FROM information_schema.TABLES"])
def test_mysql_own_session_facts_stay_allowed(sql: str) -> None:
    assert builtin(sql, "mysql") == "allow"


def test_the_builtin_can_be_switched_off_by_name() -> None:
    rules = [
        r if r.name != "builtin-other-sessions" else GuardRule(r.name, "block", enabled=False) for r in builtin_rules()
    ]
    sql = classify("SELECT pg_terminate_backend(1)", "postgres")
    assert evaluate(rules, sql, CTX).action == "allow"


def test_inner_statements_are_plain_statements() -> None:
    c = classify("MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE", "postgres")
    inner = c.statements[0].inner
    assert all(isinstance(s, Statement) and s.text for s in inner)


@pytest.mark.parametrize(
    ("sql", "dialect"),
    [
        ("MERGE INTO t USING (SELECT 1 AS k) s ON s.k = 1 WHEN MATCHED THEN DELETE", "postgres"),
        ("MERGE INTO t USING s ON k = 1 WHEN MATCHED THEN DELETE", "postgres"),
        ("DELETE FROM t USING s WHERE s.k = 1", "postgres"),
        ("DELETE FROM t WHERE EXISTS (SELECT 1 FROM s WHERE s.k = 1)", "postgres"),
        ("DELETE FROM t WHERE EXISTS (SELECT 1 FROM s WHERE k = 1)", "postgres"),
        ("DELETE t FROM t JOIN s ON true WHERE s.k = 1", "mysql"),
        ("DELETE FROM t USING t, s WHERE s.k = 1", "mysql"),
        ("DELETE FROM t WHERE EXISTS (SELECT 1 FROM s WHERE k = 1)", "mysql"),
    ],
)
def test_a_predicate_on_other_tables_alone_does_not_bound_the_target(sql: str, dialect: str) -> None:
    assert verdict(UNBOUNDED_DELETE, sql, dialect) == "block"


@pytest.mark.parametrize(
    ("sql", "dialect"),
    [
        ("UPDATE t SET v = 1 FROM s WHERE s.k = 1", "postgres"),
        ("UPDATE t JOIN s ON 1 = 1 SET t.v = 1 WHERE s.k = 1", "mysql"),
        ("UPDATE t, s SET v = 1 WHERE s.k = 1", "mysql"),  # v may be t's: nothing is known to bound t
    ],
)
def test_an_update_bounded_only_by_other_tables_is_unbounded(sql: str, dialect: str) -> None:
    assert verdict(UNBOUNDED_UPDATE, sql, dialect) == "block"


@pytest.mark.parametrize(
    ("sql", "dialect"),
    [
        ("MERGE INTO t AS x USING s ON x.id = s.id WHEN MATCHED THEN DELETE", "postgres"),
        ("DELETE FROM t x USING s WHERE x.id = s.id AND s.k = 1", "postgres"),
        ("DELETE FROM t WHERE EXISTS (SELECT 1 FROM s WHERE s.t_id = t.id)", "postgres"),
        ("DELETE FROM t WHERE id IN (SELECT id FROM s)", "postgres"),
        ("DELETE FROM public.t WHERE public.t.id = 1", "postgres"),
        ("DELETE t FROM t JOIN s ON t.id = s.id WHERE s.k = 1", "mysql"),
        ("DELETE x FROM t AS x JOIN s ON x.id = s.id WHERE s.k = 1", "mysql"),
        ("UPDATE t JOIN s ON t.id = s.id SET t.v = 1 WHERE s.k = 1", "mysql"),
        ("DELETE FROM t WHERE id IN (SELECT id FROM s)", "mysql"),
    ],
)
def test_a_predicate_on_the_targets_rows_bounds_it(sql: str, dialect: str) -> None:
    assert verdict(UNBOUNDED_DELETE, sql, dialect) == "allow"
    assert verdict(UNBOUNDED_UPDATE, sql, dialect) == "allow"


def test_a_configured_rule_is_named_before_a_builtin() -> None:
    rules = [*builtin_rules(), GuardRule("no-kill", "block", statements=("kill",))]
    assert evaluate(rules, classify("KILL QUERY 5", "mysql"), CTX).rule.name == "no-kill"  # type: ignore[union-attr]
