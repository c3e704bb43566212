"""Statement text as it is stored and shown: masked like results, true in its structure.

What users type into statements is kept (statements table, audit events, recordings) and shown
(approval requests, the TUI, `hoop approvals`, `hoop audit`). Before that, in the journal
writer process and, for a held statement, in the gateway:

- every string literal, quoted name, comment and number is scanned by the built-in content
  detectors (hoop/core/detectors.py) and what they match is masked in place, in the format the
  connection's masking rules give that detector in results ("partial" where no rule names it);
- a literal that is a credential (`PASSWORD '...'`, `IDENTIFIED BY '...'`, `crypt('...', ..)`,
  `password = '...'`) is replaced whole, and so is a literal bound to a masked column
  (hoop/core/statement_secrets.py) in its rule's style.

Masking only ever rewrites the inside of one token, found by the server's own scanner under
every reading the text can have (hoop/core/statement_lexing.py), so the approver sees the
statement that runs: the word "password" in a comment or a name masks nothing else, and no
mask can swallow a WHERE clause. Where that cannot be guaranteed (the text does not scan, or
scans differently under some setting right where a sensitive value is, or is too long to
scan here), the text is kept up to the first sensitive value and the rest is withheld with a
note saying so. Shell commands (SSH) are masked by the detectors on the raw text, private
keys only inside a quoted word, plus `--password=...` and `*PASSWORD=...` values.

The hash style needs the installation's key, which stays out of the journal writer: statement
text shows it as redact. Exemptions do not apply here: stored text is read by others.
"""

from __future__ import annotations

import bisect
import fnmatch
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from hoop.core.detectors import DETECTOR_NAMES, REDACTED, partial_text
from hoop.core.masking_rules import MaskRule
from hoop.core.statement_detectors import first_hint, masks, matches
from hoop.core.statement_lexing import BODIES, COMMENT, NUMBER, Reading, Token, Unreadable, readings, shell_quoted
from hoop.core.statement_secrets import credential_values, sensitive_literals

log = logging.getLogger("hoop.redact")
MASK = REDACTED.decode()
# Longer texts are not scanned in the journal writer (a MySQL scan costs ~2 s per MiB); one
# with a sensitive value keeps its text up to that value (see the module doc).
MAX_SCAN_CHARS = 1 << 20
_SHELL_CREDENTIAL = re.compile(
    r"(?:--(?:password|passwd|pass|pwd)=|(?<![A-Za-z0-9_])[A-Za-z_]*(?:password|passwd|pwd|secret|token)=)"
    r"(?:'([^']*)'|\"([^\"$`\\]*)\"|([^\s'\"$`\\;&|<>()]+))",
    re.IGNORECASE,
)
_DIALECTS = {"postgres": "postgres", "mysql": "mysql", "ssh": "shell", "shell": "shell"}
_STRENGTH = {"partial": 0, "redact": 1}


def dialect_of(protocol: str) -> str:
    """The masking dialect of a session's protocol or dialect name ("" when unknown: every SQL reading)."""
    return _DIALECTS.get(protocol, "")


class Masked(NamedTuple):
    """A masked text and the original values masked in it (to scrub echoes of them elsewhere).
    (A tuple: the journal writer makes one per recorded statement.)"""

    text: str
    secrets: tuple[str, ...] = ()

    def scrub(self, other: str) -> str:
        """`other` (a server's error about this statement, which may quote it) with the values
        masked here, and whatever the detectors match, masked."""
        if not other:
            return other
        for secret in sorted(self.secrets, key=len, reverse=True):
            if len(secret) >= 3 and secret in other:  # a quoted one-letter password, not a lone letter
                other = other.replace(secret, MASK)
        return mask_free_text(other)


# -- one connection's policy -----------------------------------------------------------------


def _style(style: str) -> str:
    return "partial" if style == "partial" else "redact"  # hash needs the key: shown redacted


def _stronger(a: str | None, b: str) -> str:
    return b if a is None or _STRENGTH[b] > _STRENGTH[a] else a


def _glob(part: str) -> str:
    """A glob over one name ("card_*") as a regex over name characters."""
    return "".join(r"[\w$]*" if c == "*" else r"[\w$]" if c == "?" else re.escape(c) for c in part.lower())


def _word(regex: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w$])(?=[\w$])(?:{regex})(?![\w$])", re.IGNORECASE)


