"""MySQL / MariaDB classification facts (own lexer + sqlglot)."""

from __future__ import annotations

from hoop.core.sql import PreparedStatements, classify


def stmts(sql: str):
    c = classify(sql, "mysql")
    assert c.error is None, c.error
    return c.statements


def one(sql: str):
    (s,) = stmts(sql)
    return s


def test_executable_comments_are_what_the_server_runs() -> None:
    assert [s.kind for s in stmts("SELECT 1 /*!50000 ; DELETE FROM t */")] == ["select", "delete"]
    assert one("/*!40101 SET NAMES utf8mb4 */").kind == "set"
    assert one("SELECT /* ; DROP TABLE t */ 1").kind == "select"


def test_comment_styles_and_double_dash_without_space() -> None:
    assert [s.kind for s in stmts("SELECT 1 # ; x\n; SELECT 2 -- ; y\n")] == ["select", "select"]
    assert one("SELECT 1--1").text == "SELECT 1--1"


def test_compound_bodies_stay_whole_but_what_follows_is_split() -> None:
    body = "CREATE PROCEDURE p() BEGIN IF 1 THEN DELETE FROM t; END IF; LOOP LEAVE x; END LOOP; END"
    out = stmts(body + "; TRUNCATE t")
    assert [(s.kind, s.object) for s in out] == [("create", "procedure"), ("truncate", "table")]
    assert classify("CREATE PROCEDURE p() BEGIN SELECT 1;", "mysql").error


def test_delete_join_and_where() -> None:
    s = one("DELETE a FROM a JOIN b ON a.id = b.id")
    assert (s.kind, s.where, s.tables) == ("delete", "missing", {"a", "b"})
    assert one("DELETE FROM a WHERE id = 1").where == "present"
    assert one("UPDATE a SET x = 1 WHERE 'a' = 'A'").where == "trivial"  # collations may say equal


def test_files_passwords_and_load_data() -> None:
    s = one("LOAD DATA LOCAL INFILE 'x' INTO TABLE db.t")
    assert (s.kind, s.flags, s.tables) == ("load_data", {"server_file", "local_infile"}, {"db.t"})
    assert "server_file" in one("SELECT a INTO DUMPFILE '/x' FROM t").flags
    assert one("SELECT a INTO @v FROM t").flags == frozenset()
    assert one("ALTER USER u IDENTIFIED WITH mysql_native_password BY 'x'").flags == {"password_change"}
    assert one("SELECT `Host` FROM `MySQL`.`User`").flags == {"password_hash_read"}


def test_prepare_literal_is_inner_and_variable_is_dynamic() -> None:
    s = one("PREPARE s FROM 'DELETE FROM t WHERE 1'")
    assert (s.kind, s.object, [(i.kind, i.where) for i in s.inner]) == (
        "prepare",
        "s",
        [("delete", "trivial")],
    )
    assert one("PREPARE s FROM @q").dynamic
    session = PreparedStatements()
    session.observe(classify("PREPARE s FROM 'TRUNCATE t'", "mysql"))
    assert [x.kind for x in session.resolve(classify("EXECUTE s", "mysql")).walk()] == [
        "execute",
        "truncate",
    ]


def test_things_sqlglot_misreads_are_classified_from_keywords() -> None:
    assert (one("FLUSH PRIVILEGES").kind, one("SHUTDOWN").kind) == ("flush", "shutdown")
    assert (one("RENAME TABLE a TO b").kind, one("RENAME TABLE a TO b").tables) == (
        "rename",
        {"a", "b"},
    )
    assert one("DROP PREPARE s").kind == "deallocate"
    weird = one("FROBNICATE everything")
    assert weird.kind == "unknown" and weird.dynamic


def test_backslash_ambiguity_keeps_both_readings() -> None:
    kinds = {s.kind for s in stmts("SELECT 'a\\'; DROP TABLE t; -- '")}
    assert kinds == {"select", "drop"}
    assert [s.kind for s in stmts("SELECT 'it\\'s'")] == ["select"]


def test_errors() -> None:
    assert classify("SELECT * FROM", "mysql").error
    assert classify("SELECT 'open", "mysql").error
    assert classify("SELECT 1 /* open", "mysql").error
