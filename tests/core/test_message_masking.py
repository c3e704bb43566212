"""Server messages (errors, notices, notifications) masked by a session's rules."""

from __future__ import annotations

from hoop.core.masking import ColumnRef, MaskPolicy, MaskRule
from hoop.core.message_masking import SEEN_LIMIT, MessageMasker, SeenValues

EMAIL = "grace.hopper@navy.example"
CAST_ERROR = f'invalid input syntax for type integer: "{EMAIL}"'


def masker(*rules: MaskRule, quote: str = '"') -> MessageMasker:
    policy = MaskPolicy.build(rules, connection="pg", groups=frozenset(), hash_key=b"install-key")
    return MessageMasker(policy, SeenValues(), quote)


def column_rule(*columns: str, style: str = "redact", detectors: tuple[str, ...] = ()) -> MaskRule:
    return MaskRule(name="r", columns=columns, detectors=detectors, style=style)  # type: ignore[arg-type]


def test_quoted_values_are_masked_when_the_statement_names_a_masked_column() -> None:
    m = masker(column_rule("users.email"))
    for statement in ("select cast(email as int) from users", 'SELECT CAST("EMAIL" AS int) FROM t', "table users"):
        assert m.mask(CAST_ERROR, statement) == 'invalid input syntax for type integer: "****"', statement
    assert m.mask(CAST_ERROR, "select cast(note as int) from notes") == CAST_ERROR  # names no masked column


def test_wildcard_parts_name_nothing_in_particular() -> None:
    policy = masker(column_rule("users.*")).policy
    assert policy.style_named_in("select note from users") == "redact"
    assert policy.style_named_in("select note from orders") is None
    assert masker(column_rule("*")).policy.style_named_in("select 1") == "redact"  # every column


def test_quoted_words_of_the_statement_and_server_phrases_are_kept() -> None:
    m = masker(column_rule("email"), quote="'")
    statement = "select nosuch, email from users where email = 'known@x.org'"
    assert m.mask("Unknown column 'nosuch' in 'field list'", statement) == "Unknown column 'nosuch' in 'field list'"
    assert m.mask("Duplicate entry 'known@x.org' for key", statement) == "Duplicate entry 'known@x.org' for key"
    assert m.mask("XPATH syntax error: '~other@x.org'", statement) == "XPATH syntax error: '****'"


def test_row_and_key_details_are_masked() -> None:
    m = masker(column_rule("users.email"))
    statement = "update users set id = -id"
    assert m.mask(f"Failing row contains (-2, {EMAIL}).", statement) == "Failing row contains (****)."
    assert m.mask(f"Key (email)=({EMAIL}) already exists.", statement) == "Key (email)=(****) already exists."


def test_a_quote_inside_the_value_does_not_end_the_masked_span() -> None:
    m = masker(column_rule("email"))
    assert m.mask('bad value: "a"b c"', "select email from t") == 'bad value: "****"'


def test_composed_text_is_masked_whole_unless_the_statement_wrote_it() -> None:
    m = masker(column_rule("email", style="hash"))
    statement = "do $$ begin raise notice '%', (select email from users limit 1); raise notice 'done'; end $$"
    assert m.mask(EMAIL, statement, composed=True).startswith("h:")
    assert m.mask("done", statement, composed=True) == "done"
    assert m.mask(EMAIL, "", composed=True) == EMAIL  # no statement, no rule's detector: kept


def test_values_seen_in_results_are_masked_where_they_reappear() -> None:
    m = masker(column_rule("email", style="partial"))
    plan = m.policy.plan([ColumnRef("public", "users", "email")], ["text"], seen=m.seen)
    assert plan is not None and plan.apply([EMAIL.encode()]) == [b"****@navy.example"]
    # A statement that names no masked column (a function doing the cast) still gets it masked.
    assert m.mask(CAST_ERROR, "select f()") == 'invalid input syntax for type integer: "****@navy.example"'


def test_seen_values_are_bounded_and_keep_the_latest() -> None:
    seen = SeenValues()
    mask = seen.wrap(lambda v: b"****")
    for i in range(SEEN_LIMIT * 3):
        mask(f"value-{i}".encode())
    mask(b"abc")  # too short to be worth remembering
    kept = {**seen.old, **seen.young}
    assert SEEN_LIMIT // 2 <= len(kept) <= SEEN_LIMIT
    assert f"value-{SEEN_LIMIT * 3 - 1}".encode() in kept and b"value-0" not in kept and b"abc" not in kept
    assert seen.replace_in(f"x value-{SEEN_LIMIT * 3 - 1} y") == "x **** y"


def test_detectors_run_over_every_message() -> None:
    m = masker(column_rule(detectors=("email",), style="partial"))
    assert m.mask(f"contact {EMAIL} now", "select 1") == "contact ****@navy.example now"


def test_no_rule_changes_nothing() -> None:
    m = masker()
    assert not m.policy.active
    assert m.mask(CAST_ERROR, "select cast(email as int) from users") == CAST_ERROR
