"""Lineage of output columns over a catalog (hoop/core/lineage.py), in both dialects: what each
output column derives from, through expressions, subqueries, CTEs, views and set operations;
what cannot reveal a value derives from nothing; what cannot be followed is unknown."""

from __future__ import annotations

import pytest

from hoop.core.lineage import LineageUnknown, Relation, by_position, lineage, relations_named

USERS = Relation("public", "users", ("id", "email", "name", "ssn"))
ORDERS = Relation("public", "orders", ("id", "user_id", "note"))
CATALOG = {
    ("", "users"): USERS,
    ("", "orders"): ORDERS,
    ("", "v"): Relation("public", "v", ("e", "n"), "SELECT upper(users.email) AS e, users.id AS n FROM users"),
    ("", "w"): Relation("public", "w", ("mail",), "SELECT v.e AS mail FROM v"),
}


def sources(sql: str, dialect: str = "postgres") -> list[list[str]]:
    (out,) = lineage(sql, dialect, CATALOG)
    return [sorted(f"{r.table}.{r.column}" for r in taint) for taint in out]


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("select email, name from users", [["users.email"], ["users.name"]]),
        ("select replace(email, '@', ' at ') from users", [["users.email"]]),
        ("select email || name from users", [["users.email", "users.name"]]),
        ("select json_build_object('e', email) from users", [["users.email"]]),
        ("select string_agg(ssn, ',') from users", [["users.ssn"]]),
        ("select case when id = 1 then email end from users", [["users.email"]]),
        ("select (select max(email) from users u2 where u2.id = u.id) from users u", [["users.email"]]),
        ("with c as (select email as e from users) select upper(e) from c", [["users.email"]]),
        ("select x.e from (select lower(email) e from users) x", [["users.email"]]),
        ("select lower(x) from (select * from v) s(x, y)", [["users.email"]]),
        ("select mail from w", [["users.email"]]),
        ("select email from users union select note from orders", [["orders.note", "users.email"]]),
        ("select u.* from users u", [["users.id"], ["users.email"], ["users.name"], ["users.ssn"]]),
        ("update users set name = 'x' where id = 1 returning upper(email), id", [["users.email"], ["users.id"]]),
        ("select u::text from users u", [["users.email", "users.id", "users.name", "users.ssn"]]),
        ("select to_jsonb(users.*) from users", [["users.email", "users.id", "users.name", "users.ssn"]]),
        ("select (u).email from users u", [["users.email", "users.id", "users.name", "users.ssn"]]),
        ("select v::text from v", [["users.email", "users.id"]]),
    ],
)
def test_outputs_derive_from_their_sources(sql: str, expected: list[list[str]]) -> None:
    assert sources(sql) == expected


def test_what_cannot_reveal_a_value_derives_from_nothing() -> None:
    sql = (
        "select count(email), length(email), email is null, email = 'x', email like 'a%', "
        "case when email like 'a%' then 'y' end, row_number() over (partition by email) from users"
    )
    assert sources(sql) == [[]] * 7


@pytest.mark.parametrize(
    ("sql", "why"),
    [
        ("select * from nosuch", "not in the catalog"),
        ("with recursive r(n) as (select 1 union all select n + 1 from r where n < 3) select n from r", "recursive"),
        ("select from where", "could not be parsed"),
    ],
)
def test_what_cannot_be_followed_is_unknown(sql: str, why: str) -> None:
    with pytest.raises(LineageUnknown, match=why):
        lineage(sql, "postgres", CATALOG)


def test_mysql_expressions_and_ctes() -> None:
    assert sources("select concat_ws(',', email, name) from users", "mysql") == [["users.email", "users.name"]]
    assert sources("select group_concat(email) from users", "mysql") == [["users.email"]]
    assert sources("with c as (select email from users) select email from c", "mysql") == [["users.email"]]


def test_relations_named_skips_ctes_and_keeps_schemas() -> None:
    named = relations_named("with c as (select 1) select * from c join s.t on true join users u on true", "postgres")
    assert named == {("", "users"), ("s", "t")}


def test_several_statements_are_told_apart_by_width_or_joined() -> None:
    outs = lineage("select 1; select upper(email) from users; select name from users", "postgres", CATALOG)
    assert [len(o) for o in outs] == [1, 1, 1]
    joined = by_position(outs, 1)[0]
    assert joined is not None and {r.column for r in joined} == {"email", "name"}
    assert by_position(outs, 2) == [None, None]


def test_a_derived_column_is_masked_whole_in_the_rules_style_with_partial_as_redact() -> None:
    from hoop.core.masking import ColumnRef, MaskPolicy, MaskRule

    email = ColumnRef("public", "users", "email")
    for style, whole in (("partial", b"****"), ("redact", b"****")):
        policy = MaskPolicy.build(
            [MaskRule("pii", columns=("users.email",), style=style)], connection="pg", groups=frozenset()
        )
        plan = policy.plan([None, None, None], derived=[frozenset({email}), frozenset(), None])
        assert plan is not None
        out = plan.apply([b"a@b.example and more", b"kept", b"unknown sources"])
        assert out == [whole, b"kept", whole]  # derived, clean, unknown (on_unknown = "mask")
    blocking = MaskPolicy.build(
        [MaskRule("pii", columns=("users.email",), on_unknown="block")], connection="pg", groups=frozenset()
    )
    assert blocking.block_unknown == ("pii",)
