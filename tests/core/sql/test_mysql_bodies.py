"""MySQL stored programs are judged where they are defined: each body statement is inner."""

from __future__ import annotations

from hoop.core.guardrails import Context, GuardRule, evaluate
from hoop.core.sql import Statement, classify

CTX = Context("dev", "alice", frozenset())
UNBOUNDED = GuardRule("unbounded", "block", statements=("delete", "update"), where="missing", dynamic="allow")
NO_DROP = GuardRule("no-drop", "block", statements=("drop", "truncate"))


def one(sql: str) -> Statement:
    c = classify(sql, "mysql")
    assert c.error is None and len(c.statements) == 1, c.error
    return c.statements[0]


def verdict(rule: GuardRule, sql: str) -> str:
    return evaluate([rule], classify(sql, "mysql"), CTX).action


def test_every_compound_form_is_walked() -> None:
    p = one(
        """CREATE DEFINER=`root`@`localhost` PROCEDURE p(IN a INT, OUT b VARCHAR(10))
        COMMENT 'x' MODIFIES SQL DATA SQL SECURITY INVOKER
        lbl: BEGIN
          DECLARE done INT DEFAULT (SELECT COUNT(*) FROM d1);
          DECLARE c CURSOR FOR SELECT id FROM c1;
          DECLARE CONTINUE HANDLER FOR NOT FOUND, SQLSTATE '02000' SET done = 1;
          DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN DELETE FROM h1; END;
          SET b = (SELECT MAX(x) FROM s1);
          IF (SELECT 1 FROM i1) THEN UPDATE u SET x = 1; ELSEIF a > 1 THEN LEAVE lbl; ELSE CALL q(); END IF;
          CASE a WHEN 1 THEN SELECT 1; ELSE BEGIN END; END CASE;
          WHILE a > 0 DO SET a = a - 1; END WHILE;
          REPEAT FETCH c INTO b; UNTIL (SELECT done FROM r1) END REPEAT;
          l2: LOOP ITERATE l2; END LOOP l2;
          OPEN c; CLOSE c;
        END"""
    )
    assert not p.dynamic
    inner_tables = set().union(*(s.tables for s in p.inner))
    assert {"d1", "c1", "h1", "s1", "i1", "u", "r1"} <= inner_tables
    assert [(s.kind, s.where) for s in p.inner if s.kind in ("delete", "update")] == [
        ("delete", "missing"),
        ("update", "missing"),
    ]
    assert ("call", "q") in [(s.kind, s.object) for s in p.inner]


def test_blocked_body_statement_blocks_the_definition() -> None:
    for sql in (
        "CREATE PROCEDURE p() BEGIN DELETE FROM t; END",
        "CREATE PROCEDURE p() DELETE FROM t",
        "CREATE FUNCTION f(a INT) RETURNS INT DETERMINISTIC BEGIN UPDATE t SET x = a; RETURN 1; END",
        "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW FOLLOWS other BEGIN DELETE FROM t2; END",
        "CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO BEGIN DELETE FROM logs; END",
        "ALTER EVENT e DO DELETE FROM logs",
        "BEGIN NOT ATOMIC DELETE FROM t; END",
    ):
        assert verdict(UNBOUNDED, sql) == "block", sql
    assert verdict(UNBOUNDED, "CREATE PROCEDURE p(a INT) BEGIN DELETE FROM t WHERE id = a; END") == "allow"
    assert verdict(NO_DROP, "CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW TRUNCATE t2") == "block"
    assert verdict(NO_DROP, "BEGIN NOT ATOMIC SELECT 1; END") == "allow"


def test_dynamic_sql_in_a_body_is_dynamic() -> None:
    for sql in (
        "CREATE PROCEDURE p() BEGIN PREPARE s FROM @q; EXECUTE s; END",
        "CREATE PROCEDURE p(q TEXT) BEGIN EXECUTE IMMEDIATE q; END",
        "CREATE FUNCTION udf RETURNS INTEGER SONAME 'udf.so'",
    ):
        assert any(s.dynamic for s in classify(sql, "mysql").walk()), sql
        assert verdict(NO_DROP, sql) == "block", sql
    literal = "CREATE PROCEDURE p() BEGIN PREPARE s FROM 'DROP TABLE t'; EXECUTE s; END"
    assert verdict(NO_DROP, literal) == "block"


def test_unreadable_body_fails_closed() -> None:
    c = classify("CREATE PROCEDURE p() BEGIN IF 1 DELETE FROM t; END", "mysql")
    assert c.error is not None or any(s.dynamic for s in c.walk())
    assert verdict(NO_DROP, "CREATE PROCEDURE p() BEGIN IF 1 DELETE FROM t; END") == "block"


def test_parameters_variables_and_new_rows_are_values_not_columns() -> None:
    trivial = GuardRule("trivial", "block", statements=("delete", "update"), where="missing-or-trivial")
    for sql in (
        "CREATE PROCEDURE p(IN everything INT) BEGIN DELETE FROM t WHERE everything; END",
        "CREATE PROCEDURE p() BEGIN DECLARE a, b INT DEFAULT 1; UPDATE t SET x = 0 WHERE a = b; END",
        "CREATE TRIGGER tr AFTER INSERT ON s FOR EACH ROW DELETE FROM t WHERE NEW.flag",
        "CREATE PROCEDURE p(id INT) DELETE FROM t WHERE id = id",  # the server reads both as the parameter
    ):
        assert verdict(trivial, sql) == "block", sql
    assert verdict(trivial, "CREATE PROCEDURE p(p_id INT) BEGIN DELETE FROM t WHERE id = p_id; END") == "allow"
    assert verdict(trivial, "CREATE TRIGGER tr AFTER INSERT ON s FOR EACH ROW DELETE FROM t WHERE id = NEW.id") == (
        "allow"
    )


def test_mariadb_for_loops_stay_in_their_body() -> None:
    p = one(
        "CREATE PROCEDURE p() BEGIN FOR i IN 1..3 DO INSERT INTO log VALUES (i); END FOR; "
        "FOR r IN (SELECT id FROM acc) DO DELETE FROM acc WHERE r.id; END FOR; SELECT 5; END"
    )
    assert [(s.kind, sorted(s.tables)) for s in p.inner] == [
        ("insert", ["log"]),
        ("select", ["acc"]),
        ("delete", ["acc"]),
        ("select", []),
    ]
    trivial = GuardRule("trivial", "block", statements=("delete",), where="missing-or-trivial")
    assert verdict(trivial, p.text) == "block"  # r.id is a value held by the loop, not a column
