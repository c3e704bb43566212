"""The `[[masking]]` rule: its fields and the TOML/store mapping (validated, key-naming errors)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hoop.core.detectors import DETECTOR_NAMES, DETECTORS, STYLES, Style
from hoop.core.errors import ConfigError


@dataclass(frozen=True)
class MaskRule:
    name: str
    columns: tuple[str, ...] = ()
    detectors: tuple[str, ...] = ()
    style: Style = "redact"
    exempt: tuple[str, ...] = ()
    connections: tuple[str, ...] = ("*",)
    max_rows: int | None = None
    max_bytes: int | None = None
    enabled: bool = True
    # A result column whose sources cannot be followed (hoop/core/lineage.py): "mask" it whole
    # in this rule's style, or "block" the result.
    on_unknown: str = "mask"


ON_UNKNOWN = ("mask", "block")


# --- TOML mapping -----------------------------------------------------------------------------

_LIST_KEYS = ("columns", "detectors", "exempt", "connections")
_KEYS = ("name", "style", "max_rows", "max_bytes", "enabled", "on_unknown", *_LIST_KEYS)


def mask_rule_from_mapping(data: Mapping[str, Any], *, file: str, key: str) -> MaskRule:
    """Validate one `[[masking]]` table; every error names `key.<field>`."""
    if not isinstance(data, Mapping):
        raise ConfigError(file, key, "expected a table")
    for k in data:
        if k not in _KEYS:
            expected = ", ".join(_KEYS)
            raise ConfigError(file, f"{key}.{k}", f"unknown key; expected one of {expected}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(file, f"{key}.name", "expected a non-empty string")
    lists: dict[str, tuple[str, ...]] = {}
    for k in _LIST_KEYS:
        value = data.get(k, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(file, f"{key}.{k}", "expected a list of non-empty strings")
        lists[k] = tuple(value)
    columns = tuple(c.lower() for c in lists["columns"])
    for c in columns:
        if c.count(".") > 2:
            raise ConfigError(file, f"{key}.columns", f"{c!r}: use at most schema.table.column")
    for d in lists["detectors"]:
        if d not in DETECTORS:
            expected = ", ".join(DETECTOR_NAMES)
            problem = f"unknown detector {d!r}; expected {expected}"
            raise ConfigError(file, f"{key}.detectors", problem)
    style = data.get("style", "redact")
    if style not in STYLES:
        raise ConfigError(file, f"{key}.style", f"expected one of {', '.join(STYLES)}")
    limits: dict[str, int | None] = {}
    for k in ("max_rows", "max_bytes"):
        v = data.get(k)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise ConfigError(file, f"{key}.{k}", "expected a positive integer")
        limits[k] = v
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(file, f"{key}.enabled", "expected true or false")
    on_unknown = data.get("on_unknown", "mask")
    if on_unknown not in ON_UNKNOWN:
        raise ConfigError(file, f"{key}.on_unknown", f"expected one of {', '.join(ON_UNKNOWN)}, got {on_unknown!r}")
    if not columns and not lists["detectors"] and limits["max_rows"] is limits["max_bytes"] is None:
        raise ConfigError(file, f"{key}.columns", "a rule needs columns, detectors or a limit")
    connections = lists["connections"] if "connections" in data else ("*",)
    if not connections:
        raise ConfigError(file, f"{key}.connections", "expected at least one connection pattern")
    return MaskRule(
        name=name, columns=columns, detectors=lists["detectors"], style=style,
        exempt=lists["exempt"], connections=connections, max_rows=limits["max_rows"],
        max_bytes=limits["max_bytes"], enabled=enabled, on_unknown=on_unknown,
    )  # fmt: skip


def mask_rule_to_mapping(rule: MaskRule) -> dict[str, Any]:
    """The TOML table for a rule (limits omitted when unset: TOML has no null)."""
    out: dict[str, Any] = {"name": rule.name}
    for k in _LIST_KEYS:
        out[k] = list(getattr(rule, k))
    out["style"] = rule.style
    out["enabled"] = rule.enabled
    if rule.on_unknown != "mask":
        out["on_unknown"] = rule.on_unknown
    for k in ("max_rows", "max_bytes"):
        if getattr(rule, k) is not None:
            out[k] = getattr(rule, k)
    return out


# --- policy -----------------------------------------------------------------------------------
