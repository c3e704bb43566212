"""A column rule follows the data (PostgreSQL): a masked column passed through an expression,
an aggregate, a JSON builder, a view or a CTE comes out masked whole, through psql and
psycopg (text and binary); what cannot reveal the value (`count`, `length`, `IS NULL`,
comparisons) is not masked, and other columns are untouched. A result whose lineage cannot be
followed is masked (on_unknown = "mask") or refused (on_unknown = "block")."""

from __future__ import annotations

import json

import psycopg
import pytest
from support.postgres import connect_target

pytestmark = pytest.mark.needs_postgres

EMAIL, SSN, NAME = "grace.hopper@navy.example", "219-09-9999", "Grace Hopper"
RULES = """
[[masking]]
name = "lineage-pii"
columns = ["lin_users.email", "lin_users.ssn"]
style = "redact"
"""

LEAKING = {
    "replace": "select replace(email, '@', ' at ') from lin_users",
    "translate": "select translate(ssn, '0123456789', 'abcdefghij') from lin_users",
    "substr": "select substr(email, 2) from lin_users",
    "concat": "select email || '' from lin_users",
    "concat_ws": "select concat_ws(',', name, ssn) from lin_users",
    "cast": "select email::varchar(200) from lin_users",
    "base64": "select encode(convert_to(email, 'UTF8'), 'base64') from lin_users",
    "regexp_replace": "select regexp_replace(ssn, '-', '', 'g') from lin_users",
    "json_build_object": "select json_build_object('e', email) from lin_users",
    "row_to_json": "select row_to_json(t) from (select ssn from lin_users) t",
    "string_agg": "select string_agg(ssn, ',') from lin_users",
    "array_agg": "select array_agg(email) from lin_users",
    "case": "select case when id = 1 then email end from lin_users",
    "scalar subquery": "select (select max(email) from lin_users) as m",
    "union": "select name from lin_users union all select reverse(email) from lin_users",
    "view": "select shout from lin_view",
    "view star": "select * from lin_view",
    "view of a view": "select shout from lin_view2",
    "cte": "with c as (select upper(email) as e from lin_users) select e from c",
    "cte passthrough": "with c as (select ssn from lin_users) select ssn || '!' from c",
    "derived table": "select x.e from (select lower(email) as e from lin_users) x",
    "returning": "update lin_users set name = name where id = 1 returning upper(email)",
    "whole row": "select u::text from lin_users u",
    "whole row as json": "select to_jsonb(lin_users.*) from lin_users",
    "field of a row": "select (u).email from lin_users u",
}
SAFE = {
    "select count(email), count(distinct ssn) from lin_users": "1|1",
    "select length(ssn), email is null, email = 'x' from lin_users": "11|f|f",
    "select upper(name) from lin_users": NAME.upper(),
    "select case when email like 'grace%' then 'yes' end from lin_users": "yes",
}


@pytest.fixture
def gw(make_gateway, pg_target):  # type: ignore[no-untyped-def]
    with connect_target(pg_target) as conn:
        conn.execute("DROP TABLE IF EXISTS lin_users CASCADE")
        conn.execute("CREATE TABLE lin_users (id int, email text, ssn text, name text)")
        conn.execute("INSERT INTO lin_users VALUES (1, %s, %s, %s)", (EMAIL, SSN, NAME))
        conn.execute("CREATE VIEW lin_view AS SELECT id, upper(email) AS shout, name FROM lin_users")
        conn.execute("CREATE VIEW lin_view2 AS SELECT shout FROM lin_view")
    return make_gateway(RULES)


def psql_out(gw, sql: str) -> str:  # type: ignore[no-untyped-def]
    result = gw.psql("alice", gw.token("alice"), sql, "-A", "-t")
    assert result.returncode == 0, result.stderr
    return result.stdout


def assert_masked(out: str, what: str) -> None:
    for secret in (EMAIL, SSN, EMAIL.upper(), "grace.hopper", "219", "Z3JhY2Uu"):  # Z3JhY2Uu: base64 of "grace."
        assert secret.lower() not in out.lower(), (what, out)


