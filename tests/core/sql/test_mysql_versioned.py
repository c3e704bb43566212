"""Versioned comments are read as the server reads them: MariaDB runs `/*!NNNNN ... */` up to
its own version except MySQL-only versions 50700-99999 (unless `/*M!`), and skips the others
as comments, quotes and all. With the version unknown, both readings count."""

from __future__ import annotations

import pytest

from hoop.core.sql import classify
from hoop.core.sql.textmode import mysql_mode, mysql_version_id

MARIADB = mysql_mode("utf8mb4", "", mysql_version_id("10.11.19-MariaDB-0+deb12u1"), mariadb=True)
MYSQL = mysql_mode("utf8mb4", "", mysql_version_id("8.0.36"), mariadb=False)
UNKNOWN = mysql_mode("utf8mb4", "")


def kinds(sql: str, mode: object) -> list[tuple[str, str | None]]:
    result = classify(sql, "mysql", mode)  # type: ignore[arg-type]
    assert result.error is None, result.error
    return [(s.kind, s.where) for s in result.statements]


def test_version_id() -> None:
    assert MARIADB.server_version == 101119 and mysql_version_id("not a version") == 0


@pytest.mark.parametrize("comment", ["/*!50700", "/*!999999", "/*M!999999"])
def test_a_skipped_comment_hides_no_quote(comment: str) -> None:
    assert ("delete", "missing") in kinds(f"SELECT 1 {comment} '*/ ; DELETE FROM t; -- ' */", MARIADB)


def test_mysql_runs_what_mariadb_skips() -> None:
    sql = "DELETE FROM c /*!50700 WHERE id = 1 */"
    assert kinds(sql, MARIADB) == [("delete", "missing")]
    assert kinds(sql, MYSQL) == [("delete", "present")]
    assert set(kinds(sql, UNKNOWN)) == {("delete", "missing"), ("delete", "present")}


def test_readings_that_differ_only_in_facts_are_both_kept() -> None:
    """Both readings span the same text; the second is not dropped as a duplicate."""
    assert set(kinds("DELETE FROM c WHERE /*!999999 id = 1 AND */ 1", UNKNOWN)) == {
        ("delete", "present"),
        ("delete", "trivial"),
    }


def test_one_nested_comment_inside_a_skipped_one() -> None:
    assert ("delete", "missing") in kinds("SELECT 1 /*!50700 /* x */ '*/ ; DELETE FROM t", MARIADB)
