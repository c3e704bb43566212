"""Rule drafts: TOML text <-> rule body, validation, and what a draft would do.

Pure functions over core (no Textual), so the Rules area and its tests share them.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hoop.core.errors import ConfigError, HoopError
from hoop.core.visible import is_active

if TYPE_CHECKING:
    from hoop.tui.data import Sample


def to_toml(body: dict[str, Any]) -> str:
    """A rule body (flat: strings, numbers, booleans, lists of strings) as TOML lines."""
    lines = []
    for key, value in body.items():
        lines.append(f"{key} = {_value(value)}")
    return "\n".join(lines) + "\n"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    # JSON escapes C0 controls; the other characters that act or hide (C1 controls, bidi and
    # other format characters) are escaped too, so the editor shows them (valid TOML escapes).
    return "".join(_toml_escape(c) if is_active(c) else c for c in json.dumps(str(value), ensure_ascii=False))


def _toml_escape(char: str) -> str:
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


@dataclass
class Draft:
    """A parsed draft: the body to send and the rule object, or the problem to show."""

    body: dict[str, Any] | None = None
    rule: Any = None
    problem: str = ""


def parse_draft(kind: str, text: str) -> Draft:
    from hoop.core.rulebook import parse_rule

    try:
        body = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return Draft(problem=f"TOML: {exc}")
    try:
        rule = parse_rule(kind, body, "draft")
    except (ConfigError, HoopError) as exc:
        return Draft(body=body, problem=str(exc))
    return Draft(body=body, rule=rule)


GUARD_TEMPLATE = {
    "name": "new-rule",
    "action": "review",
    "statements": ["update", "delete"],
    "connections": ["*"],
    "approvers": ["dba"],
    "timeout": "5m",
}
MASK_TEMPLATE = {"name": "new-mask", "columns": ["*.email"], "detectors": ["email"], "style": "partial"}


@dataclass
class GuardPreview:
    checked: int = 0
    hits: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)  # (action, statement row, reason)


def guard_preview(rule: Any, statements: list[dict[str, Any]], groups_of: Any) -> GuardPreview:
    """Which of `statements` (recent, newest first) the draft alone would block or hold."""
    from dataclasses import replace

    from hoop.core.guardrails import Context, RuleSet
    from hoop.core.sql import classify, classify_shell

    rules = RuleSet([replace(rule, enabled=True)])
    out = GuardPreview()
    for row in statements:
        protocol = row.get("protocol")
        try:
            if protocol == "ssh":
                classification = classify_shell(row["text"])
            else:
                classification = classify(row["text"], "mysql" if protocol == "mysql" else "postgres")
            verdict = rules.evaluate(
                classification, Context(row["connection"], row["user"], frozenset(groups_of(row["user"])))
            )
        except Exception as exc:  # a preview must never take the console down
            out.hits.append(("error", row, str(exc)))
            continue
        out.checked += 1
        if verdict.action != "allow":
            out.hits.append((verdict.action, row, verdict.reason))
    return out


def mask_preview(rule: Any, connection: str, sample: str, recorded: Sample) -> tuple[str, list[list[str]]]:
    """The draft applied to a sample value and to recorded result rows: by the columns' recorded
    origins (or names), and through the lineage of the statement they answered."""
    from dataclasses import replace

    from hoop.core.masking import ColumnRef, MaskPolicy
    from hoop.core.rules_test import derived_from_statement, recorded_ref

    policy = MaskPolicy.build(
        [replace(rule, enabled=True, connections=("*",))], connection=connection, groups=frozenset()
    )
    masked_sample = policy.apply_text(sample) if sample else ""
    out: list[list[str]] = []
    rows = recorded.rows[:10]
    if rows:
        width = max(len(r) for r in rows)
        names = (recorded.columns + [""] * width)[:width]
        refs = [recorded_ref(n) or (ColumnRef("", "", n.lower()) if n else None) for n in names]
        dialect = "mysql" if recorded.protocol == "mysql" else "postgres"
        origins = [recorded_ref(n) for n in names]
        plan = policy.plan(refs, derived=derived_from_statement(recorded.statement, dialect, origins))
        for r in rows:
            values = [None if v is None else str(v).encode() for v in r] + [None] * (width - len(r))
            new = plan.apply(values) if plan is not None else None
            final = new if new is not None else values
            out.append(["NULL" if v is None else v.decode("utf-8", "replace") for v in final])
    return masked_sample, out
