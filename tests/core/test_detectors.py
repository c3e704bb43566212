"""Content detectors, seen the way a user sees them: text in, masked text out."""

from __future__ import annotations

import base64
import json

import pytest

from hoop.core.masking import MaskPolicy, MaskRule


def mask(text: str, *detectors: str, style: str = "redact") -> str:
    rule = MaskRule("r", detectors=detectors, style=style)  # type: ignore[arg-type]
    policy = MaskPolicy.build([rule], connection="c", groups=frozenset(), hash_key=b"k")
    return policy.apply_text(text)


def b64url(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


JWT = f"{b64url({'alg': 'HS256', 'typ': 'JWT'})}.{b64url({'sub': 'alice'})}.c2lnbmF0dXJlX2J5dGVz"
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n"
    "-----END RSA PRIVATE KEY-----"
)


@pytest.mark.parametrize(
    ("detector", "text", "expected"),
    [
        ("email", "mail alice.o+x@mail.example.co.uk now", "mail **** now"),
        ("email", '{"email": "bob@example.com", "id": 7}', '{"email": "****", "id": 7}'),
        ("credit_card", "card 4111111111111111.", "card ****."),
        ("credit_card", "4111 1111 1111 1111", "****"),
        ("credit_card", "pay with 4111-1111-1111-1111 today", "pay with **** today"),
        ("credit_card", "amex 3782 822463 10005", "amex ****"),
        ("credit_card", "{4012888888881881,5500000000000004}", "{****,****}"),
        ("us_ssn", "ssn: 123-45-6789", "ssn: ****"),
        ("phone", "call +14155552671", "call ****"),
        ("phone", "uk +44 20 7946 0958", "uk ****"),
        ("phone", "(415) 555-2671 or 415-555-2671", "**** or ****"),
        ("phone", "us 1-415-555-2671", "us ****"),
        ("iban", "iban DE89 3704 0044 0532 0130 00 EUR", "iban **** EUR"),
        ("iban", "GB82WEST12345698765432", "****"),
        ("iban", "FR1420041010050500013M02606", "****"),
        ("aws_access_key", "key=AKIAIOSFODNN7EXAMPLE;", "key=****;"),
        ("aws_access_key", "ASIAY34FZKBOKMUTVV7A", "****"),
        ("github_token", "token ghp_" + "a1B2" * 9, "token ****"),
        ("github_token", "github_pat_11ABCDEFG0" + "x" * 72, "****"),
        ("jwt", f"Authorization: Bearer {JWT}", "Authorization: Bearer ****"),
        ("private_key", f"key:\n{PEM}\nend", "key:\n****\nend"),
        ("private_key", "x -----BEGIN PRIVATE KEY-----\nMIIEv (truncated", "x ****"),
    ],
)
def test_detector_masks_only_the_sensitive_span(detector: str, text: str, expected: str) -> None:
    assert mask(text, detector) == expected


@pytest.mark.parametrize(
    ("detector", "text"),
    [
        ("email", "ping @mentions and @bob"),
        ("email", "root@localhost"),
        ("email", "release v1.2.3 at a @ b"),
        ("credit_card", "order 1234567890123456"),  # 16 digits, fails Luhn
        ("credit_card", "4111111111111112"),
        ("credit_card", "0000000000000000"),  # zero-padded id
        ("credit_card", "94111111111111119"),  # the card is part of a longer number
        ("credit_card", "0.4111111111111111"),  # a fraction, not a card
        ("credit_card", "2024-01-15 2024-01-16"),
        ("credit_card", "123e4567-e89b-12d3-a456-426614174000"),
        ("us_ssn", "000-12-3456 666-12-3456 912-34-5678"),  # invalid areas
        ("us_ssn", "123-00-4567 123-45-0000"),  # invalid group, serial
        ("us_ssn", "123456789"),  # undashed: deliberately not detected
        ("us_ssn", "2024-01-15"),
        ("phone", "2024-01-15 12:00:00+05:30"),
        ("phone", "ticket 100-200-3000 v1.2.3"),  # NANP area codes never start with 0/1
        ("phone", "1+23456789"),
        ("phone", "123e4567-e89b-12d3-a456-426614174000"),
        ("iban", "DE88 3704 0044 0532 0130 00"),  # wrong checksum
        ("iban", "GB82WEST1234569876543"),  # wrong length for GB
        ("aws_access_key", "AKIAIOSFODNN7EXAMPL XAKIAIOSFODNN7EXAMPLE"),
        ("github_token", "ghp_short gh_" + "a" * 36),
        ("jwt", f"{b64url({'not': 'a jwt'})}.e30.c2ln"),  # header without "alg"
        ("jwt", "eyJhbGciOi.not-base64-json.sig"),
        ("private_key", "-----BEGIN PUBLIC KEY-----\nMIIBIjANBg\n-----END PUBLIC KEY-----"),
    ],
)
def test_decoys_stay_visible(detector: str, text: str) -> None:
    assert mask(text, detector) == text


def test_partial_style_keeps_last_digits_domain_or_tail() -> None:
    assert mask("4111 1111 1111 1111", "credit_card", style="partial") == "************1111"
    assert mask("a alice@example.com", "email", style="partial") == "a ****@example.com"
    assert mask("123-45-6789", "us_ssn", style="partial") == "*****6789"
    assert mask("(415) 555-2671", "phone", style="partial") == "******2671"
    assert mask("DE89 3704 0044 0532 0130 00", "iban", style="partial") == "****3000"
    # Nothing of a private key is worth keeping.
    assert mask(PEM, "private_key", style="partial") == "****"


def test_hash_style_is_stable_and_normalised() -> None:
    a = mask("4111 1111 1111 1111", "credit_card", style="hash")
    b = mask("4111-1111-1111-1111", "credit_card", style="hash")
    c = mask("5500000000000004", "credit_card", style="hash")
    assert a == b != c
    assert a.startswith("h:") and len(a) == 14
    upper = mask("Alice@Example.com", "email", style="hash")
    assert upper == mask("alice@example.com", "email", style="hash")


def test_several_detectors_in_one_aggregated_value() -> None:
    text = "alice@example.com,4111111111111111,123-45-6789,ok"
    assert mask(text, "email", "credit_card", "us_ssn") == "****,****,****,ok"


def test_large_adversarial_values_are_handled() -> None:
    # Patterns are bounded and start only at token edges, so these stay linear; pytest's
    # timeout is the guard, the assertions check the result.
    blob = "a" * 200_000 + "@" + "b." * 50_000 + " 4111111111111111"
    assert mask(blob, "email", "credit_card").endswith(" ****")
    digits = "1" * 300_000
    assert mask(digits, "credit_card", "phone", "us_ssn", "iban") == digits
    tokens = "eyJ." * 50_000
    assert mask(tokens, "jwt") == tokens
    pems = "-----BEGIN PRIVATE KEY-----" * 10_000
    assert mask(pems, "private_key") == "****"