@pytest.mark.parametrize("what", list(LEAKING))
def test_every_expression_over_a_masked_column_comes_out_masked_in_psql(gw, what: str) -> None:  # type: ignore[no-untyped-def]
    out = psql_out(gw, LEAKING[what])
    assert out, what  # a row came back, masked (an array masked whole is NULL: an empty line)
    assert_masked(out, what)


@pytest.mark.parametrize("binary", [False, True])
def test_psycopg_text_and_binary_get_the_same_masking(gw, binary: bool) -> None:  # type: ignore[no-untyped-def]
    with psycopg.connect(gw.dsn("alice", gw.token("alice"))) as conn:
        for what, sql in LEAKING.items():
            if sql.startswith("update"):
                continue
            rows = conn.cursor(binary=binary).execute(sql).fetchall()
            assert rows, what
            assert_masked(repr(rows), what)
        row = conn.cursor(binary=binary).execute("select length(email), upper(name) from lin_users").fetchone()
        assert row == (len(EMAIL), NAME.upper())


@pytest.mark.parametrize("sql", list(SAFE))
def test_what_cannot_reveal_the_value_is_not_masked(gw, sql: str) -> None:  # type: ignore[no-untyped-def]
    assert psql_out(gw, sql).strip() == SAFE[sql]


def test_the_lineage_is_refreshed_after_a_view_changes(gw, pg_target) -> None:  # type: ignore[no-untyped-def]
    assert_masked(psql_out(gw, "select shout from lin_view"), "before")
    # through the gateway: DDL clears the catalog caches at once
    ddl = gw.psql(
        "alice",
        gw.token("alice"),
        "create or replace view lin_view as select id, upper(name) as shout, name from lin_users",
    )
    assert ddl.returncode == 0, ddl.stderr
    assert psql_out(gw, "select shout from lin_view").strip() == NAME.upper()


def test_unknown_lineage_masks_by_default_and_block_refuses(make_gateway, pg_target) -> None:  # type: ignore[no-untyped-def]
    with connect_target(pg_target) as conn:
        conn.execute("DROP TABLE IF EXISTS lin_users CASCADE")
        conn.execute("CREATE TABLE lin_users (id int, email text, ssn text, name text)")
        conn.execute("INSERT INTO lin_users VALUES (1, %s, %s, %s)", (EMAIL, SSN, NAME))
    # A recursive CTE is not followed: its computed columns are masked (default on_unknown).
    recursive = (
        "with recursive r(n, e) as (select 1, email from lin_users union all select n + 1, e from r where n < 2) "
        "select e || '' from r"
    )
    masking = make_gateway(RULES)
    out = psql_out(masking, recursive)
    assert out.strip() and EMAIL not in out, out
    assert psql_out(masking, "select upper(name) from lin_users").strip() == NAME.upper()  # followed: untouched
    blocking = make_gateway(RULES.replace('style = "redact"', 'style = "redact"\non_unknown = "block"'))
    result = blocking.psql("alice", blocking.token("alice"), recursive)
    assert result.returncode != 0 and EMAIL not in result.stdout, result.stdout
    assert "cannot tell where this result's computed columns come from" in result.stderr, result.stderr
    assert "recursive CTE" in result.stderr, result.stderr


def test_rules_test_previews_what_lineage_would_mask(make_gateway, pg_target) -> None:  # type: ignore[no-untyped-def]
    with connect_target(pg_target) as conn:
        conn.execute("DROP TABLE IF EXISTS lin_users CASCADE")
        conn.execute("CREATE TABLE lin_users (id int, email text, ssn text, name text)")
        conn.execute("INSERT INTO lin_users VALUES (1, %s, %s, %s)", (EMAIL, SSN, NAME))
    gw = make_gateway()  # no rule yet: the history holds clear values
    psql_out(gw, "select replace(email, '@', ' at ') as spaced, upper(name) from lin_users")
    gw.audit(until=lambda events: any(e["action"] == "session.end" for e in events))
    draft = '[[masking]]\nname = "draft"\ncolumns = ["lin_users.email"]\nstyle = "redact"\n'
    report = json.loads(gw.cli("rules", "test", "mask", "--json", input=draft).stdout)
    assert report["counts"].get("masked") == 1, report
    assert any("replace(email" in hit["text"] and "spaced" in hit["text"] for hit in report["hits"]), report
    assert not any("upper" in hit["text"].split("->")[-1] for hit in report["hits"]), report
