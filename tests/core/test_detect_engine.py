"""Content detection through a result plan under both prefilter engines (hyperscan and the
pure-Python fallback): same masks as the exact per-value detectors, wherever the sensitive
text sits, never across two values, and look-alikes left intact."""

from __future__ import annotations

import importlib
import random
import sys
from collections.abc import Iterator

import pytest

from hoop.core import detect_engine
from hoop.core.detectors import DETECTOR_NAMES
from hoop.core.masking import ColumnRef, MaskPlan, MaskPolicy, MaskRule

SHIPPED = ["email", "credit_card", "us_ssn", "phone", "iban", "aws_access_key", "github_token", "jwt", "private_key"]
ENGINES = ["hyperscan", "python"]

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
PEM = "-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"
SENSITIVE = {
    "email": "alice.smith@example.com",
    "credit_card": "4111 1111 1111 1111",
    "us_ssn": "123-45-6789",
    "phone": "+44 20 7946 0958",
    "iban": "DE89 3704 0044 0532 0130 00",
    "aws_access_key": "AKIAIOSFODNN7EXAMPLE",
    "github_token": "ghp_" + "a1B2c3D4e5" * 3 + "F6g7H8",
    "jwt": JWT,
    "private_key": PEM,
    "labelled_secret": "password=hunter2hunter2",
}
# Every form each detector knows (each alternative of its prefilter).
FORMS = [
    ("credit_card", "4111111111111111"),
    ("credit_card", "4111-1111-1111-1111"),
    ("credit_card", "3782 822463 10005"),
    ("us_ssn", "ssn: 123456789"),
    ("us_ssn", "Social Security Number 123 45 6789"),
    ("phone", "(555) 123-4567"),
    ("phone", "555.123.4567"),
    ("phone", "1-555-123-4567"),
    ("phone", "(555)123-4567"),
    ("phone", "1 (555) 123-4567"),
    ("phone", "555 123 4567"),
    ("phone", "+1 (555) 123-4567"),
    ("iban", "DE89370400440532013000"),
    ("aws_access_key", "ASIAIOSFODNN7EXAMPLE"),
    ("github_token", "github_pat_" + "A1b2C3d4E5" * 3),
    ("labelled_secret", "API_KEY: 0123456789abcdef"),
    ("labelled_secret", "AWS_SECRET_ACCESS_KEY = 'wJalrXUtnFEMI/K7MDENG'"),
    *SENSITIVE.items(),
]
DECOYS = [
    "4539578763621487",  # 16 digits failing Luhn
    "4111111111111112",
    "000-12-3456",  # impossible SSNs
    "666-12-3456",
    "912-34-5678",
    "123-00-4567",
    "123e4567-e89b-12d3-a456-426614174000",  # UUID
    "1.2.3",  # versions
    "10.0.19045.3803",
    "v2.14.1-rc.3",
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",  # sha256
    "123456789",  # 9-digit id
    "2026-12-07 09:37:38.123456+00",
    "order-123456",
]
FILLER = "lorem ipsum dolor 1.2.3 sit amet, consectetur 42 adipiscing elit. "


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = str(request.param)
    if name == "hyperscan":
        importlib.import_module("hyperscan")  # a dependency: missing, the test fails rather than skips
        monkeypatch.delenv("HOOP_DETECTOR_ENGINE", raising=False)
    else:
        monkeypatch.setenv("HOOP_DETECTOR_ENGINE", "python")
    detect_engine.prefilter.cache_clear()
    yield name
    detect_engine.prefilter.cache_clear()


def _policy(detectors: list[str] | None = None) -> MaskPolicy:
    rule = MaskRule(name="pii", detectors=tuple(detectors or DETECTOR_NAMES), style="redact")
    return MaskPolicy.build([rule], connection="pg", groups=frozenset())


def _plan(policy: MaskPolicy, columns: int, types: list[str | None] | None = None) -> MaskPlan:
    refs = [ColumnRef("public", "t", f"c{i}") for i in range(columns)]
    plan = policy.plan(refs, types or ["text"] * columns)
    assert plan is not None
    return plan


def _row(plan: MaskPlan, *values: str) -> list[str | None]:
    raw: list[bytes | None] = [v.encode() for v in values]
    out = plan.apply(raw)
    return [None if v is None else v.decode() for v in (out if out is not None else raw)]


def test_plans_search_with_the_selected_engine(engine: str) -> None:
    assert _plan(_policy(), 2).engine == engine


@pytest.mark.parametrize("name", list(SENSITIVE))
@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_value_found_anywhere_in_a_long_value(engine: str, name: str, where: str) -> None:
    policy = _policy()
    secret = SENSITIVE[name]
    masked = policy.apply_text(secret)  # the exact detectors, one value
    assert secret not in masked
    pad = FILLER * 200  # ~13 kB
    before, after = {"start": ("", " " + pad), "middle": (pad, " " + pad), "end": (pad, "")}[where]
    got = _row(_plan(policy, 3), "id-1", before + secret + after, "x")
    assert got == ["id-1", before + masked + after, "x"]


def test_value_in_a_one_megabyte_value(engine: str) -> None:
    policy = _policy(SHIPPED)
    pad = "é" + "x" * 524_287 + " "
    got = _row(_plan(policy, 1), pad + SENSITIVE["credit_card"] + " " + pad)
    assert got == [pad + "**** " + pad]


