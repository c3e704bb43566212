"""Content detectors on the many ways people write the same value: phone separators, labelled
SSNs without dashes, labelled secrets. Each detector has a table of positives (masked span) and
of look-alikes that must come back byte for byte."""

from __future__ import annotations

from hoop.core.detectors import DETECTOR_NAMES
from hoop.core.masking import ColumnRef, MaskPolicy, MaskRule

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def mask(text: str, *detectors: str, style: str = "redact") -> str:
    rule = MaskRule("r", detectors=detectors, style=style)  # type: ignore[arg-type]
    policy = MaskPolicy.build([rule], connection="c", groups=frozenset(), hash_key=b"k")
    return policy.apply_text(text)


PHONES = [
    ("555.123.4567", "****"),
    ("call 555.123.4567 today", "call **** today"),
    ("(555) 123-4567", "****"),
    ("(555)123-4567", "****"),
    ("(555) 123.4567", "****"),
    ("555 123 4567", "****"),
    ("555-123-4567", "****"),
    ("1.555.123.4567", "****"),
    ("+1 555.123.4567", "****"),
    ("+1 (555) 123-4567", "****"),
    ("+1-555-123-4567", "****"),
    ("+1.555.123.4567", "****"),
    ("+44 20 7946 0958", "****"),
    ("+44 (0)20 7946 0958", "****"),
    ("+33 1 23 45 67 89", "****"),
    ("+33.1.23.45.67.89", "****"),
    ("+49 30 901820", "****"),
    ("tel:+14155552671;", "tel:****;"),
    ("a 555.123.4567, b (555) 765-4321.", "a ****, b ****."),
]

PHONE_DECOYS = [
    "1.2.3.4",
    "version 10.11.19 and 1.22.333",
    "host 192.168.100.200 and 10.0.0.1",
    "2026.12.07",
    "2026-12-07",
    "2026-12-07 10:11:12.123456+01",
    "2026-12-07T10:11:12+05:30",
    "3.14159265358979",
    "total 1234567.89",
    "+1234567.89",
    "-12345678.5 and 123456.7890",
    "123e4567-e89b-12d3-a456-426614174000",
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "d41d8cd98f00b204e9800998ecf8427e",
    "id 123456789 and 1234567890",
    "order 1234567890123456",
    "ticket 100-200-3000 v1.2.3",
    "1+23456789",
    "10.555.123.4567",
    "555.123.4567.8",
]


def wrong(detector: str, positives: list[tuple[str, str]], decoys: list[str]) -> list[tuple[str, str]]:
    """(input, output) for each positive not masked as expected and each decoy changed."""
    cases = [*positives, *((d, d) for d in decoys)]
    return [(text, got) for text, expected in cases if (got := mask(text, detector)) != expected]


def test_phone_numbers_in_every_separator_style_are_masked_and_look_alikes_kept() -> None:
    assert wrong("phone", PHONES, PHONE_DECOYS) == []


SSNS = [
    ("ssn: 123456789", "ssn: ****"),
    ("SSN=123456789", "SSN=****"),
    ('{"ssn": "123456789"}', '{"ssn": "****"}'),
    ("social security number 123456789", "social security number ****"),
    ("Social Security No: 219099999", "Social Security No: ****"),
    ("customer_ssn=123456789;", "customer_ssn=****;"),
    ("SSN# 123 45 6789", "SSN# ****"),
    ("ssn: 123-45-6789", "ssn: ****"),
]

SSN_DECOYS = [
    "123456789",
    "id 123456789",
    "ssn: 000123456",  # area 000
    "ssn: 666123456",  # area 666
    "SSN=912345678",  # area 9xx
    "ssn: 123006789",  # group 00
    "ssn: 123450000",  # serial 0000
    "ssn: 1234567890",  # ten digits
    "ssn: 12345678",  # eight digits
    "lesson 123456789",
    "ssn count 123456789",
]


def test_labelled_ssn_without_dashes_is_masked_and_look_alikes_kept() -> None:
    assert wrong("us_ssn", SSNS, SSN_DECOYS) == []


def test_ssn_column_by_name_masks_bare_digits_and_keeps_impossible_ones() -> None:
    rule = MaskRule("r", detectors=("us_ssn",))
    policy = MaskPolicy.build([rule], connection="c", groups=frozenset(), hash_key=b"k")
    names = ["ssn", "customer_ssn", "social_security_number", "note"]
    refs = [ColumnRef("public", "people", n) for n in names]
    plan = policy.plan(refs, ["text", "varchar", "text", "text"])
    assert plan is not None
    row = [b"123456789", b"219099999", b"123 45 6789", b"123456789"]
    assert plan.apply(row) == [b"****", b"****", b"****", b"123456789"]
    assert plan.apply([b"000123456", b"666123456", b"912345678", b"x"]) is None
    # A number column named ssn: the masked value becomes NULL, as numbers do.
    numeric = policy.plan([ColumnRef("public", "people", "ssn")], ["int4"])
    assert numeric is not None and numeric.apply([b"123456789"]) == [None]


