"""`[[rules]]` entries of a gateway config, written from Python values."""

from __future__ import annotations

import json
from collections.abc import Iterable

from hoop.core.guardrails import GuardRule, rule_to_mapping


def toml_value(value: object) -> str:
    return json.dumps(value)  # TOML accepts JSON strings, numbers, booleans and arrays of them


def rule_toml(name: str, action: str = "block", **fields: object) -> str:
    """One `[[rules]]` entry: `rule_toml("no-drop", statements=["drop"])`."""
    body = {"name": name, "action": action, **fields}
    return "\n[[rules]]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in body.items())


def rules_toml(rules: Iterable[GuardRule]) -> str:
    """The entries of `rules`, each with the fields that differ from the defaults."""
    return "".join(rule_toml(**rule_to_mapping(rule)) for rule in rules)