def test_non_ascii_text(engine: str) -> None:
    plan = _plan(_policy(SHIPPED), 2)
    left = "Überweisung an DE89 3704 0044 0532 0130 00 – danke ✓"
    got = _row(plan, left, "カード 4111 1111 1111 1111 です 📞 +44 20 7946 0958")
    assert got == ["Überweisung an **** – danke ✓", "カード **** です 📞 ****"]


@pytest.mark.parametrize(
    "left,right",
    [
        ("4111 1111", "1111 1111"),
        ("411111111111", "1111"),
        ("alice@", "example.com"),
        ("call 555-123-", "4567"),
        ("123-45-", "6789"),
        ("eyJhbGciOiJIUzI1NiJ9.", "eyJzdWIiOiIxIn0.c2ln"),
        ("AKIAIOSFOD", "NN7EXAMPLE"),
        ("-----BEGIN ", "PRIVATE KEY-----"),
    ],
)
def test_two_adjacent_values_never_form_a_match(engine: str, left: str, right: str) -> None:
    plan = _plan(_policy(), 2)
    assert plan.apply([left.encode(), right.encode()]) is None


def test_decoys_stay_intact(engine: str) -> None:
    plan = _plan(_policy(), len(DECOYS))
    assert plan.apply([d.encode() for d in DECOYS]) is None
    for d in DECOYS:
        assert _row(_plan(_policy(), 1), f"ref {d} end") == [f"ref {d} end"]


@pytest.mark.parametrize("name,text", FORMS)
def test_each_prefilter_covers_its_detector(engine: str, name: str, text: str) -> None:
    pf = detect_engine.prefilter(frozenset([name]))
    assert pf is not None and pf.engine == engine
    assert pf.hit(text.encode())
    policy = _policy([name])
    masked = policy.apply_text(text)
    assert masked != text
    assert _row(_plan(policy, 2), "id", f"see {text} here") == ["id", f"see {masked} here"]


def test_plan_masks_exactly_what_the_exact_detectors_mask(engine: str) -> None:
    """Random text dense in digits, separators, labels and token starts: the plan (prefilter
    then detectors) and the detectors alone agree on every value."""
    rnd = random.Random(21)
    pieces = [
        *"0123456789 -.+()@:=_",
        "4111",
        "1111",
        "555",
        "(555) ",
        "555-",
        "123.",
        "4567",
        "1-",
        "ssn ",
        "SSN: ",
        "password=",
        "token: ",
        "eyJ",
        "AKIA",
        "ghp_",
        "DE89",
        "-----BEGIN PRIVATE KEY-----",
        "@example.com",
        "+44",
        "ü",
        "x",
        "A",
    ]
    policy = _policy()
    plan = _plan(policy, 3)
    for _ in range(1500):
        values = ["".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 40))) for _ in range(3)]
        assert _row(plan, *values) == [policy.apply_text(v) for v in values], values


def test_columns_that_cannot_hold_a_match_are_not_scanned(engine: str) -> None:
    policy = _policy(SHIPPED)
    refs = [ColumnRef("public", "t", c) for c in ("a", "b", "c", "d", "e", "f")]
    types: list[str | None] = ["int4", "bool", "uuid", "timestamptz", "date", "int2"]
    assert policy.plan(refs, types) is None
    plan = policy.plan(refs + [ColumnRef("public", "t", "g")], types + ["int8"])
    assert plan is not None and plan.scanned_columns == (6,)  # a 16-digit bigint can be a card


def test_without_hyperscan_the_python_engine_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOOP_DETECTOR_ENGINE", raising=False)
    monkeypatch.setitem(sys.modules, "hyperscan", None)  # import fails as on a platform without the wheel
    detect_engine.prefilter.cache_clear()
    try:
        assert detect_engine.engine_name() == "python"
        plan = _plan(_policy(SHIPPED), 1)
        assert plan.engine == "python"
        assert _row(plan, "mail alice.smith@example.com") == ["mail ****"]
    finally:
        detect_engine.prefilter.cache_clear()


def test_spots_cover_every_value_that_needs_masking(engine: str) -> None:
    """A buffer of many values between arbitrary framing bytes (lengths that read as digits or
    letters, as in DataRows and MySQL rows): every value the detectors would change overlaps a
    spot, so a row outside every spot can be forwarded untouched."""
    rnd = random.Random(7)
    pieces = [*SENSITIVE.values(), *DECOYS, "4111", "1111 ", "x", "-", "1", "@", "ü", " ", "order-12"]
    policy = _policy()
    plan = _plan(policy, 1)
    for _ in range(30):
        buf, ranges = bytearray(), []
        for _ in range(rnd.randint(1, 60)):
            buf += bytes(rnd.choice(b"\x00\x01 01aZ_-+.@") for _ in range(rnd.randint(0, 4)))
            value = "".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 5))).encode()
            ranges.append((len(buf), len(buf) + len(value), value))
            buf += value
        spots = plan.spots(bytes(buf))
        assert spots is not None
        for start, end, value in ranges:
            if policy.apply_text(value.decode()) != value.decode():
                assert any(a < end and b > start for a, b in spots), value


def test_spots_give_up_past_the_limit(engine: str) -> None:
    plan = _plan(_policy(SHIPPED), 1)
    assert plan.spots(b"4111111111111111 " * 100, limit=10) is None
    assert plan.spots(b"nothing to see " * 100) == []
