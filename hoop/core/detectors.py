"""Content detectors: find sensitive values inside column text and mask only the matched span.

Values are raw bytes in PostgreSQL/MySQL text format (UTF-8). Each detector has a cheap gate
(a minimum length and, where one exists, a byte that must be present) so values without the
trigger cost one `len()` and one C-level `in` test. Only gated values reach the regex.

Linear by construction: every pattern opens with a negative look-behind on its own leading
character class, so an attempt can only start at the edge of a token, and every quantifier is
bounded. Each attempt therefore does a bounded amount of work and a scan of n bytes is O(n).
PEM private keys are found with two literal-prefixed searches that never rescan a byte.

The module also holds the value-level helpers the plan needs: column type kinds, whole-value
masks that stay parseable for the column's type, and COPY text-format escaping.

Validators keep false positives down: card numbers must pass Luhn, IBANs mod-97 (and the
country's length where known), SSNs the SSA area/group/serial rules, JWTs a JSON header with
"alg". Forms that need their surroundings (phone separators, labelled SSNs, labelled secrets)
are in hoop/core/detector_forms.py. Deliberately not detected (too many false positives):
9-digit SSNs with neither dashes, a label nor an SSN column name, lower-case IBANs, e-mail
addresses without a dot in the domain or with non-ASCII characters.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from hoop.core import detector_forms as forms
from hoop.core.errors import HoopError

Style = Literal["redact", "partial", "hash"]
STYLES: tuple[str, ...] = ("redact", "partial", "hash")
REDACTED = b"****"


class MaskFormatError(HoopError):
    """A value handed to the masker is not in the expected wire text format (e.g. a COPY line)."""


_NON_DIGITS = bytes(c for c in range(256) if not 48 <= c <= 57)
_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def hash_token(key: bytes, data: bytes) -> bytes:
    """Stable short pseudonym: equal inputs give equal tokens, so joins and GROUP BY still work."""
    return b"h:" + hmac.new(key, data, hashlib.sha256).hexdigest()[:12].encode()


def digits_of(value: bytes) -> bytes:
    return value.translate(None, _NON_DIGITS)


def luhn_ok(digits: bytes) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ch - 48
        total += _DOUBLED[d] if i & 1 else d
    return total % 10 == 0


# --- validators -------------------------------------------------------------------------------


def _card_ok(m: bytes) -> bool:
    digits = m.translate(None, b" -")
    # Issuer numbers never start with 0; zero-padded ids are a common false positive.
    return 13 <= len(digits) <= 19 and digits[0] != 48 and luhn_ok(digits)


# Official IBAN lengths (SWIFT registry). Unknown countries are accepted on mod-97 alone.
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


def iban_ok(m: bytes) -> bool:
    compact = m.replace(b" ", b"").decode("ascii")
    expected = _IBAN_LENGTHS.get(compact[:2])
    if not 15 <= len(compact) <= 34 or (expected is not None and len(compact) != expected):
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _jwt_ok(m: bytes) -> bool:
    header = m[: m.index(b".")]
    try:
        decoded = json.loads(base64.urlsafe_b64decode(header + b"=" * (-len(header) % 4)))
    except (binascii.Error, ValueError):
        return False
    return isinstance(decoded, dict) and isinstance(decoded.get("alg"), str)


# --- patterns ---------------------------------------------------------------------------------

_EMAIL = re.compile(
    rb"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]{1,64}@"
    rb"(?:[A-Za-z0-9\-]{1,63}\.){1,8}[A-Za-z]{2,63}"
    rb"(?![A-Za-z0-9\-])"
)
# Contiguous 13-19 digits, or groups of 4 (4-4-4-4[-3]) / Amex 4-6-5 with one consistent
# separator. Starts with a plain \d so the engine skips ahead to digits; a digit run that is
# part of a fraction (0.4111...) or of a dashed identifier is not a card.
_CARD = re.compile(
    rb"\d(?<![0-9A-Za-z_]\d)(?<!\d[.\-]\d)"
    rb"(?:\d{12,18}|\d{3}([ \-])\d{4}\1\d{4}\1\d{1,4}(?:\1\d{1,3})?|\d{3}([ \-])\d{6}\2\d{4,5})"
    rb"(?![0-9A-Za-z_]|[.\-]\d)"
)
_SSN = re.compile(rb"(?<![0-9A-Za-z_\-])(?!000|666|9)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![0-9A-Za-z_]|-\d)")
_IBAN = re.compile(
    rb"[A-Z](?<![0-9A-Za-z_][A-Z])[A-Z]\d\d"
    rb"(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,4})?)"
    rb"(?![0-9A-Za-z_])"
)
_AWS_KEY = re.compile(rb"(?<![A-Za-z0-9])A(?:KI|SI)A[A-Z0-9]{16}(?![A-Za-z0-9])")
_GITHUB = re.compile(
    rb"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,244})"
    rb"(?![A-Za-z0-9_])"
)
_JWT = re.compile(
    rb"(?<![A-Za-z0-9_\-])eyJ[A-Za-z0-9_\-]{1,8189}"
    rb"\.[A-Za-z0-9_\-]{1,65536}\.[A-Za-z0-9_\-]{0,2048}"
    rb"(?![A-Za-z0-9_\-])"
)
_PEM_BEGIN = re.compile(rb"-----BEGIN (?:[A-Z0-9]{1,20} ){0,3}PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(rb"-----END (?:[A-Z0-9]{1,20} ){0,3}PRIVATE KEY(?: BLOCK)?-----")


def _pem_spans(value: bytes) -> Iterator[tuple[int, int]]:
    """BEGIN..END blocks; a block with no END is masked to the end of the value (fail closed)."""
    pos = 0
    while (begin := _PEM_BEGIN.search(value, pos)) is not None:
        end = _PEM_END.search(value, begin.end())
        if end is None:
            yield begin.start(), len(value)
            return
        yield begin.start(), end.end()
        pos = end.end()


def _iban_spans(value: bytes) -> Iterator[tuple[int, int]]:
    for m in _IBAN.finditer(value):
        start, end = m.span()
        text = m.group()
        if not iban_ok(text):
            # A trailing word may have been read as the last group ("... 00 EUR"); retry without it.
            cut = text.rfind(b" ")
            if cut < 0 or not iban_ok(text[:cut]):
                continue
            end = start + cut
        yield start, end


# --- detectors --------------------------------------------------------------------------------

PartialKind = Literal["email", "digits", "tail", "secret"]


@dataclass(frozen=True, slots=True)
class Detector:
    """One way of finding a sensitive span, with the cheap tests that gate its regex.

    A value is only searched when it contains one of `triggers`, is at least `min_len` bytes,
    holds at least `min_digits` digits and contains `needle` (an int is one byte).
    """

    name: str
    triggers: bytes
    min_len: int
    min_digits: int
    needle: int | bytes | None
    partial: PartialKind
    pattern: re.Pattern[bytes] | None = None
    validate: Callable[[bytes], bool] | None = None
    spans_fn: Callable[[bytes], Iterator[tuple[int, int]]] | None = None
    numeric: bool = False  # can match inside a numeric column (a card number in a bigint)
    # JSON documents are masked string by string, which separates a key from its value: this
    # tells from (key, value text) whether the value is what the key names (`"ssn": "..."`).
    keyed: Callable[[str, str], bool] | None = None
    # A cheap test every match passes (a word or separators it must contain), tried before
    # the regex: for patterns with no literal start, whose search visits every byte.
    gate: Callable[[bytes], bool] | None = None

    def spans(self, value: bytes) -> Iterator[tuple[int, int]]:
        """Validated (start, end) spans, left to right, non-overlapping."""
        if self.gate is not None and not self.gate(value):
            return
        if self.spans_fn is not None:
            yield from self.spans_fn(value)
            return
        assert self.pattern is not None
        search, validate = self.pattern.search, self.validate
        m = search(value)
        while m is not None:
            if validate is None or validate(m.group()):
                yield m.span()
            m = search(value, m.end())

    def mask(self, value: bytes, style: str, key: bytes) -> bytes:
        """Replace every validated span; returns `value` itself when nothing matched."""
        if self.gate is not None and not self.gate(value):
            return value
        # Most values reaching here still hold no match: one search, no generator.
        if self.spans_fn is None and self.pattern is not None and self.pattern.search(value) is None:
            return value
        parts: list[bytes] = []
        pos = 0
        for start, end in self.spans(value):
            parts.append(value[pos:start])
            parts.append(render(value[start:end], style, self.partial, key))
            pos = end
        if not parts:
            return value
        parts.append(value[pos:])
        return b"".join(parts)


def render(match: bytes, style: str, partial: PartialKind, key: bytes) -> bytes:
    """The replacement for one matched span. Never contains tabs, newlines or backslashes."""
    if style == "redact" or partial == "secret":
        return REDACTED if style != "hash" else hash_token(key, match)
    if partial == "digits":
        norm = digits_of(match)
    elif partial == "email":
        norm = match.lower()
    else:
        norm = match.replace(b" ", b"")
    if style == "hash":
        return hash_token(key, norm)
    if partial == "email":
        return REDACTED + match[match.rindex(b"@") :]
    if partial == "digits":
        return b"*" * (len(norm) - 4) + norm[-4:]
    return REDACTED + norm[-4:]


def _ssn_keyed(key: str, value: str) -> bool:
    return forms.SSN_KEY.fullmatch(key) is not None and forms.SSN_VALUE.fullmatch(value.encode()) is not None


def _secret_keyed(key: str, value: str) -> bool:
    return forms.SECRET_KEY.fullmatch(key) is not None and forms.secret_value_ok(value)


_SSN_LABELLED = forms.labelled_spans(forms.SSN_LABELLED)
_SECRET_COLON = forms.secret_spans(forms.SECRET_AFTER_COLON)
_SECRET_EQUALS = forms.secret_spans(forms.SECRET_AFTER_EQUALS)

# Order matters: long, specific tokens first so a shorter detector never splits them.
_DIGITS = b"0123456789"
DETECTORS: dict[str, tuple[Detector, ...]] = {
    "private_key": (Detector("private_key", b"-", 40, 0, b"-----BEGIN ", "secret", spans_fn=_pem_spans),),
    "jwt": (Detector("jwt", b"J", 20, 0, b"eyJ", "tail", _JWT, _jwt_ok),),
    "github_token": (Detector("github_token", b"_", 33, 0, 95, "tail", _GITHUB),),
    "aws_access_key": (Detector("aws_access_key", b"I", 20, 0, b"IA", "tail", _AWS_KEY),),
    "iban": (Detector("iban", _DIGITS, 15, 2, None, "tail", spans_fn=_iban_spans),),
    "email": (Detector("email", b"@", 6, 0, 64, "email", _EMAIL),),
    "credit_card": (Detector("credit_card", _DIGITS, 13, 13, None, "digits", _CARD, _card_ok, numeric=True),),
    "us_ssn": (
        Detector("us_ssn", b"-", 11, 9, 45, "digits", _SSN),
        Detector("us_ssn", b"sS", 12, 9, None, "digits", spans_fn=_SSN_LABELLED, keyed=_ssn_keyed,
                 gate=forms.ssn_label_gate),
    ),
    "phone": (
        Detector("phone", b"+", 9, 8, 43, "digits", forms.PHONE_INTL, forms.phone_intl_ok),
        Detector("phone", b"(-. ", 12, 10, None, "digits", forms.PHONE_NANP, gate=forms.nanp_gate),
    ),
    # Last, after the tokens a secret may be (which keep their own partial form). One detector
    # per separator byte, so a value without it costs one `in` test.
    "labelled_secret": (
        Detector("labelled_secret", b":", 10, 0, 58, "secret", spans_fn=_SECRET_COLON, keyed=_secret_keyed,
                 gate=forms.secret_key_gate),
        Detector("labelled_secret", b"=", 10, 0, 61, "secret", spans_fn=_SECRET_EQUALS, gate=forms.secret_key_gate),
    ),
}  # fmt: skip
DETECTOR_NAMES: tuple[str, ...] = tuple(DETECTORS)

# Detectors a rule's detector also turns on in columns whose name says what they hold: a rule
# with "us_ssn" masks bare 9-digit SSNs in a column named ssn, *_ssn or social_security*.
# Keyed by the rule detector's name; (column-name pattern, detectors) as values.
COLUMN_DETECTORS: dict[str, tuple[re.Pattern[str], tuple[Detector, ...]]] = {
    "us_ssn": (
        forms.SSN_COLUMN_NAME,
        (Detector("us_ssn", _DIGITS, 9, 9, None, "digits", forms.SSN_BARE, numeric=True),),
    ),
}  # fmt: skip


# --- column types -----------------------------------------------------------------------------

# Largest value a hashed pseudonym may take in a narrow integer type (default: int4's maximum).
_INT_LIMITS = {
    "int2": 32767, "smallint": 32767, "short": 32767, "tinyint": 127, "tiny": 127,
    "mediumint": 8388607, "int24": 8388607,
}  # fmt: skip
_NUMERIC = frozenset(
    "int2 int4 int8 smallint integer int bigint mediumint int24 tinyint tiny short long longlong "
    "numeric decimal newdecimal float4 float8 real float double oid".split()
) | {"double precision"}
# Types whose text form cannot hold any detected pattern; masking them whole yields NULL.
_OPAQUE = frozenset(
    "bool boolean date time timetz timestamp timestamptz interval uuid inet cidr macaddr macaddr8 "
    "bit varbit bytea year datetime money point line lseg box path polygon circle geometry".split()
    + ["timestamp with time zone", "timestamp without time zone", "time with time zone"]
    + ["time without time zone", "bit varying"]
)


# Longest text form of narrow integer types (sign included): no detector matches that few
# bytes (the shortest number a detector takes, a bare SSN, has 9 digits; a card 13), so such
# columns are not scanned at all. Arrays of them are longer and are scanned.
_MAX_TEXT = {
    "int2": 6, "smallint": 6, "short": 6, "tinyint": 4, "tiny": 4, "year": 4,
    "int4": 11, "integer": 11, "int": 11, "long": 11, "mediumint": 8, "int24": 8, "oid": 10,
}  # fmt: skip


@functools.lru_cache(maxsize=512)
def max_text_len(name: str | None) -> int | None:
    """The longest text a value of this (scalar) type can have, where it is small; else None."""
    if not name or name.strip().startswith("_") or name.strip().endswith("[]"):
        return None
    return _MAX_TEXT.get(_base_type(name))


def _base_type(name: str) -> str:
    """ "Character Varying(20)[]" -> "character varying"; "_int8" -> "int8"; drops "unsigned"."""
    name = name.lower().strip().lstrip("_").removesuffix("[]")
    return re.sub(r"\(.*\)| unsigned| zerofill", "", name).strip()


@functools.lru_cache(maxsize=512)
def type_kind(name: str | None) -> str:
    """'text', 'json', 'number', 'numarray' or 'opaque'. Unknown types are treated as text."""
    if not name:
        return "text"
    name = name.lower().strip()
    array = name.startswith("_") or name.endswith("[]")
    base = _base_type(name)
    if base in _NUMERIC:
        return "numarray" if array else "number"
    if base in _OPAQUE:
        return "opaque"
    if base in ("json", "jsonb") and not array:
        return "json"
    return "text"


# --- whole-value masks ------------------------------------------------------------------------


def partial_text(value: bytes) -> bytes:
    """Keep an e-mail's domain, else the last 4 digits of a number-like value, else 4 chars."""
    at = value.rfind(b"@")
    if at > 0 and 46 in value[at:]:
        return REDACTED + value[at:]
    digits = digits_of(value)
    if len(digits) >= 8 and not value.translate(None, b"0123456789 -+()./"):
        return b"*" * (len(digits) - 4) + digits[-4:]
    text = value.decode("utf-8", "replace")
    return REDACTED + text[-4:].encode() if len(text) >= 8 else REDACTED


