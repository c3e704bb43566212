"""Masking rules, policies and per-result-set plans."""

from __future__ import annotations

import json

import psycopg
import pytest

from hoop.core.errors import ConfigError
from hoop.core.masking import (
    ColumnRef,
    MaskFormatError,
    MaskPolicy,
    MaskRule,
    mask_copy_line,
    mask_rule_from_mapping,
    mask_rule_to_mapping,
)

NOBODY: frozenset[str] = frozenset()
CARD = b"4111111111111111"


def policy(*rules: MaskRule, groups: frozenset[str] = NOBODY, connection: str = "pg") -> MaskPolicy:
    return MaskPolicy.build(rules, connection=connection, groups=groups, hash_key=b"install-key")


def ref(path: str) -> ColumnRef:
    schema, table, column = path.split(".")
    return ColumnRef(schema, table, column)


# --- TOML mapping ---------------------------------------------------------------------------


def test_mapping_round_trip() -> None:
    data = {
        "name": "pii",
        "columns": ["*.Email", "public.customers.card_number"],
        "detectors": ["credit_card"],
        "style": "partial",
        "exempt": ["auditors"],
        "connections": ["prod-*"],
        "max_rows": 1000,
    }
    rule = mask_rule_from_mapping(data, file="hoop.toml", key="masking[0]")
    assert rule.columns == ("*.email", "public.customers.card_number")
    assert rule.max_bytes is None and rule.enabled
    assert mask_rule_from_mapping(mask_rule_to_mapping(rule), file="f", key="k") == rule


@pytest.mark.parametrize(
    ("data", "key", "problem"),
    [
        ({"name": "x", "colums": ["*.email"]}, "masking[2].colums", "unknown key"),
        ({"columns": ["*.email"]}, "masking[2].name", "non-empty string"),
        ({"name": "x", "columns": "*.email"}, "masking[2].columns", "list"),
        ({"name": "x", "columns": ["a.b.c.d"]}, "masking[2].columns", "schema.table.column"),
        ({"name": "x", "detectors": ["ssn"]}, "masking[2].detectors", "unknown detector 'ssn'"),
        ({"name": "x", "columns": ["a"], "style": "blur"}, "masking[2].style", "redact"),
        ({"name": "x", "columns": ["a"], "max_rows": True}, "masking[2].max_rows", "positive"),
        ({"name": "x", "columns": ["a"], "max_bytes": 0}, "masking[2].max_bytes", "positive"),
        ({"name": "x", "columns": ["a"], "enabled": "yes"}, "masking[2].enabled", "true or false"),
        ({"name": "x", "columns": ["a"], "connections": []}, "masking[2].connections", "at least"),
        ({"name": "x"}, "masking[2].columns", "columns, detectors or a limit"),
    ],
)
def test_mapping_errors_name_the_key(data: dict, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        mask_rule_from_mapping(data, file="hoop.toml", key="masking[2]")
    assert err.value.file == "hoop.toml"
    assert err.value.key == key
    assert problem in err.value.problem


# --- column globs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "column", "masked"),
    [
        ("*.email", "public.users.email", True),
        ("*.email", "crm.contacts.email", True),
        ("*.email", "public.users.email_verified", False),
        ("*.password*", "auth.users.password_hash", True),
        ("*.password*", "auth.users.old_password", False),
        ("email", "any.table.email", True),
        ("users.e*", "public.users.email", True),
        ("users.e*", "public.admins.email", False),
        ("public.customers.card_number", "public.customers.card_number", True),
        ("public.customers.card_number", "archive.customers.card_number", False),
        ("public.customers.card_number", "public.customers.card_number_hint", False),
        ("PUBLIC.Customers.*", "public.customers.name", True),
    ],
)
def test_column_globs(pattern: str, column: str, masked: bool) -> None:
    rule = mask_rule_from_mapping({"name": "r", "columns": [pattern]}, file="f", key="k")
    plan = policy(rule).plan([ref(column)])
    assert (plan is not None and plan.apply([b"secret value"]) == [b"****"]) is masked


def test_computed_columns_are_not_column_masked_but_are_scanned() -> None:
    p = policy(MaskRule("cols", columns=("*",)), MaskRule("det", detectors=("email",)))
    plan = p.plan([None, ref("s.t.c")])
    assert plan is not None
    assert plan.masked_columns == (1,) and plan.scanned_columns == (0,)
    assert plan.column_masked(1) and not plan.column_masked(0)
    assert plan.apply([b"name <a@example.com>", b"x"]) == [b"name <****>", b"****"]


