"""Guardrail rules -> Verdict (allow / block / review). Pure: no I/O, no clock.

A rule applies to a request when it is enabled, its `connections` globs match the connection and
(if it names `groups`) the user is in one of them, and it speaks the request's language: rules
with `commands` (or statements "command ...") are SSH rules, rules with SQL criteria are SQL
rules, rules with no criteria at all apply to both. Every executed statement, nested ones
included, is checked; block beats review beats allow. Fail closed: a parse error blocks whenever
any rule applies, and a statement whose effect is unknown (`dynamic`) gets each applicable
rule's `dynamic` mode. Build a `RuleSet` once and call `RuleSet.evaluate` on the hot path.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any, Literal

from .command_patterns import CommandPattern, unexpanded
from .durations import bounded
from .errors import ConfigError
from .sql.kinds import kinds_text, known_statement
from .sql.model import Classification, Statement

Action = Literal["block", "review"]
KNOWN_FLAGS = frozenset(
    {"server_file", "program", "password_change", "password_hash_read", "local_infile", "other_sessions"}
)
_FLAG_TEXT = {
    "other_sessions": "reaches other sessions of the shared database account",
    "server_file": "touches files on the database server",
    "program": "runs a program on the database server",
    "password_change": "sets a password",
    "password_hash_read": "reads password hashes",
    "local_infile": "reads a local file into the server",
}
# The built-in rule against reaching other sessions of the shared upstream account. The MySQL
# door maps a plain `KILL <gateway id>` to the user's own session, which this rule does not cover.
OTHER_SESSIONS_RULE = "builtin-other-sessions"
_NAMED_OBJECTS = frozenset({"prepare", "execute", "deallocate", "set", "reset", "use", "call", "show"})
_SEVERITY = {"allow": 0, "review": 1, "block": 2}


@dataclass(frozen=True)
class GuardRule:
    name: str
    action: Action
    statements: tuple[str, ...] = ()
    where: Literal["any", "missing", "missing-or-trivial"] = "any"
    tables: tuple[str, ...] = ()
    functions: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()
    connections: tuple[str, ...] = ("*",)
    groups: tuple[str, ...] = ()
    approvers: tuple[str, ...] = ()
    approvals: int = 1
    timeout: float = 300.0
    dynamic: Literal["block", "review", "allow"] = "block"
    enabled: bool = True
    description: str = ""


@dataclass(frozen=True)
class Context:
    connection: str
    user: str
    groups: frozenset[str]


@dataclass(frozen=True)
class Verdict:
    action: Literal["allow", "block", "review"]
    rule: GuardRule | None
    reason: str
    syntax: bool = False  # the text is not valid SQL: answer as the server would (reason = its message)
    position: int | None = None  # 1-based character position of a syntax error, when known


ALLOW = Verdict("allow", None, "no guardrail applies")

# ---- TOML / DB mapping ----

_LIST_FIELDS = (
    "statements",
    "tables",
    "functions",
    "flags",
    "commands",
    "connections",
    "groups",
    "approvers",
)
_CHOICES = {
    "action": ("block", "review"),
    "where": ("any", "missing", "missing-or-trivial"),
    "dynamic": ("block", "review", "allow"),
}
MAX_HOLD = 86400.0  # the longest a held statement may wait for a decision (a rule's `timeout`)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> float | None:
    """Seconds from 300, 300.0, "300", "5m", "30s", "1h", "1h30m"; None when not a duration."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(f"{n}{u}" for n, u in parts) != text.replace(" ", ""):
        return None
    return sum(float(n) * _UNITS[u] for n, u in parts)