@dataclass(frozen=True)
class _Column:
    """A rule's column pattern as statement text can use it: its column name, and the table a
    statement must name for it to apply (none for "email" or "*.email"). Names are not resolved
    (aliases, views, search_path), so the column is matched by name in such a statement."""

    name: re.Pattern[str]
    mention: re.Pattern[str]
    table: re.Pattern[str] | None
    style: str

    @classmethod
    def of(cls, pattern: str, style: str) -> _Column:
        parts = pattern.lower().split(".")
        name = _glob(parts[-1])
        table = _word(_glob(parts[-2])) if len(parts) > 1 and parts[-2] != "*" else None
        return cls(re.compile(name), _word(name), table, style)


class _Bound:
    """The style of each column name a statement may bind values to."""

    def __init__(self, columns: list[_Column]) -> None:
        self.columns = columns
        self.styles: dict[str, str | None] = {}

    def __call__(self, name: str) -> str | None:
        if name not in self.styles:
            style = None
            for c in self.columns:
                if c.name.fullmatch(name):
                    style = _stronger(style, c.style)
            self.styles[name] = style
        return self.styles[name]


def _unbound(name: str) -> str | None:
    return None


@dataclass
class _Policy:
    detectors: dict[str, str]  # every built-in detector -> its style
    columns: tuple[_Column, ...] = ()
    mentions: re.Pattern[str] | None = None  # any column's name, in one search

    def bound(self, text: str) -> tuple[_Bound, int] | None:
        """The columns `text` names (with their table where the pattern has one), and where the
        first mention ends; None when it names none."""
        if self.mentions is None or self.mentions.search(text) is None:
            return None
        active, first = [], len(text)
        for c in self.columns:
            if (m := c.mention.search(text)) is not None and (c.table is None or c.table.search(text)):
                active.append(c)
                first = min(first, m.end())
        return (_Bound(active), first) if active else None


def _policy(rules: Sequence[MaskRule], connection: str) -> _Policy:
    detectors = {name: "partial" for name in DETECTOR_NAMES}
    named: dict[str, str] = {}
    columns = []
    for r in rules:
        if not r.enabled or not any(fnmatch.fnmatchcase(connection, c) for c in r.connections):
            continue
        for d in r.detectors:
            named[d] = _stronger(named.get(d), _style(r.style))
        columns += [_Column.of(c, _style(r.style)) for c in r.columns]
    detectors.update(named)
    mentions = _word("|".join(c.name.pattern for c in columns)) if columns else None
    return _Policy(detectors, tuple(columns), mentions)


class StatementMasking:
    """Masks statement text under a set of masking rules (see the module doc)."""

    def __init__(self, rules: Sequence[MaskRule] = ()) -> None:
        self.rules = tuple(rules)
        self._policies: dict[str, _Policy] = {}
        # Masked long texts by (text, dialect, connection): a client that sends one long text
        # again and again (a 2 MB statement re-run every few milliseconds) costs one scan.
        # Short texts cost microseconds and are not kept (a cache of every statement would
        # cost the writer more in memory and garbage collection than it saves). Bounded by the
        # characters it holds, so a few huge texts cannot pin memory.
        self._done: dict[tuple[str, str, str], Masked] = {}
        self._done_chars = 0

    def policy(self, connection: str) -> _Policy:
        hit = self._policies.get(connection)
        if hit is None:
            if len(self._policies) > 1024:
                self._policies.clear()
            hit = self._policies[connection] = _policy(self.rules, connection)
        return hit

    def mask(self, text: str, dialect: str, connection: str) -> Masked:
        """`text` of a statement run on `connection`; `dialect` as `dialect_of` gives it."""
        if not text:
            return Masked(text)
        if len(text) < _REMEMBERED_FROM:
            return self._mask(text, dialect, connection)
        key = (text, dialect, connection)
        done = self._done.get(key)
        if done is None:
            done = self._mask(text, dialect, connection)
            if self._done_chars + len(text) > _REMEMBERED_CHARS:
                self._done.clear()
                self._done_chars = 0
            self._done[key] = done
            self._done_chars += len(text)
        return done

    def _mask(self, text: str, dialect: str, connection: str) -> Masked:
        policy = self.policy(connection)
        try:
            if dialect == "shell":
                return _mask_shell(text, policy)
            return _mask_sql(text, dialect, policy)
        except Exception as exc:  # never store or show a text that could not be masked
            # The type only: a scanner's message quotes the text.
            log.error("statement text could not be masked (%s); it is withheld", type(exc).__name__)
            return _withhold(text, 0, [])


_REMEMBERED_FROM = 4096  # characters: from this length on, StatementMasking remembers a text's masking
_REMEMBERED_CHARS = 64 * 1024 * 1024  # and at most this many characters of such texts