def test_ssn_column_by_name_needs_the_us_ssn_detector() -> None:
    rule = MaskRule("r", detectors=("email", "labelled_secret"))
    policy = MaskPolicy.build([rule], connection="c", groups=frozenset(), hash_key=b"k")
    plan = policy.plan([ColumnRef("public", "people", "ssn")], ["text"])
    assert plan is None or plan.apply([b"123456789"]) is None


SECRETS = [
    (f"aws_secret_access_key={AWS_SECRET}", "aws_secret_access_key=****"),
    (f"AWS_SECRET_ACCESS_KEY = {AWS_SECRET}\nregion=eu", "AWS_SECRET_ACCESS_KEY = ****\nregion=eu"),
    (
        f'{{"aws_secret_access_key": "{AWS_SECRET}", "region": "eu-west-1"}}',
        '{"aws_secret_access_key": "****", "region": "eu-west-1"}',
    ),
    ("secret: s3cr3t-v4lue-xyz", "secret: ****"),
    ("secret_access_key='abcdefgh1234'", "secret_access_key='****'"),
    ("api_key=0123456789abcdef", "api_key=****"),
    ("apikey: 0123456789abcdef", "apikey: ****"),
    ("API-KEY: 0123456789abcdef", "API-KEY: ****"),
    ("token=tok_abcdefgh123", "token=****"),
    ('"access_token":"ya29.a0AfH6SMBx"', '"access_token":"****"'),
    ("auth_token: abcdefgh&next=1", "auth_token: ****&next=1"),
    ("password=hunter2hunter2", "password=****"),
    ("Password: 'correct horse battery staple'", "Password: '****'"),
    ("passwd=Tr0ub4dor3 x", "passwd=**** x"),
    ("pwd: qwertyuiop", "pwd: ****"),
    ("client_secret=cs_live_abcdef", "client_secret=****"),
    ("private_key: MIIEvQIBADANBgkq", "private_key: ****"),
    ("db.password = p4ssw0rd!!", "db.password = ****"),
]
SECRET_DECOYS = [
    "password: ",
    "password: short",
    "Enter your password: then press return",
    "password reset requested for user 42",
    "token=abc",
    "tokens: 1234567890",
    "password_hash: $2b$12$abcdefghijk",
    "passwordless=true1234",
    "my_token_count: 1234567890",
    "secretary: Jane Doe-Smith",
    "api_key_id=AKIA-not-a-secret",
    "the secret is out",
    '{"token": "", "password": null}',
]


def test_labelled_secret_masks_the_value_keeps_the_key_and_leaves_prose() -> None:
    assert wrong("labelled_secret", SECRETS, SECRET_DECOYS) == []


def test_labelled_secret_styles_never_keep_part_of_the_secret() -> None:
    assert mask("password=hunter2hunter2", "labelled_secret", style="partial") == "password=****"
    hashed = mask("password=hunter2hunter2", "labelled_secret", style="hash")
    assert hashed.startswith("password=h:") and "hunter2" not in hashed
    assert hashed == mask("password=hunter2hunter2", "labelled_secret", style="hash")


def test_labelled_secret_inside_a_json_column_keeps_valid_json() -> None:
    rule = MaskRule("r", detectors=("labelled_secret",))
    policy = MaskPolicy.build([rule], connection="c", groups=frozenset(), hash_key=b"k")
    plan = policy.plan([None], ["jsonb"])
    assert plan is not None
    doc = b'{"aws_secret_access_key": "' + AWS_SECRET.encode() + b'", "region": "eu-west-1"}'
    assert plan.apply([doc]) == [b'{"aws_secret_access_key": "****", "region": "eu-west-1"}']
    assert plan.apply([b'{"token_count": 123456789, "note": "password reset"}']) is None
    ssn = MaskPolicy.build([MaskRule("s", detectors=("us_ssn",))], connection="c", groups=frozenset(), hash_key=b"k")
    ssn_plan = ssn.plan([None], ["json"])
    assert ssn_plan is not None
    assert ssn_plan.apply([b'{"ssn": 123456789, "id": 123456789}']) == [b'{"ssn": "****", "id": 123456789}']


def test_partial_phone_keeps_last_four_digits() -> None:
    assert mask("555.123.4567", "phone", style="partial") == "******4567"
    assert mask("+44 20 7946 0958", "phone", style="partial") == "********0958"


def test_new_detector_is_listed() -> None:
    assert "labelled_secret" in DETECTOR_NAMES


def test_adversarial_values_stay_linear() -> None:
    # Bounded patterns that start only at token edges: pytest's timeout is the guard, the
    # assertions check the result.
    detectors = ("phone", "us_ssn", "labelled_secret")
    for kept in ("5" * 300_000, "1." * 150_000, "+1 " * 100_000, "(555) " * 50_000, "ssn: " * 60_000):
        assert mask(kept, *detectors) == kept
    assert mask("ssn " * 60_000 + "123456789", *detectors).endswith("ssn ssn ****")
    keys = mask("password=" * 40_000, *detectors)
    assert keys.startswith("password=****") and len(keys) < 40_000 * 9