def rule_from_mapping(
    data: Mapping[str, Any], *, file: str, key: str, check_kinds: bool = True, stored: bool = False
) -> GuardRule:
    """Validate one TOML table into a GuardRule; the rule's name defaults to the table's last key part.
    `check_kinds`: refuse a `statements` entry that matches no statement kind (off only for rules
    already stored, so a rule saved before the check keeps its other entries in force).
    `stored`: a rule already in the book; one that holds statements without naming approvers
    still loads (its requests are decided by nobody and expire) instead of being dropped."""
    known = {f.name for f in fields(GuardRule)}
    values: dict[str, object] = {}
    for field_name, raw in data.items():
        where = f"{key}.{field_name}"
        if field_name not in known:
            raise ConfigError(file, where, f"unknown key; expected one of {', '.join(sorted(known))}")
        if field_name in _LIST_FIELDS:
            items = [s.strip() for s in raw.split(",")] if isinstance(raw, str) else raw
            if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) and i.strip() for i in items):
                raise ConfigError(file, where, "expected a list of non-empty strings")
            items = [" ".join(i.split()) for i in items]
            if field_name in ("statements", "tables", "functions", "flags"):
                items = [i.lower() for i in items]
            if field_name == "flags" and (bad := [i for i in items if i not in KNOWN_FLAGS]):
                raise ConfigError(file, where, f"expected flags among {', '.join(sorted(KNOWN_FLAGS))}, got {bad}")
            if field_name == "statements" and check_kinds and (bad := [i for i in items if not known_statement(i)]):
                raise ConfigError(
                    file,
                    where,
                    f"unknown statement kind {', '.join(repr(b) for b in bad)}: expected a kind, "
                    f'"kind object" (such as "drop table") or a glob matching one; kinds: {kinds_text()}',
                )
            values[field_name] = tuple(items)
        elif field_name in _CHOICES:
            if raw not in _CHOICES[field_name]:
                raise ConfigError(file, where, f"expected one of {', '.join(_CHOICES[field_name])}")
            values[field_name] = raw
        elif field_name == "approvals":
            if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
                raise ConfigError(file, where, "expected an integer >= 1")
            values[field_name] = raw
        elif field_name == "timeout":
            seconds = parse_duration(raw)
            if seconds is None:
                raise ConfigError(file, where, 'expected a positive duration such as 30, "30s", "5m" or "1h"')
            try:  # a hold waits at most MAX_HOLD; inf or NaN would hold (or never time out) for ever
                values[field_name] = bounded(seconds, MAX_HOLD, what="timeout")
            except ValueError as exc:
                if check_kinds:
                    raise ConfigError(file, where, str(exc)) from None
                # A rule stored before timeouts were bounded stays in force (skipping it would
                # let its statements through unreviewed); its holds wait at most MAX_HOLD.
                values[field_name] = MAX_HOLD
        elif field_name == "enabled":
            if not isinstance(raw, bool):
                raise ConfigError(file, where, "expected true or false")
            values[field_name] = raw
        elif not isinstance(raw, str) or (field_name == "name" and not raw.strip()):
            raise ConfigError(
                file,
                where,
                "expected a non-empty string" if field_name == "name" else "expected a string",
            )
        else:
            values[field_name] = raw.strip() if field_name == "name" else raw
    if "name" not in values:
        # [guardrails.no-drop] names itself; an entry of an array ([[rules]] -> "rules[0]") cannot.
        if key.endswith("]"):
            raise ConfigError(file, f"{key}.name", "expected a non-empty string (missing)")
        values["name"] = key.rsplit(".", 1)[-1]
    if "action" not in values:
        raise ConfigError(file, f"{key}.action", "expected one of block, review (missing)")
    holds = values["action"] == "review" or values.get("dynamic") == "review"
    if holds and not values.get("approvers") and not stored:
        # A held statement nobody may decide would only ever expire; one anybody may decide
        # would be no review at all. Either way the rule is wrong, so say so at start.
        raise ConfigError(
            file,
            f"{key}.approvers",
            f"rule {values['name']} holds statements for review but names no approvers: "
            'add approvers = ["group", ...] (the groups whose members decide its requests)',
        )
    return GuardRule(**values)  # type: ignore[arg-type]