def redact_statement(text: str) -> str:
    """`text` masked with no rules and under every SQL reading: for a statement whose session
    is not known (the journal writer's record of a record it could not store)."""
    return _PLAIN.mask(text, "", "").text


def mask_free_text(text: str) -> str:
    """Detector masking of text that is not a statement (a server's error message)."""
    if not text:
        return text
    return _apply(text, masks(text, _DEFAULT.detectors))


_DEFAULT = _policy((), "")
_PLAIN = StatementMasking()


# -- SQL -------------------------------------------------------------------------------------


@dataclass
class _Edit:
    start: int
    end: int
    text: str
    number: bool = False  # replaces a whole number token: quoted, so the text still parses
    literal: str = ""  # the whole literal (quotes and all) when its body is masked whole


def _mask_sql(text: str, dialect: str, policy: _Policy) -> Masked:
    # A `key = value` reading of SQL text mistakes syntax for values (PASSWORD = _utf8mb4'..'):
    # credentials in SQL, in its syntax or inside a literal, are statement_secrets' job.
    detected = [(a, b) for a, b, _, _ in matches(text, skip=("labelled_secret",))]
    bound = policy.bound(text) if policy.columns else None
    hint = first_hint(text)
    uri = text.find("://")  # a URI may carry a password
    if not detected and hint is None and uri < 0 and bound is None:
        return Masked(text)  # nothing to mask: most statements end here
    hits = [p for p in (detected[0][0] if detected else None, hint, uri if uri >= 0 else None) if p is not None]
    if bound is not None:
        hits.append(bound[1])
    if len(text) > MAX_SCAN_CHARS:
        return _withhold(text, min(hits), [])
    hinted = hint is not None or uri >= 0
    try:
        found = readings(text, dialect, bodies_only=not hinted and bound is None)
    except Unreadable:
        found = []
    if not found:
        return _withhold(text, min(hits), [])
    scan = _Scan(text, dialect, policy, detected, bound[0] if bound else None, hinted)
    edits = _merged([e for reading in found for e in scan.edits(reading)])
    # A match no edit covers is not inside a literal or comment (an e-mail address typed without
    # quotes, or a match across tokens): it cannot be masked without masking code.
    starts = [e.start for e in edits]
    loose = [a for a, b in detected if (k := bisect.bisect_left(starts, b) - 1) < 0 or edits[k].end <= a]
    return _place(text, edits, found, min(loose, default=len(text)))


@dataclass
class _Scan:
    """What to look for in the tokens of one text: detector matches only in bodies the matches
    on the whole text overlap (a detector cannot match inside a body without matching there),
    credentials only when a word of one is in the text, masked columns only when it names one."""

    text: str
    dialect: str
    policy: _Policy
    detected: list[tuple[int, int]]
    bound: _Bound | None
    hinted: bool

    def edits(self, reading: Reading) -> list[_Edit]:
        text, out = self.text, []
        whole: dict[int, str] = {}  # token start -> style, for literals masked whole
        if self.hinted or self.bound is not None:
            for tok, style in sensitive_literals(reading, self.dialect, self.bound or _unbound, self.hinted):
                whole[tok.start] = _stronger(whole.get(tok.start), style)
        tokens = {t.start: t for t in reading} if whole else {}
        for start, style in whole.items():
            tok = tokens[start]
            if tok.kind == NUMBER:
                out.append(_Edit(tok.start, tok.end, _whole_mask(text[tok.start : tok.end], style), number=True))
            elif tok.body_end > tok.body_start:
                body = text[tok.body_start : tok.body_end]
                out.append(
                    _Edit(tok.body_start, tok.body_end, _whole_mask(body, style), literal=text[tok.start : tok.end])
                )
        ends = [b for _, b in self.detected]
        for tok in reading:
            if tok.body_end <= tok.body_start or tok.start in whole:
                continue
            k = bisect.bisect_right(ends, tok.body_start)  # the first match ending inside or after the body
            detected = k < len(self.detected) and self.detected[k][0] < tok.body_end
            if detected or (self.hinted and tok.kind != NUMBER):
                out += self._body_edits(tok, detected)
        return out

    def _body_edits(self, tok: Token, detected: bool) -> list[_Edit]:
        body = self.text[tok.body_start : tok.body_end]
        if tok.kind == NUMBER:  # a card number typed without quotes: the whole number goes
            spans = masks(body, self.policy.detectors, numeric=True)
            return [_Edit(tok.start, tok.end, spans[0][2], number=True)] if spans else []
        spans = masks(body, self.policy.detectors) if detected else []
        if self.hinted:
            spans += [(a, b, MASK) for a, b in credential_values(body)]
        out = []
        for a, b, rep in spans:
            if tok.kind == COMMENT:  # a mask next to a slash must not open or close a comment
                rep = (" " if rep[0] == "*" and body[a - 1 : a] == "/" else "") + rep
                rep += " " if rep[-1] == "*" and body[b : b + 1] == "/" else ""
            out.append(_Edit(tok.body_start + a, tok.body_start + b, rep))
        return out


