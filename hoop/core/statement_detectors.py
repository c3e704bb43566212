"""The content detectors (hoop/core/detectors.py) over statement text, with gates for text.

Every statement the gateway records passes here once, in the journal writer: most hold no
sensitive value, and for those the cost must stay a few microseconds. On top of each
detector's own gates (length, digits, a needle byte), statement text gets two that a column
value rarely needs: a GitHub token holds "gh", an IBAN two capitals and two digits in a row.
Matches are computed on UTF-8 bytes, as for results, and returned in character offsets.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

from hoop.core.detectors import DETECTOR_NAMES, DETECTORS, Detector, render

_DIGIT_TABLE = bytes(0 if 48 <= c <= 57 else 1 for c in range(256))
_EXTRA_GATES: dict[str, Callable[[bytes], object]] = {
    "github_token": lambda raw: b"gh" in raw,
    "iban": re.compile(rb"[A-Z][A-Z]\d\d").search,
}
# Per detector: its gates (minimum length, needle, minimum digits, the statement gate), whether
# it applies to numbers, its name and itself; unpacked in the loop below, which every recorded
# statement runs through.
_STEPS: tuple[tuple[int, int | bytes | None, int, Callable[[bytes], object] | None, bool, str, Detector], ...] = tuple(
    (det.min_len, det.needle, det.min_digits, _EXTRA_GATES.get(name), det.numeric, name, det)
    for name in DETECTOR_NAMES
    for det in DETECTORS[name]
)
# The steps a text with a given number of digits can match (a card number needs 13, a phone
# number 8): counting digits first spares most statements most detectors.
_MOST_DIGITS = max(step[2] for step in _STEPS)
_STEPS_BY_DIGITS = tuple(tuple(step for step in _STEPS if step[2] <= d) for d in range(_MOST_DIGITS + 1))

# Words that may introduce a credential (hoop/core/statement_secrets.py), lower-case.
HINT_WORDS = ("pass", "pwd", "secret", "token", "apikey", "api_key", "privatekey", "private_key", "accesskey",
              "access_key", "identified", "crypt", "hmac", "pgp_", "aes_", "des_", "encode", "decode",
              "kdf")  # fmt: skip

Match = tuple[int, int, str, Detector]  # start, end, detector name, detector


def first_hint(text: str) -> int | None:
    """The end of the first word holding a hint word, or None."""
    lower = text.lower()
    for word in HINT_WORDS:  # plain `in` tests: the common case finds none
        if word in lower:
            break
    else:
        return None
    end = min(i + len(w) for w in HINT_WORDS if (i := lower.find(w)) >= 0)
    while end < len(text) and (text[end].isalnum() or text[end] == "_"):
        end += 1
    return end


def matches(text: str, *, skip: Iterable[str] = (), numeric: bool = False) -> list[Match]:
    """Non-overlapping detector matches in `text`, in order; where two overlap, the detector
    first in DETECTOR_NAMES (long specific tokens first) wins. `numeric`: only the detectors
    that apply to numbers."""
    raw = text.encode()
    n = len(raw)
    skipped = tuple(skip)
    digits = raw.translate(_DIGIT_TABLE).count(0)
    taken: list[tuple[int, int, str, Detector]] = []
    for min_len, needle, _, extra, for_numbers, name, det in _STEPS_BY_DIGITS[min(digits, _MOST_DIGITS)]:
        if n < min_len or (needle is not None and needle not in raw) or (numeric and not for_numbers):
            continue
        if (extra is not None and not extra(raw)) or name in skipped:
            continue
        found = [(a, b, name, det) for a, b in det.spans(raw)]
        if found:
            taken = _merge(taken, found)
    if n == len(text) or not taken:  # ASCII: byte offsets are character offsets
        return taken
    return [(len(raw[:a].decode()), len(raw[:b].decode()), name, det) for a, b, name, det in taken]


def masks(
    text: str, styles: Mapping[str, str], *, skip: Iterable[str] = (), numeric: bool = False
) -> list[tuple[int, int, str]]:
    """(start, end, mask) for each match, masked in the style `styles` gives its detector."""
    return [
        (a, b, render(text[a:b].encode(), styles[name], det.partial, b"").decode())
        for a, b, name, det in matches(text, skip=skip, numeric=numeric)
    ]


def _merge(taken: list[Match], new: list[Match]) -> list[Match]:
    """`taken` plus the matches of `new` that overlap none of it (both sorted, each without
    overlaps of its own)."""
    kept, i = [], 0
    for m in new:
        while i < len(taken) and taken[i][1] <= m[0]:
            i += 1
        if i < len(taken) and taken[i][0] < m[1]:
            continue
        kept.append(m)
    return sorted(taken + kept, key=lambda m: m[0])