def rule_to_mapping(rule: GuardRule) -> dict[str, Any]:
    """The inverse of rule_from_mapping: name and action always, other fields when not the default."""
    out: dict[str, object] = {}
    for f in fields(GuardRule):
        value = getattr(rule, f.name)
        if f.name in ("name", "action") or value != f.default:
            out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def builtin_rules() -> list[GuardRule]:
    """Defaults for a new install; config can switch each off by name (enabled = false)."""
    return [
        GuardRule(
            "builtin-password-hash-read",
            "block",
            flags=("password_hash_read",),
            description="Reading password hashes (pg_authid, pg_shadow, user mappings, mysql.user).",
        ),
        GuardRule(
            "builtin-password-change",
            "block",
            flags=("password_change",),
            description="Setting role/user passwords through the gateway.",
        ),
        GuardRule(
            "builtin-server-files",
            "block",
            flags=("server_file", "program", "local_infile"),
            description="Reading or writing files, or running programs, on the database server.",
        ),
        GuardRule(
            OTHER_SESSIONS_RULE,
            "block",
            flags=("other_sessions",),
            description=(
                "Seeing or ending other sessions of the shared upstream account (pg_stat_activity, "
                "pg_terminate_backend, MySQL KILL, SHOW PROCESSLIST)."
            ),
        ),
    ]


# ---- evaluation ----


def _glob_regex(globs: Sequence[str]) -> re.Pattern[str] | None:
    return re.compile("|".join(fnmatch.translate(g) for g in globs)) if globs else None


class _Compiled:
    """One rule with its matchers built once."""

    def __init__(self, rule: GuardRule) -> None:
        self.rule = rule
        self.statements = _glob_regex(rule.statements)
        self.tables = _glob_regex(rule.tables)
        self.functions = _glob_regex(rule.functions)
        self.flags = frozenset(rule.flags)
        self.commands = tuple(CommandPattern.parse(p) for p in rule.commands) or None
        self.connections = _glob_regex(rule.connections)
        self.groups = frozenset(rule.groups)
        self.where = {
            "any": None,
            "missing": {"missing"},
            "missing-or-trivial": {"missing", "trivial"},
        }[rule.where]
        shell = bool(rule.commands) or any(s.startswith("command") for s in rule.statements)
        sql = (
            rule.where != "any"
            or bool(rule.tables or rule.functions or rule.flags)
            or any(not s.startswith("command") for s in rule.statements)
        )
        self.domains = ({"shell"} if shell else set()) | ({"sql"} if sql else set()) or {
            "shell",
            "sql",
        }

    def applies(self, ctx: Context) -> bool:
        if not self.rule.enabled or self.connections is None or not self.connections.fullmatch(ctx.connection):
            return False
        return not self.groups or bool(self.groups & ctx.groups)

    def matches(self, stmt: Statement) -> bool | None:
        """Whether the rule matches `stmt`; None when only words the shell still expands could
        make a command rule match (the rule's `dynamic` mode then decides)."""
        if self.statements is not None:
            full = f"{stmt.kind} {stmt.object}".strip()
            if not (self.statements.fullmatch(stmt.kind) or self.statements.fullmatch(full)):
                return False
        if self.where is not None and stmt.where not in self.where:
            return False
        if self.tables is not None and not _any_name(self.tables, stmt.tables):
            return False
        if self.functions is not None and not _any_name(self.functions, stmt.functions):
            return False
        if self.flags and not (self.flags & stmt.flags):
            return False
        if self.commands is not None:
            if stmt.kind != "command":
                return False
            argv = stmt.argv or tuple(stmt.text.split())
            program = stmt.object or os.path.basename(argv[0]) if argv else ""
            unknown = False
            for pattern in self.commands:
                hit = pattern.matches(program, argv)
                if hit:
                    return True
                unknown = unknown or hit is None
            return None if unknown else False
        return True


def _why_unknown(stmt: Statement) -> str:
    if stmt.why_dynamic:
        return stmt.why_dynamic
    word = next((w for w in stmt.argv[1:] if unexpanded(w)), "")
    return f"`{word}` is expanded by the shell (variable, substitution, glob or brace)" if word else ""


def _any_name(pattern: re.Pattern[str], names: frozenset[str]) -> bool:
    """A glob matches "schema.table" or its unqualified part."""
    return any(pattern.fullmatch(n) or pattern.fullmatch(n.rsplit(".", 1)[-1]) for n in names)


def _describe(stmt: Statement) -> str:
    if stmt.kind == "command":
        return f"command `{stmt.text}`"
    kind = stmt.kind.replace("_", " ").upper()
    if stmt.kind in _NAMED_OBJECTS:  # the object is a user's name (prepared statement, variable...)
        return f"{kind} {stmt.object}".strip()
    return f"{kind} {stmt.object.upper()}".strip()