def test_rule_with_columns_and_detectors_masks_columns_and_scans_the_rest() -> None:
    p = policy(MaskRule("notes", columns=("*.notes",), detectors=("credit_card",)))
    plan = p.plan([ref("s.orders.notes"), ref("s.orders.ref")])
    assert plan is not None and plan.masked_columns == (0,) and plan.scanned_columns == (1,)
    row = [b"paid on 2024-05-01", b"ref 4111111111111111 / 4111111111111112"]
    # the notes column is masked whole; the other is scanned and only its valid card is masked
    assert plan.apply(row) == [b"****", b"ref **** / 4111111111111112"]


def test_strongest_style_wins() -> None:
    p = policy(
        MaskRule("a", columns=("*.card",), style="partial"),
        MaskRule("b", columns=("card",), style="redact"),
    )
    plan = p.plan([ref("s.t.card")])
    assert plan is not None and plan.apply([CARD]) == [b"****"]


# --- identity: exemptions, connections, limits ----------------------------------------------


def test_exempt_groups_see_clear_values_and_are_reported() -> None:
    rules = (
        MaskRule("cards", columns=("*.card",), exempt=("billing",), max_rows=10),
        MaskRule("mail", detectors=("email",), max_rows=500, max_bytes=4096),
    )
    billing = policy(*rules, groups=frozenset({"billing", "dev"}))
    assert billing.exempted == ("cards",)
    assert billing.max_rows == 500 and billing.max_bytes == 4096
    plan = billing.plan([ref("s.t.card")])
    assert plan is not None and plan.apply([CARD]) is None
    others = policy(*rules, groups=frozenset({"dev"}))
    assert others.exempted == () and others.max_rows == 10
    plan = others.plan([ref("s.t.card")])
    assert plan is not None and plan.apply([CARD]) == [b"****"]


def test_connection_globs_and_disabled_rules() -> None:
    rules = (
        MaskRule("prod", columns=("*",), connections=("prod-*",)),
        MaskRule("off", columns=("*",), enabled=False),
    )
    assert policy(*rules, connection="staging").plan([ref("s.t.c")]) is None
    assert policy(*rules, connection="prod-eu").plan([ref("s.t.c")]) is not None


# --- fast path ------------------------------------------------------------------------------


def test_untouched_rows_are_reported_unchanged() -> None:
    p = policy(MaskRule("pii", detectors=("email", "credit_card", "us_ssn", "phone", "iban")))
    plan = p.plan([ref("s.t.a"), ref("s.t.b"), None])
    assert plan is not None
    assert plan.apply([b"Alice", None, b"ORD-2024-0042 v1.2.3 2024-01-15"]) is None
    row = [b"Alice", None, b"bob@example.com"]
    assert plan.apply(row) == [b"Alice", None, b"****"]
    assert row == [b"Alice", None, b"bob@example.com"]  # the caller's row is not modified


def test_plan_is_none_when_nothing_can_be_masked() -> None:
    assert policy().plan([ref("s.t.c")]) is None
    assert policy(MaskRule("c", columns=("*.card",))).plan([ref("s.t.name")]) is None
    # Dates, booleans and uuids cannot hold the patterns: not even scanned.
    scan_all = policy(MaskRule("pii", detectors=("email", "credit_card")))
    assert scan_all.plan([None, None, None], ["date", "bool", "uuid"]) is None


# --- types ----------------------------------------------------------------------------------


def test_non_text_columns_become_null_or_numeric_hash() -> None:
    p = policy(MaskRule("ids", columns=("*.id", "*.born", "*.tiny")))
    plan = p.plan([ref("s.t.id"), ref("s.t.born"), ref("s.t.tiny")], ["int4", "date", "int2"])
    assert plan is not None and plan.apply([b"42", b"1990-01-01", b"7"]) == [None, None, None]
    hashed = policy(MaskRule("ids", columns=("*.id", "*.small"), style="hash"))
    plan = hashed.plan([ref("s.t.id"), ref("s.t.small")], ["int4", "smallint"])
    assert plan is not None
    out = plan.apply([b"42", b"42"])
    assert out is not None and out[0] is not None and out[1] is not None
    assert 0 <= int(out[0]) <= 2**31 - 1 and 0 <= int(out[1]) <= 32767
    again = plan.apply([b"42", b"1"])
    assert again is not None and again[0] == out[0] and again[1] != out[1]  # stable, joinable


def test_card_number_in_a_bigint_column() -> None:
    p = policy(MaskRule("cards", detectors=("credit_card", "email", "phone")))
    plan = p.plan([ref("s.t.n"), ref("s.t.m")], ["int8", "numeric"])
    assert plan is not None and plan.scanned_columns == (0, 1)
    assert plan.apply([CARD, b"4111111111111111.50"]) == [None, b"4111111111111111.50"]
    assert plan.apply([b"1234567890123456", b"12"]) is None  # fails Luhn: an order number


