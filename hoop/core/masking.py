"""Masking rules -> a per-result-set plan -> rows with sensitive values replaced. Pure, no I/O.

Column patterns (`MaskRule.columns`) are fnmatch globs, compared lower-case, and the number of
dots in a pattern says which trailing parts of "schema.table.column" it is matched against:
  "email"                      0 dots: the column name, any table, any schema
  "*.email", "users.pass*"     1 dot:  "table.column"
  "public.customers.card_no"   2 dots: "schema.table.column" (exact when it has no wildcards)
Computed columns (no source table) never match a column pattern; detectors still scan them.

A rule's `columns` are masked whole; its `detectors` scan every column not masked whole, so
computed columns (`lower(email)`, `row_to_json(t)`, `string_agg(...)`) and renamed view
columns are still caught by content. When several rules hit the same column or detector the strongest style wins:
redact > hash > partial. An identity in one of a rule's `exempt` groups is exempt from the whole
rule (masking and limits); the rule's name is listed in `MaskPolicy.exempted` for auditing.

Column types (type hints) decide what a masked value may look like, because clients parse them:
  text-like (text, varchar, json, arrays, unknown types): masked in place as text.
  numeric (int*, numeric, float*): only the credit_card detector runs (a Luhn-valid 16-digit
      bigint is a card number); a masked value becomes SQL NULL (None), except style "hash",
      which emits a decimal pseudonym that fits the type so joins still work.
  other (bool, dates, times, uuid, inet, bytea, ...): never scanned (cannot hold the patterns;
      bytea's hex text is opaque to detectors); a column rule turns them into NULL.
json/jsonb values with a hit are re-serialised with the hits masked inside the parsed document,
so a card number stored as a JSON number becomes a JSON string and the value stays valid JSON.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from hoop.core import detect_engine
from hoop.core.detectors import (
    COLUMN_DETECTORS,
    DETECTOR_NAMES,
    DETECTORS,
    REDACTED,
    Detector,
    MaskFormatError,
    copy_escape,
    copy_unescape,
    max_text_len,
    render,
    split_copy_fields,
    type_kind,
    whole_mask,
)
from hoop.core.masking_rules import MaskRule, mask_rule_from_mapping, mask_rule_to_mapping

__all__ = [
    "ColumnRef",
    "MaskFormatError",
    "MaskPlan",
    "MaskPolicy",
    "MaskRule",
    "mask_copy_line",
    "mask_rule_from_mapping",
    "mask_rule_to_mapping",
]

_STRENGTH = {"partial": 0, "hash": 1, "redact": 2}
# Used when the caller gives no key: pseudonyms are then stable only within this process.
_PROCESS_KEY = os.urandom(32)


@dataclass(frozen=True)
class ColumnRef:
    """Where a result column comes from, lower-case (the caller resolves aliases and views)."""

    schema: str
    table: str
    column: str


def _pattern_matcher(pattern: str) -> Callable[[ColumnRef], bool]:
    rx = re.compile(fnmatch.translate(pattern))
    dots = pattern.count(".")
    if dots == 0:
        return lambda r: rx.match(r.column.lower()) is not None
    if dots == 1:
        return lambda r: rx.match(f"{r.table}.{r.column}".lower()) is not None
    return lambda r: rx.match(f"{r.schema}.{r.table}.{r.column}".lower()) is not None


def _key_regex(glob: str) -> str:
    """The column part of a pattern as a regex over JSON key text."""
    column = glob.lower().rsplit(".", 1)[-1]
    return "".join('[^"]*' if c == "*" else '[^"]' if c == "?" else re.escape(c) for c in column)


def _key_pattern(glob: str) -> re.Pattern[str]:
    return re.compile(_key_regex(glob), re.IGNORECASE)


def _key_gate(globs: list[str]) -> re.Pattern[bytes] | None:
    """One search telling whether a JSON value has any key a column pattern covers."""
    if not globs:
        return None
    body = "|".join(_key_regex(g) for g in globs)
    return re.compile(f'"(?:{body})"\\s*:'.encode(), re.IGNORECASE)


def _stronger(a: str | None, b: str) -> str:
    return b if a is None or _STRENGTH[b] > _STRENGTH[a] else a


class MaskPolicy:
    """The rules that apply to one (connection, groups). Build once per session, plan per result."""

    def __init__(self, rules: Sequence[MaskRule], exempted: tuple[str, ...], key: bytes) -> None:
        self.exempted = exempted
        self._key = key
        self.max_rows = min((r.max_rows for r in rules if r.max_rows), default=None)
        self.max_bytes = min((r.max_bytes for r in rules if r.max_bytes), default=None)
        self._whole: list[tuple[list[Callable[[ColumnRef], bool]], str]] = []
        # Result columns whose sources are unknown (hoop/core/lineage.py): the column rules
        # that refuse them, and the strongest style of those that mask them whole.
        self.block_unknown = tuple(r.name for r in rules if r.columns and r.on_unknown == "block")
        self._unknown_style: str | None = None
        # Names that, written in a statement, say it may read a column masked whole (messages).
        self._named: list[tuple[list[re.Pattern[str]], str]] = []
        everywhere: dict[str, str] = {}
        for r in rules:
            matchers = [_pattern_matcher(p.lower()) for p in r.columns]
            if matchers:
                self._whole.append((matchers, r.style))
                if r.on_unknown == "mask":
                    self._unknown_style = _stronger(self._unknown_style, r.style)
                self._named.append(([_name_pattern(p) for p in r.columns], r.style))
            for d in r.detectors:
                if d not in DETECTORS:
                    raise ValueError(f"mask rule {r.name!r}: unknown detector {d!r}")
                everywhere[d] = _stronger(everywhere.get(d), r.style)
        self._everywhere = everywhere
        # One prefilter per rule set (not per plan): compiled once, see prepare_detectors.
        self._pf_names = frozenset(everywhere)
        # JSON built from rows (row_to_json, json_agg, to_jsonb) keeps column names as keys:
        # a key matching a column pattern's last part is masked too (over-masking is the safe side).
        self._json_keys = [(_key_pattern(p), r.style) for r in rules for p in r.columns]
        self._json_gate = _key_gate([p for r in rules for p in r.columns])
        self._all: dict[str, str] = dict(everywhere)
        self._text_scan = _Scan(self._all, key)  # free text: every detector of every rule
        self._cache: dict[ColumnRef, tuple[str | None, dict[str, str]]] = {}
        # Scans per (detectors and styles, numbers only): built once, shared by every plan.
        self._scans: dict[tuple[frozenset[tuple[str, str]], bool], _Scan] = {}

    @classmethod
    def build(
        cls,
        rules: Sequence[MaskRule],
        *,
        connection: str,
        groups: frozenset[str],
        hash_key: bytes | None = None,
    ) -> MaskPolicy:
        """Keep the enabled rules whose `connections` globs match; rules naming one of `groups`
        in `exempt` are left out and reported in `exempted`. `hash_key` is the per-installation
        HMAC key of the "hash" style (without it pseudonyms are stable only in this process)."""
        applying: list[MaskRule] = []
        exempted: list[str] = []
        for r in rules:
            if not r.enabled or not any(fnmatch.fnmatchcase(connection, c) for c in r.connections):
                continue
            if groups.intersection(r.exempt):
                exempted.append(r.name)
            else:
                applying.append(r)
        return cls(applying, tuple(exempted), hash_key or _PROCESS_KEY)

    @property
    def active(self) -> bool:
        """False when no rule masks anything for this identity (limits may still apply)."""
        return bool(self._whole or self._all)

    @property
    def masks_columns(self) -> bool:
        """Whether a column rule applies: then computed and view columns need their lineage."""
        return bool(self._whole)

    def _for_column(self, ref: ColumnRef | None) -> tuple[str | None, dict[str, str]]:
        if ref is None:
            return None, self._everywhere
        hit = self._cache.get(ref)
        if hit is None:
            whole: str | None = None
            for matchers, style in self._whole:
                if any(m(ref) for m in matchers):
                    whole = _stronger(whole, style)
            dets = self._everywhere
            named = [d for d, (pattern, _) in COLUMN_DETECTORS.items() if d in dets and pattern.fullmatch(ref.column)]
            if named:  # the column's name says what it holds: its own forms of those values too
                dets = {**dets, **{_column_detector(d): dets[d] for d in named}}
            if len(self._cache) > 4096:
                self._cache.clear()
            hit = self._cache[ref] = (whole, dets)
        return hit

    def plan(
        self,
        columns: Sequence[ColumnRef | None],
        type_hints: Sequence[str | None] | None = None,
        derived: Sequence[frozenset[ColumnRef] | None] | None = None,
        *,
        seen: SeenValuesLike | None = None,
    ) -> MaskPlan | None:
        """The per-result-set plan, or None when no value in this result set can be masked.

        `derived` is each column's lineage where the door followed it (hoop/core/lineage.py):
        the source columns a computed or view column derives from; a column derived from one
        a rule masks is masked whole. None for a column marks its sources unknown: it is
        masked whole in the strongest style of the column rules with `on_unknown = "mask"`
        (the door refuses the result first where one says "block"). `seen` remembers the
        values of columns masked whole (for masking server messages)."""
        if not self.active:
            return None
        if type_hints is not None and len(type_hints) != len(columns):
            raise ValueError("type_hints must have one entry per column")
        if derived is not None and len(derived) != len(columns):
            raise ValueError("derived must have one entry per column")
        ops: list[tuple[int, Callable[[bytes], bytes | None]]] = []
        masked: list[int] = []
        scanned: list[int] = []
        scans: dict[int, _Scan] = {}
        for i, ref in enumerate(columns):
            type_name = type_hints[i] if type_hints is not None else None
            kind = type_kind(type_name)
            whole, dets = self._for_column(ref)
            if derived is not None:
                whole = self._derived_style(whole, derived[i])
            if whole is not None:
                mask = whole_mask(kind, type_name, whole, self._key)
                ops.append((i, mask if seen is None else seen.wrap(mask)))
                masked.append(i)
                continue
            if kind == "json" and self._json_gate is not None:
                scan = self._scan(dets, False)
                ops.append((i, _json_scanner(scan, self._json_gate, self._json_keys)))
                scanned.append(i)
                continue
            if kind == "opaque" or not dets:
                continue
            scan = self._scan(dets, kind in ("number", "numarray"))
            longest = max_text_len(type_name)
            if scan.steps and (longest is None or longest >= scan.min_len):  # else no value can match
                ops.append((i, _scanner(kind, type_name, scan)))
                scanned.append(i)
                if kind != "json":
                    scans[i] = scan
        if not ops:
            return None
        names = self._pf_names.union(*(scan.names for scan in scans.values()))  # + a column's own forms
        return MaskPlan(ops, masked, scanned, self._text_scan, scans, names)

    def _scan(self, dets: Mapping[str, str], numeric_only: bool) -> _Scan:
        key = (frozenset(dets.items()), numeric_only)
        scan = self._scans.get(key)
        if scan is None:
            scan = self._scans[key] = _Scan(dets, self._key, numeric_only)
        return scan

    def _derived_style(self, whole: str | None, sources: frozenset[ColumnRef] | None) -> str | None:
        """The style of a column derived from `sources` (None: unknown). "partial" keeps part
        of a value of the column's own shape (an e-mail's domain, a card's last digits); a
        derived value has another shape (`email || note`), so it is redacted instead."""
        derived: str | None = None
        if sources is None:
            derived = self._unknown_style
        else:
            for source in sources:
                style = self._for_column(source)[0]
                if style is not None:
                    derived = _stronger(derived, style)
        if derived is None:
            return whole
        return _stronger(whole, "redact" if derived == "partial" else derived)

    def text_plan(self) -> MaskPlan | None:
        """A plan with no columns, for free text (SSH SQL shell output, COPY of unknown shape)."""
        return MaskPlan([], [], [], self._text_scan) if self._text_scan.steps else None

    def apply_text(self, text: str) -> str:
        raw = text.encode("utf-8", "surrogateescape")  # bytes a wire decoder kept as they came
        masked = self._text_scan.run(raw)
        return text if masked is raw else masked.decode("utf-8", "surrogateescape")

    def plan_with_column(self, plan: MaskPlan | None, i: int, mask: Callable[[bytes], bytes | None]) -> MaskPlan:
        """`plan` (None: a plan that masks nothing) with column `i` passed through `mask` instead,
        for a column whose text is known to be free text (a warning's message)."""
        if plan is None:
            return MaskPlan([(i, mask)], [], [i], self._text_scan)
        ops = [(j, fn) for j, fn in plan._ops if j != i] + [(i, mask)]
        scanned = [j for j in plan.scanned_columns if j != i] + [i]
        return MaskPlan(ops, [j for j in plan.masked_columns if j != i], scanned, self._text_scan)

    def style_named_in(self, statement: str) -> str | None:
        """The strongest style of the column rules a name in `statement` points at, or None.
        A rule's pattern is named by a word matching its column part, or for "table.column" and
        longer patterns also by a word matching its table part (`SELECT *` names no column)."""
        if not self._named:
            return None
        words = set(_WORD.findall(statement.lower()))
        style: str | None = None
        for patterns, rule_style in self._named:
            if any(p.fullmatch(w) for p in patterns for w in words):
                style = _stronger(style, rule_style)
        return style

    def message_mask(self, style: str) -> Callable[[str], str]:
        """How a value quoted in a server message is masked in `style` (text, never NULL)."""
        fn = whole_mask("text", None, style, self._key)
        return lambda text: (fn(text.encode("utf-8", "surrogateescape")) or REDACTED).decode("utf-8", "surrogateescape")


def prepare_detectors(rules: Sequence[MaskRule]) -> str | None:
    """Compile the prefilter of these rules' detectors now (hyperscan takes a fraction of a
    second), so the first result does not wait for it. Returns the engine, None without detectors."""
    names = frozenset(d for r in rules if r.enabled for d in r.detectors if d in DETECTORS)
    pf = detect_engine.prefilter(names) if names else None
    return pf.engine if pf is not None else None


class SeenValuesLike(Protocol):
    def wrap(self, mask: Callable[[bytes], bytes | None]) -> Callable[[bytes], bytes | None]: ...


# Words of a statement that can name a table or column: plain and quoted identifiers' insides.
_WORD = re.compile(r"[^\s\"`'.,;()\[\]=<>+*/|:!~%^&{}-]+")


def _name_pattern(pattern: str) -> re.Pattern[str]:
    """A regex matching a word that names the column part, or the table part, of `pattern`."""
    parts = pattern.lower().split(".")
    # A part that is only wildcards names nothing in particular: every word would match it.
    names = [n for n in parts[-2:] if n.strip("*?")]
    if not names:  # "*" or "*.*": every column of every table, so any statement reads one
        return re.compile(".+")
    return re.compile("|".join(f"(?:{fnmatch.translate(n)})" for n in names))


def _column_detector(name: str) -> str:
    """The key, in a column's detector map, of the detectors COLUMN_DETECTORS adds for `name`."""
    return name + "@column"


_SCAN_ORDER = tuple((name, DETECTORS[name]) for name in DETECTOR_NAMES) + tuple(
    (_column_detector(name), dets) for name, (_, dets) in COLUMN_DETECTORS.items()
)


# --- plan -------------------------------------------------------------------------------------


# translate() tables mapping the bytes of interest to 0 and every other byte to 1: a full table
# plus `0 in` / `.count(0)` is several times cheaper than translate's delete argument.
_DIGIT_TABLE = bytes(0 if 48 <= c <= 57 else 1 for c in range(256))


class _Scan:
    """The detectors for one column. One C-level translate rejects values holding no trigger
    byte of any of them (most names, words and codes); the rest go through per-detector gates."""

    __slots__ = ("steps", "table", "key", "keyed", "names", "min_len")

    def __init__(self, dets: Mapping[str, str], key: bytes, numeric_only: bool = False) -> None:
        steps = []
        triggers: set[int] = set()
        names: set[str] = set()
        for name, detectors in _SCAN_ORDER:  # fixed order: long specific tokens first
            style = dets.get(name)
            if style is None:
                continue
            for det in detectors:
                if det.numeric or not numeric_only:
                    steps.append((det.min_len, det.min_digits, det.needle, det.gate, det, style))
                    triggers.update(det.triggers)
                    names.add(name)
        self.names = frozenset(names)
        # No detector matches fewer bytes than its min_len: shorter values are never scanned.
        self.min_len = min((s[0] for s in steps), default=0)
        self.steps: tuple[tuple[int, int, int | bytes | None, Callable[[bytes], bool] | None, Detector, str], ...] = (
            tuple(steps)
        )
        self.table = bytes(0 if c in triggers else 1 for c in range(256))
        self.key = key
        self.keyed = tuple((det.keyed, det, style) for *_, det, style in steps if det.keyed is not None)

    def run(self, v: bytes) -> bytes:
        """Returns `v` itself (same object) when nothing matched."""
        n = len(v)
        if n < self.min_len or 0 not in v.translate(self.table):
            return v
        nd = -1
        for min_len, min_digits, needle, gate, det, style in self.steps:
            if n < min_len or (needle is not None and needle not in v):
                continue
            if min_digits:
                if nd < 0:
                    nd = v.translate(_DIGIT_TABLE).count(0)
                if nd < min_digits:
                    continue
            if gate is not None and not gate(v):  # spares the call into the detector
                continue
            nv = det.mask(v, style, self.key)
            if nv is not v:
                v, n, nd = nv, len(nv), -1
        return v


def _mask_json_doc(doc: Any, scan: _Scan) -> Any:
    if isinstance(doc, str):
        return scan.run(doc.encode()).decode()
    if isinstance(doc, bool) or not isinstance(doc, int):
        if isinstance(doc, dict):
            return {_mask_json_doc(k, scan): _mask_keyed(k, v, scan) for k, v in doc.items()}
        if isinstance(doc, list):
            return [_mask_json_doc(v, scan) for v in doc]
        return doc
    raw = str(doc).encode()
    masked = scan.run(raw)
    return doc if masked is raw else masked.decode()


def _mask_keyed(key: Any, value: Any, scan: _Scan) -> Any:
    """A JSON member whose key names what its value is (`"ssn": "123456789"`, `"api_key": ...`)."""
    if scan.keyed and isinstance(key, str) and isinstance(value, str | int) and not isinstance(value, bool):
        text = value if isinstance(value, str) else str(value)
        for keyed, det, style in scan.keyed:
            if keyed(key, text):
                return render(text.encode(), style, det.partial, scan.key).decode()
    return _mask_json_doc(value, scan)


def _json_scanner(
    scan: _Scan, gate: re.Pattern[bytes], keys: Sequence[tuple[re.Pattern[str], str]]
) -> Callable[[bytes], bytes | None]:
    """JSON values: detectors inside strings plus whole values under keys a column rule covers."""

    def mask_keys(doc: Any) -> Any:
        if isinstance(doc, dict):
            out = {}
            for k, v in doc.items():
                style = None
                for pattern, st in keys:
                    if pattern.fullmatch(k):
                        style = _stronger(style, st)
                out[k] = mask_keys(v) if style is None else _mask_json_value(v, style, scan.key)
            return out
        if isinstance(doc, list):
            return [mask_keys(v) for v in doc]
        return doc

    def scan_json(v: bytes) -> bytes | None:
        keyed = gate.search(v) is not None
        if not keyed and (not scan.steps or scan.run(v) is v):
            return v
        try:
            doc = json.loads(v)
        except ValueError:
            return None  # a hit we cannot place safely: withhold the whole value
        if keyed:
            doc = mask_keys(doc)
        if scan.steps:
            doc = _mask_json_doc(doc, scan)
        return json.dumps(doc, ensure_ascii=False).encode()

    return scan_json


def _mask_json_value(value: Any, style: str, key: bytes) -> Any:
    if value is None:
        return None
    raw = value.encode() if isinstance(value, str) else json.dumps(value).encode()
    masked = whole_mask("text", None, style, key)(raw)
    return None if masked is None else masked.decode("utf-8", "replace")


def _scanner(kind: str, type_name: str | None, scan: _Scan) -> Callable[[bytes], bytes | None]:
    if kind == "text":
        return scan.run
    if kind == "json":

        def scan_json(v: bytes) -> bytes | None:
            if scan.run(v) is v:
                return v
            try:
                doc = json.loads(v)
            except ValueError:
                return None  # a hit we cannot place safely: withhold the whole value
            return json.dumps(_mask_json_doc(doc, scan), ensure_ascii=False).encode()

        return scan_json
    whole = whole_mask(kind, type_name, scan.steps[0][5], scan.key)  # a card number in a number

    def scan_number(v: bytes) -> bytes | None:
        return v if scan.run(v) is v else whole(v)

    return scan_number


class MaskPlan:
    """Per result set: which columns to mask whole, which to scan. `apply` runs once per row.

    Scanned text and number columns are searched together: their values are joined and given
    to the rule set's prefilter (hoop/core/detect_engine.py) in one call, and only when it finds
    a candidate does each value go through its column's exact detectors, one value at a time."""

    __slots__ = ("_ops", "masked_columns", "scanned_columns", "_masked", "_text_scan", "_always", "_filtered", "_pf")

    def __init__(
        self,
        ops: list[tuple[int, Callable[[bytes], bytes | None]]],
        masked: list[int],
        scanned: list[int],
        text_scan: _Scan,
        scans: Mapping[int, _Scan] | None = None,
        names: frozenset[str] = frozenset(),
    ) -> None:
        self._ops = tuple(ops)
        self.masked_columns = tuple(masked)
        self.scanned_columns = tuple(scanned)
        self._masked = frozenset(masked)
        self._text_scan = text_scan
        scans = scans or {}
        self._pf = detect_engine.prefilter(names) if scans else None
        if self._pf is None:
            scans = {}  # a detector without a prefilter: every value the exact way
        self._always = tuple((i, fn) for i, fn in ops if i not in scans)
        self._filtered = tuple((i, fn, scans[i].min_len) for i, fn in ops if i in scans)

    @property
    def engine(self) -> str | None:
        """The prefilter engine this plan searches with ("hyperscan", "python"), or None."""
        return self._pf.engine if self._pf is not None else None

    def column_masked(self, i: int) -> bool:
        return i in self._masked

    def value_functions(self) -> tuple[Callable[[bytes], bytes | None] | None, ...] | None:
        """Each touched column's function by column index up to the last one (None where a
        column is left alone), when every value of a row can be masked on its own: a door may
        then rewrite rows in place without building the value list `apply` takes. None when
        values go through the joined prefilter search (`apply` must see them together)."""
        if self._filtered:
            return None
        fns: list[Callable[[bytes], bytes | None] | None] = [None] * (max((i for i, _ in self._always), default=-1) + 1)
        for i, fn in self._always:
            fns[i] = fn
        return tuple(fns)

    def spots(self, data: bytes | memoryview, limit: int = 4096) -> detect_engine.Spots | None:
        """Where in `data` (bytes holding rows: one DataRow, a buffer of many) a value may need
        masking: a row overlapping none of these spans passes unchanged, certainly. None when
        the plan cannot tell (it masks a column whole, scans JSON, or `limit` is exceeded)."""
        if self._always or self._pf is None:
            return None
        return self._pf.spots(data, limit)

    def apply(self, values: list[bytes | None]) -> list[bytes | None] | None:
        """A new row with masked values (None = SQL NULL), or None if the row is unchanged."""
        out = None
        for i, fn in self._always:
            v = values[i]
            if v is None:
                continue
            nv = fn(v)
            if nv is not v:
                if out is None:
                    out = list(values)
                out[i] = nv
        if not self._filtered:
            return out
        # Values too short for any detector are left out; the rest are searched in one call.
        todo = [(i, fn, v) for i, fn, n in self._filtered if (v := values[i]) is not None and len(v) >= n]
        if not todo:
            return out
        hit = self._pf.hit  # type: ignore[union-attr]  # set whenever _filtered is
        if not hit(todo[0][2] if len(todo) == 1 else b"\x00".join([t[2] for t in todo])):
            return out
        for i, fn, v in todo:
            if len(todo) > 1 and not hit(v):
                continue
            nv = fn(v)
            if nv is not v:
                if out is None:
                    out = list(values)
                out[i] = nv
        return out

    def apply_text(self, value: str) -> str:
        raw = value.encode()
        masked = self._text_scan.run(raw)
        return value if masked is raw else masked.decode()


# --- COPY text format -------------------------------------------------------------------------


def mask_copy_line(plan: MaskPlan, line: bytes, *, delimiter: bytes = b"\t", null: bytes = b"\\N") -> bytes | None:
    """Mask one COPY TO STDOUT text-format line (trailing newline optional and kept).

    Fields are unescaped before masking so detectors see the real text, and only changed fields
    are re-escaped; untouched fields keep their original bytes. Returns None when the line is
    unchanged (also for the end-of-data marker), so the caller forwards the original bytes.
    Raises MaskFormatError when the line has fewer fields than the plan needs.
    """
    body = line[:-1] if line.endswith(b"\n") else line
    if body == b"\\.":
        return None
    fields = split_copy_fields(body, delimiter)
    values: list[bytes | None] = [None if f == null else f for f in fields]
    needed = max((i for i, _ in plan._ops), default=-1)
    if needed >= len(values):
        raise MaskFormatError(f"COPY line has {len(values)} fields, the plan needs {needed + 1}")
    for i, _ in plan._ops:
        v = values[i]
        if v is not None:
            values[i] = copy_unescape(v)
    out = plan.apply(values)
    if out is None:
        return None
    for i, _ in plan._ops:
        v = out[i]
        if v is not values[i]:
            fields[i] = null if v is None else copy_escape(v, delimiter)
    return delimiter.join(fields) + line[len(body) :]