def _reason(c: _Compiled, stmt: Statement, verb: str) -> str:
    what = _describe(stmt)
    if c.where is not None:
        what += " without a WHERE clause" if stmt.where == "missing" else " with an always-true WHERE clause"
    hit = sorted(c.flags & stmt.flags)
    if hit:
        what += " that " + " and ".join(_FLAG_TEXT.get(f, f) for f in hit)
    return f"rule {c.rule.name} {verb} {what}"


def _verb(action: str) -> str:
    return "blocks" if action == "block" else "requires review for"


class RuleSet:
    """Rules compiled once; `evaluate` is the hot path."""

    def __init__(self, rules: Sequence[GuardRule]) -> None:
        # Built-in rules are checked after the configured ones: when both block a statement, the
        # refusal names the rule someone wrote for it (the MySQL door relies on this for KILL).
        ordered = sorted((r for r in rules if r.enabled), key=lambda r: r.name.startswith("builtin-"))
        self._rules = [_Compiled(r) for r in ordered]
        self._ctx_cache: dict[tuple[str, frozenset[str]], list[_Compiled]] = {}

    def _applicable(self, ctx: Context, domain: str) -> list[_Compiled]:
        key = (ctx.connection, ctx.groups)
        rules = self._ctx_cache.get(key)
        if rules is None:
            rules = [c for c in self._rules if c.applies(ctx)]
            if len(self._ctx_cache) > 1024:
                self._ctx_cache.clear()
            self._ctx_cache[key] = rules
        return [c for c in rules if domain in c.domains]

    def evaluate(self, classification: Classification, ctx: Context) -> Verdict:
        domain = (
            "shell"
            if classification.dialect == "shell"
            or (
                not classification.dialect
                and classification.statements
                and all(s.kind == "command" for s in classification.statements)
            )
            else "sql"
        )
        rules = self._applicable(ctx, domain)
        if not rules:
            return ALLOW
        if classification.error is not None:
            if classification.syntax:  # the server would refuse it too: no rule is involved
                return Verdict("block", None, classification.error, syntax=True, position=classification.error_at)
            first = next((c for c in rules if c.rule.action == "block"), rules[0])
            return Verdict(
                "block",
                first.rule,
                f"could not parse the statement ({classification.error}); "
                f"blocked because rule {first.rule.name} applies",
            )
        # A rule that matches a statement outranks one that only applies its `dynamic` mode to
        # an unknowable one at the same severity: the refusal names the rule that matched.
        best = unknown = ALLOW
        for stmt in classification.walk(executed_only=True):
            for c in rules:
                worse_unknown = _SEVERITY[c.rule.dynamic] > _SEVERITY[unknown.action]
                worse_match = _SEVERITY[c.rule.action] > _SEVERITY[best.action]
                if not (worse_match or (worse_unknown and not stmt.dynamic)):
                    hit: bool | None = False  # nothing this rule could change hangs on the match
                else:
                    hit = c.matches(stmt)
                if (stmt.dynamic or hit is None) and worse_unknown:
                    why = _why_unknown(stmt)
                    unknown = Verdict(
                        c.rule.dynamic,
                        c.rule,
                        f"rule {c.rule.name} {_verb(c.rule.dynamic)} "
                        f"{_describe(stmt)}: its effect cannot be known before it runs" + (f" ({why})" if why else ""),
                    )
                if worse_match and hit:
                    best = Verdict(c.rule.action, c.rule, _reason(c, stmt, _verb(c.rule.action)))
                    if best.action == "block":
                        return best
        return unknown if _SEVERITY[unknown.action] > _SEVERITY[best.action] else best


@lru_cache(maxsize=64)
def _ruleset(rules: tuple[GuardRule, ...]) -> RuleSet:
    return RuleSet(rules)


def evaluate(rules: Sequence[GuardRule], classification: Classification, ctx: Context) -> Verdict:
    """Convenience wrapper; callers on a hot path should keep a RuleSet."""
    return _ruleset(tuple(rules)).evaluate(classification, ctx)
