"""One-pass candidate search for the content detectors: which values can hold a match at all.

Every detector in hoop/core/detectors.py has a prefilter here: a pattern with no look-arounds,
no back-references and no validator that matches wherever the detector's own pattern could
(it is a superset: look-arounds dropped, bounded runs cut to their minimum, a back-reference
widened to its class). All prefilters of a rule set are compiled once into one multi-pattern
database and a whole row, or a whole buffer of DataRow messages, is searched in one pass. A
buffer without a prefilter hit holds no detector match, so its values leave unchanged without
any per-value work; values with a hit go through the exact detectors and their validators,
each value on its own, so two adjacent values can never form one match (the separator or
framing bytes between them can only add a candidate, never hide one).

Engines, chosen when a database is first built:
  hyperscan  the `hyperscan` wheel (Intel Hyperscan, SIMD automata): ~0.1 µs per 80-byte row
             when scanning a buffer of rows, ~0.5 µs per single call.
  python     one combined `re` alternation of the same prefilters: pure Python, always there.
             Used when hyperscan cannot be imported or HOOP_DETECTOR_ENGINE=python is set.
Both engines answer the same question from the same patterns, so masking is identical; only
the speed differs (bench/detect_engines.py measures both).
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import re
from collections.abc import Iterable
from typing import Any, Protocol

log = logging.getLogger("hoop.masking")

# Superset patterns, keyed like the scan order in hoop/core/masking.py (detector name, or
# name + "@column" for the forms a column's name turns on). See each detector's pattern for
# why the prefilter covers it.
PREFILTERS: dict[str, tuple[bytes, ...]] = {
    "private_key": (rb"-----BEGIN ",),
    "jwt": (rb"eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.",),
    "github_token": (rb"gh[pousr]_[A-Za-z0-9]{36}", rb"github_pat_[A-Za-z0-9_]{22}"),
    "aws_access_key": (rb"A(?:KI|SI)A[A-Z0-9]{16}",),
    "iban": (rb"[A-Z]{2}[0-9]{2}(?:[A-Z0-9]{11}| [A-Z0-9]{4} [A-Z0-9]{4})",),
    "email": (rb"[A-Za-z0-9._%+\-]@[A-Za-z0-9\-]+\.",),
    "credit_card": (
        rb"[0-9]{13}",
        rb"[0-9]{4}[ \-][0-9]{4}[ \-][0-9]{4}[ \-][0-9]",
        rb"[0-9]{4}[ \-][0-9]{6}[ \-][0-9]{4}",
    ),
    "us_ssn": (
        rb"[0-9]{3}-[0-9]{2}-[0-9]{4}",
        # a label, then at most ~16 bytes of suffix, quotes, blanks and separator, then digits
        rb"[sS](?:[sS][nN]|[oO][cC][iI][aA][lL][ _\-]?[sS][eE][cC][uU][rR][iI][tT][yY])[^0-9]{0,24}"
        rb"[0-9]{3}[ \-]?[0-9]{2}[ \-]?[0-9]{4}",
    ),
    # international: + and 8 digits with at most two of " .-()" between them; North American:
    # 3-3-4 digits with separators, or an area code's ")" then 3-4 digits (not a decimal 285.7142)
    "phone": (
        rb"\+[1-9](?:[ .\-()]{0,2}[0-9]){7}",
        rb"[0-9]{3}[ .\-][0-9]{3}[ .\-][0-9]{4}",
        rb"\) ?[0-9]{3}[ .\-][0-9]{4}",
    ),
    "labelled_secret": (
        rb"(?i:api[_\-]?key|password|passwd|pwd|private[_\-]?key|secret(?:[_\-]?access)?(?:[_\-]?key)?|token)"
        rb"[\"']?[ \t]{0,3}[:=]",
    ),
    "us_ssn@column": (rb"[0-9]{3}[ \-]?[0-9]{2}[ \-]?[0-9]{4}",),
}  # fmt: skip


# Where in a buffer the candidates are: (start, end) spans sorted by start (they may overlap);
# every match of a detector inside the buffer overlaps at least one. None: more than the limit.
Spots = list[tuple[int, int]]


class Prefilter(Protocol):
    engine: str

    def hit(self, data: bytes | memoryview) -> bool:
        """Whether any prefilter matches somewhere in `data`."""
        ...

    def spots(self, data: bytes | memoryview, limit: int) -> Spots | None:
        """Where the prefilters match in `data` (None when more than `limit` places)."""
        ...


# Bytes every match of a prefilter contains (one of them): the Python engine runs a pattern
# only where one is present, one C-level `in` each (a combined alternation tries every
# alternative at every byte and is slower than the detectors it should spare).
NEEDLES: dict[bytes, tuple[bytes, ...]] = {
    rb"-----BEGIN ": (b"-----BEGIN ",),
    rb"eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.": (b"eyJ",),
    rb"gh[pousr]_[A-Za-z0-9]{36}": (b"gh",),
    rb"github_pat_[A-Za-z0-9_]{22}": (b"github_pat_",),
    rb"A(?:KI|SI)A[A-Z0-9]{16}": (b"AKIA", b"ASIA"),
    rb"[A-Za-z0-9._%+\-]@[A-Za-z0-9\-]+\.": (b"@",),
    rb"[0-9]{3}-[0-9]{2}-[0-9]{4}": (b"-",),
    rb"\+[1-9](?:[ .\-()]{0,2}[0-9]){7}": (b"+",),
    rb"\) ?[0-9]{3}[ .\-][0-9]{4}": (b")",),
}


class _PythonPrefilter:
    """Each pattern on its own, where its needle is present. `finditer` reports a pattern's
    non-overlapping matches leftmost first: a match of it starting inside a reported span
    overlaps that span, one starting after it is found later; spots are sorted by start."""

    __slots__ = ("engine", "_patterns")

    def __init__(self, patterns: Iterable[bytes]) -> None:
        self.engine = "python"
        self._patterns = [(NEEDLES.get(p, ()), re.compile(p)) for p in patterns]

    def hit(self, data: bytes | memoryview) -> bool:
        raw = bytes(data)
        for needles, rx in self._patterns:
            if (not needles or any(n in raw for n in needles)) and rx.search(raw) is not None:
                return True
        return False

    def spots(self, data: bytes | memoryview, limit: int) -> Spots | None:
        raw = bytes(data)
        out: Spots = []
        for needles, rx in self._patterns:
            if not needles or any(n in raw for n in needles):
                out += [m.span() for m in itertools.islice(rx.finditer(raw), limit + 1 - len(out))]
                if len(out) > limit:
                    return None
        out.sort()
        return out


def _stop(*_: Any) -> bool:
    return True  # the first match answers the question: stop the scan


class _HyperscanPrefilter:
    """Hyperscan reports every end offset of every pattern's matches: a detector match holds a
    prefilter match, whose last byte is reported as a one-byte spot."""

    __slots__ = ("engine", "_db", "_every", "_terminated")

    def __init__(self, hyperscan: Any, patterns: list[bytes]) -> None:
        self.engine = "hyperscan"
        self._db = self._compile(hyperscan, patterns, hyperscan.HS_FLAG_SINGLEMATCH)  # is there one?
        self._every = self._compile(hyperscan, patterns, 0)  # where are they all?
        self._terminated = hyperscan.ScanTerminated

    @staticmethod
    def _compile(hyperscan: Any, patterns: list[bytes], flag: int) -> Any:
        db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        n = len(patterns)
        db.compile(expressions=patterns, ids=list(range(n)), elements=n, flags=[flag] * n)
        return db

    def hit(self, data: bytes | memoryview) -> bool:
        try:
            self._db.scan(data, match_event_handler=_stop)
        except self._terminated:
            return True
        return False

    def spots(self, data: bytes | memoryview, limit: int) -> Spots | None:
        ends: list[int] = []

        def found(_id: int, _start: int, end: int, _flags: int, _ctx: Any) -> bool:
            ends.append(end)
            return len(ends) > limit

        try:
            self._every.scan(data, match_event_handler=found)
        except self._terminated:
            return None
        return [(end - 1, end) for end in sorted(set(ends))]


def _hyperscan() -> Any | None:
    if os.environ.get("HOOP_DETECTOR_ENGINE", "").strip().lower() == "python":
        return None
    try:
        import hyperscan  # type: ignore[import-not-found,unused-ignore]
    except ImportError:  # no wheel for this platform: the pure-Python engine is used
        return None
    return hyperscan


def engine_name() -> str:
    """The engine prefilters are built with in this process: "hyperscan" or "python"."""
    return "hyperscan" if _hyperscan() is not None else "python"


@functools.lru_cache(maxsize=64)
def prefilter(names: frozenset[str]) -> Prefilter | None:
    """The compiled prefilter of these detectors (cached: compiled once per rule set), or
    None when one of them has no prefilter (then every value is scanned the exact way)."""
    if not names or any(n not in PREFILTERS for n in names):
        return None
    patterns = [p for n in sorted(names) for p in PREFILTERS[n]]
    hs = _hyperscan()
    if hs is not None:
        try:
            return _HyperscanPrefilter(hs, patterns)
        except Exception as exc:  # a library that imports but cannot compile: stay correct
            log.warning("hyperscan could not compile the detector prefilters (%s); using the Python engine", exc)
    return _PythonPrefilter(patterns)
