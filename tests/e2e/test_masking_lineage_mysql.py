"""A column rule follows the data (MySQL / MariaDB): a masked column passed through an
expression, an aggregate, a JSON builder, a view, a CTE or a derived table comes out masked
whole, through the `mariadb` client, PyMySQL (text rows) and mysql-connector's prepared
statements (binary rows); what cannot reveal the value (`COUNT`, `LENGTH`, `IS NULL`,
comparisons) is not masked. Unqualified names resolve in the session's current database. A
result whose lineage cannot be followed is masked (on_unknown = "mask") or refused
(on_unknown = "block")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from support.gateway import GatewayProcess, users_toml
from support.mariadb import (
    gateway_ca,
    mariadb_client,
    mysql_connection_toml,
    mysql_gateway,
    through,
    throwaway_database,
)

pytestmark = pytest.mark.needs_mariadb

EMAIL, SSN, NAME = "grace.hopper@navy.example", "219-09-9999", "Grace Hopper"
RULES = """
[[masking]]
name = "lineage-pii"
columns = ["mylin_users.email", "mylin_users.ssn"]
style = "redact"
"""
BLOCKING = RULES.replace('style = "redact"', 'style = "redact"\non_unknown = "block"')

LEAKING = {
    "replace": "select replace(email, '@', ' at ') from mylin_users",
    "substr": "select substr(email, 2) from mylin_users",
    "concat": "select concat(email, '') from mylin_users",
    "concat_ws": "select concat_ws(',', name, ssn) from mylin_users",
    "cast": "select cast(email as char(200)) from mylin_users",
    "to_base64": "select to_base64(email) from mylin_users",
    "regexp_replace": "select regexp_replace(ssn, '-', '') from mylin_users",
    "json_object": "select json_object('e', email) from mylin_users",
    "group_concat": "select group_concat(ssn separator ',') from mylin_users",
    "case": "select case when id = 1 then email end from mylin_users",
    "scalar subquery": "select (select max(email) from mylin_users) as m",
    "union": "select name from mylin_users union all select reverse(email) from mylin_users",
    "view": "select shout from mylin_view",
    "view star": "select * from mylin_view",
    "view of a view": "select shout from mylin_view2",
    "cte": "with c as (select upper(email) as e from mylin_users) select e from c",
    "cte passthrough": "with c as (select ssn from mylin_users) select ssn from c",
    "derived table": "select x.e from (select lower(email) as e from mylin_users) x",
    "derived passthrough": "select x.email from (select email from mylin_users) x",
}
SAFE = {
    "select count(email), count(distinct ssn) from mylin_users": "1\t1",
    "select length(ssn), email is null, email = 'x' from mylin_users": "11\t0\t0",
    "select upper(name) from mylin_users": NAME.upper(),
    "select case when email like 'grace%' then 'yes' end from mylin_users": "yes",
}
RECURSIVE = (
    "with recursive r(n, e) as (select 1, email from mylin_users union all select n + 1, e from r where n < 2) "
    "select concat(e, '') from r"
)
TABLES = (
    "CREATE TABLE mylin_users (id INT, email VARCHAR(80), ssn VARCHAR(20), name VARCHAR(40))",
    f"INSERT INTO mylin_users VALUES (1, '{EMAIL}', '{SSN}', '{NAME}')",
    "CREATE VIEW mylin_view AS SELECT id, upper(email) AS shout, name FROM mylin_users",
    "CREATE VIEW mylin_view2 AS SELECT shout FROM mylin_view",
)


@pytest.fixture(scope="module")
def db() -> Iterator[str]:
    with throwaway_database("mylin", *TABLES) as name:
        yield name


def _gateway(tmp: Path, db: str, rules: str) -> Any:
    return mysql_gateway(tmp, users_toml({"alice": ["dev"]}) + mysql_connection_toml(db) + rules)


@pytest.fixture(scope="module")
def gw(db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with _gateway(tmp_path_factory.mktemp("mylin"), db, RULES) as g:
        yield g


def assert_masked(out: str, what: str) -> None:
    for secret in (EMAIL, SSN, EMAIL[::-1], "grace.hopper", "219", "Z3JhY2Uu", "navy"):  # Z3JhY2Uu: base64 of "grace."
        assert secret.lower() not in out.lower(), (what, out)


def mariadb_out(gw: GatewayProcess, sql: str) -> str:
    result = mariadb_client(gw, "alice", sql, "-N", "-B", tls=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("what", list(LEAKING))
def test_every_expression_over_a_masked_column_comes_out_masked_in_the_mariadb_client(
    gw: GatewayProcess, what: str
) -> None:
    out = mariadb_out(gw, LEAKING[what])
    assert out.strip(), what
    assert_masked(out, what)


def test_pymysql_gets_the_same_masking(gw: GatewayProcess) -> None:
    conn = through(gw)
    try:
        for what, sql in LEAKING.items():
            with conn.cursor() as cur:
                cur.execute(sql)
                rows = cur.fetchall()
            assert rows, what
            assert_masked(repr(rows), what)
        with conn.cursor() as cur:
            cur.execute("select length(email), upper(name), email from mylin_users")
            length, upper, email = cur.fetchone()
        assert (length, upper) == (len(EMAIL), NAME.upper()) and EMAIL not in email
    finally:
        conn.close()


def test_prepared_statements_binary_rows_get_the_same_masking(gw: GatewayProcess) -> None:
    import mysql.connector as connector

    conn = connector.connect(
        host="127.0.0.1",
        port=gw.ports["mysql"],
        user="alice",
        password=gw.tokens["alice"],
        database="my",
        ssl_ca=gateway_ca(gw),
        ssl_verify_cert=False,
        use_pure=True,
        autocommit=True,
    )
    try:
        cur = conn.cursor(prepared=True)
        for what, sql in LEAKING.items():
            cur.execute(sql)
            rows = cur.fetchall()
            assert rows, what
            assert_masked(repr(rows), what)
        cur.execute("select length(email), upper(name) from mylin_users where id = ?", (1,))
        assert cur.fetchall() == [(len(EMAIL), NAME.upper())]
    finally:
        conn.close()


@pytest.mark.parametrize("sql", list(SAFE))
def test_what_cannot_reveal_the_value_is_not_masked(gw: GatewayProcess, sql: str) -> None:
    assert mariadb_out(gw, sql).strip() == SAFE[sql]


def test_the_lineage_is_refreshed_after_a_view_changes_through_the_gateway(db: str, tmp_path: Path) -> None:
    with _gateway(tmp_path, db, RULES) as g:
        assert_masked(mariadb_out(g, "select shout from mylin_view2"), "before")
        ddl = mariadb_client(
            g, "alice", "create or replace view mylin_view2 as select upper(name) as shout from mylin_users", tls=False
        )
        assert ddl.returncode == 0, ddl.stderr
        assert mariadb_out(g, "select shout from mylin_view2").strip() == NAME.upper()
        restore = mariadb_client(
            g, "alice", "create or replace view mylin_view2 as select shout from mylin_view", tls=False
        )
        assert restore.returncode == 0, restore.stderr


def test_unknown_lineage_masks_by_default_and_block_refuses(gw: GatewayProcess, db: str, tmp_path: Path) -> None:
    out = mariadb_out(gw, RECURSIVE)
    assert out.strip() and EMAIL not in out, out
    with _gateway(tmp_path, db, BLOCKING) as blocking:
        result = mariadb_client(blocking, "alice", RECURSIVE, tls=False)
        assert result.returncode != 0 and EMAIL not in result.stdout, result.stdout
        assert "cannot tell where this result's computed columns come from" in result.stderr, result.stderr
        assert "recursive CTE" in result.stderr, result.stderr
        # followed, so neither refused nor masked
        assert mariadb_out(blocking, "select upper(name) from mylin_users").strip() == NAME.upper()
        conn = through(blocking)  # the session goes on after a refused result
        try:
            with conn.cursor() as cur:
                with pytest.raises(pymysql.err.MySQLError, match="recursive CTE"):
                    cur.execute(RECURSIVE)
                cur.execute("select upper(name) from mylin_users")
                assert cur.fetchall() == ((NAME.upper(),),)
        finally:
            conn.close()


def test_unqualified_names_resolve_in_the_current_database(db: str, tmp_path: Path) -> None:
    """After USE, a view named without its database is the one of the current database: its
    lineage is followed there (under on_unknown = "block", an unresolved name would refuse)."""
    view = f"CREATE VIEW mylin_other AS SELECT lower(email) AS e, upper(name) AS n FROM `{db}`.mylin_users"
    with throwaway_database("mylin_use", view) as other, _gateway(tmp_path, db, BLOCKING) as g:
        conn = through(g)
        try:
            with conn.cursor() as cur:
                cur.execute(f"USE `{other}`")
                cur.execute("select e, n from mylin_other")
                rows = cur.fetchall()
            assert rows and rows[0][1] == NAME.upper(), rows
            assert_masked(repr(rows), "after USE")
        except pymysql.err.MySQLError as exc:
            raise AssertionError(f"refused: {exc}") from None
        finally:
            conn.close()