def _whole_mask(value: str, style: str) -> str:
    if style == "partial":
        return partial_text(value.encode()).decode("utf-8", "replace")
    return MASK


def _merged(edits: list[_Edit]) -> list[_Edit]:
    """One edit per place; edits of different readings that overlap become one redaction."""
    out: list[_Edit] = []
    for e in sorted(edits, key=lambda e: (e.start, -e.end)):
        last = out[-1] if out else None
        if last is not None and e.start < last.end:
            if (e.start, e.end, e.text) != (last.start, last.end, last.text):
                out[-1] = _Edit(last.start, max(last.end, e.end), MASK, last.number and e.number, last.literal)
            continue
        out.append(e)
    return out


def _place(text: str, edits: list[_Edit], found: list[Reading], limit: int) -> Masked:
    """Apply the edits that lie inside one token's body in every reading; at the first that does
    not, or at `limit`, withhold the rest."""
    bodies = [
        sorted((t.body_start, t.body_end, t.kind) for t in r if t.kind in BODIES and t.body_end > t.body_start)
        for r in found
    ]
    starts = [[b[0] for b in r] for r in bodies]
    done: list[tuple[int, int, str]] = []
    secrets: list[str] = []
    for e in edits:
        if e.start >= limit:
            break
        quote = e.number
        for spans, keys in zip(bodies, starts):
            k = bisect.bisect_right(keys, e.start) - 1
            if k < 0 or spans[k][1] < e.end:
                return _withhold(text, e.start, done, secrets)
            quote = quote and spans[k][2] == NUMBER and spans[k][:2] == (e.start, e.end)
        original = text[e.start : e.end]
        secrets += [s for s in (original, e.literal) if len(s) >= 4]
        done.append((e.start, e.end, f"'{e.text}'" if quote else e.text))
    if limit < len(text):
        return _withhold(text, limit, done, secrets)
    return Masked(_apply(text, done), tuple(secrets))


def _withhold(text: str, at: int, done: Iterable[tuple[int, int, str]], secrets: Sequence[str] = ()) -> Masked:
    """The text up to `at` (with `done` applied), then a note that the rest is withheld."""
    kept = [e for e in done if e[1] <= at]
    rest = text[at:]
    note = f"…[{len(rest)} characters withheld by Hoop: a sensitive value it cannot mask exactly]"
    quoted = re.findall(r"'[^']*'|\"[^\"]*\"", rest)
    return Masked(_apply(text[:at], kept) + note, (*secrets, rest, *quoted))


def _apply(text: str, edits: Iterable[tuple[int, int, str]]) -> str:
    out, pos = [], 0
    for a, b, rep in edits:
        out += [text[pos:a], rep]
        pos = b
    out.append(text[pos:])
    return "".join(out)


# -- shell -----------------------------------------------------------------------------------


def _mask_shell(text: str, policy: _Policy) -> Masked:
    """Detector matches on the raw command line (none of them holds a shell metacharacter),
    private keys only inside one quoted word, and the values of password options."""
    spans = masks(text, policy.detectors, skip=("private_key",))
    if "-----BEGIN " in text:
        for start, end in shell_quoted(text):
            spans += [(start + a, start + b, rep) for a, b, rep in masks(text[start:end], policy.detectors)]
    if first_hint(text) is not None or "://" in text:
        for m in _SHELL_CREDENTIAL.finditer(text):
            g = next(i for i in (1, 2, 3) if m.group(i) is not None)
            if m.end(g) > m.start(g):
                spans.append((m.start(g), m.end(g), MASK))
        spans += [(a, b, MASK) for a, b in credential_values(text)]
    if not spans:
        return Masked(text)
    edits = _merged([_Edit(a, b, rep) for a, b, rep in spans])
    done = [(e.start, e.end, e.text) for e in edits]
    return Masked(_apply(text, done), tuple(text[a:b] for a, b, _ in done if b - a >= 4))


__all__ = ["MASK", "Masked", "StatementMasking", "dialect_of", "mask_free_text", "redact_statement"]