def whole_mask(kind: str, type_name: str | None, style: str, key: bytes) -> Callable[[bytes], bytes | None]:
    """The function replacing a whole value of a column of this kind (None = SQL NULL)."""
    name = (type_name or "").strip()
    if name.startswith("_") or name.endswith("[]"):
        return lambda v: None  # an array: clients parse the literal, which a mask would break
    if kind in ("text", "json"):
        if style == "redact":
            const = REDACTED if kind == "text" else b'"****"'
            return lambda v: const
        if style == "hash":
            if kind == "json":
                return lambda v: b'"' + hash_token(key, v) + b'"'
            return lambda v: hash_token(key, v)
        if kind == "json":
            return lambda v: json.dumps(partial_text(v).decode("utf-8", "replace")).encode()
        return partial_text
    if kind == "number" and style == "hash":
        limit = _INT_LIMITS.get(_base_type(type_name or ""), 2147483647)

        def numeric_hash(v: bytes) -> bytes:
            digest = hmac.new(key, v, hashlib.sha256).digest()
            return str(int.from_bytes(digest[:8], "big") % (limit + 1)).encode()

        return numeric_hash
    return lambda v: None


# --- COPY text format escapes ----------------------------------------------------------------

_COPY_UNESCAPE = re.compile(rb"\\(?:([0-7]{1,3})|x([0-9A-Fa-f]{1,2})|(.))", re.S)
_COPY_SIMPLE = {b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r", b"t": b"\t", b"v": b"\v"}


def copy_unescape(field: bytes) -> bytes:
    if 92 not in field:
        return field

    def one(m: re.Match[bytes]) -> bytes:
        if m.group(1) is not None:
            return bytes((int(m.group(1), 8) & 0xFF,))
        if m.group(2) is not None:
            return bytes((int(m.group(2), 16),))
        return _COPY_SIMPLE.get(m.group(3), m.group(3))

    return _COPY_UNESCAPE.sub(one, field)


def copy_escape(value: bytes, delimiter: bytes) -> bytes:
    value = value.replace(b"\\", b"\\\\")
    for raw, esc in ((b"\n", b"\\n"), (b"\r", b"\\r"), (b"\t", b"\\t"), (b"\b", b"\\b"),
                     (b"\f", b"\\f"), (b"\v", b"\\v")):  # fmt: skip
        value = value.replace(raw, esc)
    if delimiter not in (b"\t",):
        value = value.replace(delimiter, b"\\" + delimiter)
    return value


@functools.lru_cache(maxsize=8)
def _field_pattern(delimiter: bytes) -> re.Pattern[bytes]:
    return re.compile(rb"(?:[^\\" + re.escape(delimiter) + rb"]|\\.)*", re.S)


def split_copy_fields(body: bytes, delimiter: bytes) -> list[bytes]:
    """Split on the delimiter, except where it is backslash-escaped (custom delimiters)."""
    if 92 not in body:
        return body.split(delimiter)
    match = _field_pattern(delimiter).match
    fields: list[bytes] = []
    pos = 0
    while True:
        m = match(body, pos)
        assert m is not None  # the pattern matches the empty string
        fields.append(m.group())
        pos = m.end()
        if pos >= len(body):
            return fields
        if not body.startswith(delimiter, pos):
            raise MaskFormatError("COPY line ends with a lone backslash")
        pos += len(delimiter)