def test_json_value_stays_valid_json() -> None:
    p = policy(MaskRule("pii", detectors=("credit_card", "email"), style="partial"))
    plan = p.plan([None], ["json"])
    assert plan is not None
    doc = b'{"id": 7, "card": 4111111111111111, "mail": "a@example.com", "tags": ["x"]}'
    out = plan.apply([doc])
    assert out is not None and out[0] is not None
    assert json.loads(out[0]) == {
        "id": 7, "card": "************1111", "mail": "****@example.com", "tags": ["x"],
    }  # fmt: skip
    assert plan.apply([b'{"id": 1234567890123456}']) is None


# --- styles on whole columns ----------------------------------------------------------------


def test_column_styles() -> None:
    cols = [ref("s.t.card"), ref("s.t.email"), ref("s.t.code")]
    partial = policy(MaskRule("p", columns=("*",), style="partial")).plan(cols)
    assert partial is not None
    assert partial.apply([b"4111 1111 1111 1111", b"alice@example.com", b"AB12"]) == [
        b"************1111", b"****@example.com", b"****",  # short values are fully hidden
    ]  # fmt: skip
    hashed = policy(MaskRule("h", columns=("*",), style="hash")).plan(cols)
    assert hashed is not None
    a = hashed.apply([b"x", b"alice@example.com", b"x"])
    b = hashed.apply([b"y", b"alice@example.com", b"x"])
    assert a is not None and b is not None and a[1] == b[1] and a[0] != b[0]
    rule = MaskRule("h", columns=("*",), style="hash")
    other_key = MaskPolicy.build([rule], connection="pg", groups=NOBODY, hash_key=b"k2").plan(cols)
    assert other_key is not None and other_key.apply([b"x", b"alice@example.com", b"x"]) != a


def test_apply_text_uses_every_detector_of_the_policy() -> None:
    p = policy(
        MaskRule("n", columns=("*.notes",), detectors=("us_ssn",)),
        MaskRule("m", detectors=("email",)),
    )
    assert p.apply_text("ssn 123-45-6789 mail a@example.com") == "ssn **** mail ****"
    assert policy(MaskRule("c", columns=("*",))).apply_text("a@example.com") == "a@example.com"


# --- COPY text format -----------------------------------------------------------------------


def copy_plan() -> tuple[MaskPolicy, list[ColumnRef | None]]:
    p = policy(MaskRule("card", columns=("*.card",)), MaskRule("pii", detectors=("email",)))
    return p, [ref("s.t.id"), ref("s.t.card"), ref("s.t.note")]


def test_copy_line_masks_and_keeps_escapes() -> None:
    p, cols = copy_plan()
    plan = p.plan(cols, ["int4", "text", "text"])
    assert plan is not None
    line = b"7\t4111\\t1111\tsee\\ta@example.com\\\\x\\n\n"
    assert mask_copy_line(plan, line) == b"7\t****\tsee\\t****\\\\x\\n\n"
    assert mask_copy_line(plan, b"8\t\\N\tnothing\\there") is None
    assert mask_copy_line(plan, b"8\t\\N\tmail: b@example.org") == b"8\t\\N\tmail: ****"
    assert mask_copy_line(plan, b"\\.\n") is None
    with pytest.raises(MaskFormatError):
        mask_copy_line(plan, b"only one field\n")


def test_copy_line_with_custom_delimiter_and_null() -> None:
    p, cols = copy_plan()
    plan = p.plan(cols)
    assert plan is not None
    assert mask_copy_line(plan, b"1,,x\\,a@example.com", delimiter=b",", null=b"") == b"1,,x\\,****"


@pytest.mark.needs_postgres
def test_copy_output_of_real_postgres() -> None:
    with psycopg.connect("host=127.0.0.1 dbname=test user=postgres", autocommit=True) as conn:
        cur = conn.cursor()
        query = (
            "COPY (SELECT 1 AS id, '4111111111111111'::text AS card,"
            " E'tab\\there\\nnew line a@example.com back\\\\slash' AS note, NULL::text) TO STDOUT"
        )
        with cur.copy(query) as copy:
            raw = b"".join(bytes(chunk) for chunk in copy)
    p = policy(MaskRule("card", columns=("*.card",)), MaskRule("pii", detectors=("email",)))
    plan = p.plan([ref("s.t.id"), ref("s.t.card"), None, None], ["int4", "text", "text", "text"])
    assert plan is not None
    masked = mask_copy_line(plan, raw)
    assert masked == b"1\t****\ttab\\there\\nnew line **** back\\\\slash\t\\N\n"
