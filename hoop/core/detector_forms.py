"""Patterns for the detectors that must know a value's surroundings: phone numbers in every
separator style, SSNs named by a label or by their column, and secrets named by their key.

Same rules as hoop/core/detectors.py: matches start only at a token edge (a look-behind) and
every quantifier is bounded, so a scan stays linear. Where a pattern can open with a plain
character or class it does, so the engine skips ahead in C to the bytes that can start a match;
each pattern also has a gate (a word or separators every match holds, tested in one C-level
pass) so most values never reach the regex.

Labelled forms mask the value and keep the label (`ssn: ****`, `api_key=****`): the label is
what tells a reader (and an auditor) what was there. Limits, on purpose:
- a 9-digit number is an SSN only next to an SSN label or in a column named like one
  (`ssn`, `*_ssn`, `social_security*`); an id elsewhere is left alone;
- a phone number without a `+` needs the North American 3-3-4 shape with one consistent
  separator (`555.123.4567`, `555 123 4567`, `(555) 123-4567`); other national numbers are
  found when written with their `+` country code;
- a secret is found by its key name only when the value follows `=` or `:` on the same line
  and has at least 8 characters (unquoted values end at whitespace, a quote, `,` `;` `&` `}`
  or `]`), so prose such as "password: see above" is not mangled.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

Spans = Callable[[bytes], Iterator[tuple[int, int]]]

# --- phone numbers -----------------------------------------------------------------------------

# Between two digits of an international number: nothing, one of space/dot/dash, or a
# parenthesis with an optional space or separator on its outer side ("+44 (0)20 ...").
_SEP = rb"(?:[ .\-]|\)[ .\-]?|[ .\-]?\()"
PHONE_INTL = re.compile(rb"\+(?<![0-9A-Za-z_+]\+)[1-9](?:" + _SEP + rb"?\d){7,14}(?![0-9A-Za-z_]|" + _SEP + rb"?\d)")


def phone_intl_ok(m: bytes) -> bool:
    """8-15 digits (E.164), parentheses paired, and not a signed decimal (`+1234567.89`)."""
    digits = len(m) - len(m.translate(None, b"0123456789"))
    opened = m.count(b"(")
    return 8 <= digits <= 15 and opened == m.count(b")") <= 1 and m.count(b".") != 1


# North American 3-3-4: area code 2-9, one separator used throughout, an optional leading
# "1" (trunk prefix). A run that continues a dotted or dashed number (10.555.123.4567) is not one.
PHONE_NANP = re.compile(
    rb"(?:\((?<![0-9A-Za-z_]\()[2-9]\d\d\) ?\d{3}[ .\-]"  # (555) 123-
    rb"|1(?<![0-9A-Za-z_+.\-]1)[ .\-](?:\([2-9]\d\d\) ?\d{3}[ .\-]|[2-9]\d\d([ .\-])\d{3}\1)"  # 1-555-123-
    rb"|[2-9](?<![0-9A-Za-z_+.\-][2-9])\d\d([ .\-])\d{3}\2)"  # 555.123.
    rb"\d{4}(?![0-9A-Za-z_]|[.\-]\d)"
)


_NOT_SEPARATORS = bytes(c for c in range(256) if c not in b"() .-")


def nanp_gate(value: bytes) -> bool:
    """Every North American form holds two separators or parentheses (one C-level pass)."""
    return len(value.translate(None, _NOT_SEPARATORS)) > 1


# --- SSNs ----------------------------------------------------------------------------------------

# Area not 000, 666 or 9xx; group not 00; serial not 0000 (SSA rules); one separator or none.
_SSN_DIGITS = rb"(?!000|666|9)\d{3}(?P<sep>[ \-]?)(?!00)\d{2}(?P=sep)(?!0000)\d{4}(?![0-9A-Za-z_]|[.\-]\d)"
_SSN_LABEL = rb"(?i:sn|ocial[ _\-]?security)(?i:[ _\-]?(?:number|num|no\.?|nr))?"
SSN_LABELLED = re.compile(
    rb"[sS](?<![A-Za-z0-9][sS])" + _SSN_LABEL + rb"[\"']?[ \t]{0,3}(?:[:=#][ \t]{0,3})?[\"']?"
    rb"(?P<v>" + _SSN_DIGITS + rb")"
)
# Any valid SSN as a token: used only in columns whose name says they hold SSNs.
SSN_BARE = re.compile(rb"(?<![0-9A-Za-z_.\-])" + _SSN_DIGITS)
SSN_COLUMN_NAME = re.compile(r"ssn|.*_ssn|social_security.*")
SSN_KEY = re.compile(r"(?:.*[^a-z0-9])?(?:ssn|social[ _\-]?security)(?:[ _\-]?(?:number|num|no|nr))?", re.I)
SSN_VALUE = re.compile(_SSN_DIGITS)


_SSN_WORD = re.compile(rb"s(?:sn|ocial)")


def ssn_label_gate(value: bytes) -> bool:
    return _SSN_WORD.search(value.lower()) is not None


def labelled_spans(pattern: re.Pattern[bytes]) -> Spans:
    """A spans function yielding the span of each match's `v` group (the value, not its label)."""

    def spans(value: bytes) -> Iterator[tuple[int, int]]:
        for m in pattern.finditer(value):
            yield m.span("v")

    return spans


# --- labelled secrets --------------------------------------------------------------------------

# A key name ending in one of these words (a prefix is allowed: AWS_SECRET_ACCESS_KEY,
# db.password); the first letter is matched plainly so the engine jumps to candidates, the
# look-behinds then tell which word it may start.
_SECRET_WORDS = (
    rb"(?i:(?<=a)pi[_\-]?key"
    rb"|(?<=p)(?:assword|asswd|wd|rivate[_\-]?key)"
    rb"|(?<=s)ecret(?:[_\-]?access)?(?:[_\-]?key)?"
    rb"|(?<=t)oken)"
)
_SECRET_KEY_WORDS = r"secret(?:[_\-]?access)?(?:[_\-]?key)?|api[_\-]?key|token|password|passwd|pwd|private[_\-]?key"
SECRET_KEY = re.compile(rf"(?:.*[^A-Za-z0-9])?(?:{_SECRET_KEY_WORDS})", re.I)
_SECRET_VALUE = (
    rb"(?:\"(?P<dq>(?:[^\"\\\r\n]|\\.){1,4096})\""
    rb"|'(?P<sq>[^'\r\n]{1,4096})'"
    rb"|[\"']?(?P<bare>[^\s\"'`,;&}\]]{1,65536}))"
)


def _labelled_secret(sep: bytes) -> re.Pattern[bytes]:
    return re.compile(
        rb"[AaPpSsTt](?<![A-Za-z0-9][AaPpSsTt])" + _SECRET_WORDS + rb"(?![A-Za-z0-9_\-])"
        rb"[\"']?[ \t]{0,3}" + re.escape(sep) + rb"[ \t]{0,3}" + _SECRET_VALUE
    )


# Every key word holds one of these (api_key, private_key and secret_key hold "key"). One
# search of the lower-cased value, which skips in C to the four letters that can start them.
_SECRET_WORD = re.compile(rb"[kpst](?:ey|ass|wd|oken|ecret)")


def secret_key_gate(value: bytes) -> bool:
    return _SECRET_WORD.search(value.lower()) is not None


SECRET_AFTER_COLON = _labelled_secret(b":")
SECRET_AFTER_EQUALS = _labelled_secret(b"=")
SECRET_MIN_LEN = 8


def secret_value_ok(value: str | bytes) -> bool:
    return len(value.strip()) >= SECRET_MIN_LEN


def secret_spans(pattern: re.Pattern[bytes]) -> Spans:
    """Spans of the values of `key: value` / `key=value` pairs, long enough to be a secret."""

    def spans(value: bytes) -> Iterator[tuple[int, int]]:
        for m in pattern.finditer(value):
            group = "dq" if m.group("dq") is not None else "sq" if m.group("sq") is not None else "bare"
            if secret_value_ok(m.group(group)):
                yield m.span(group)

    return spans
