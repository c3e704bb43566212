"""Guardrail and masking rules, versioned in the store.

Every change is a new row (kind, name, version, body, author, time); nothing is updated in
place, so the history of a rule is its rows. `hoop.toml` seeds the book: a config rule is
written as a new version when its body differs from the latest version that came from the
config file. A rule last changed by a person (CLI or TUI) is left alone, so an edit made in
production is not silently undone by a restart; the gateway logs that it kept it.
Built-in rules (`builtin-*`) are part of the product: they can be disabled (with a reason) and
enabled again, never removed; one found deleted in the book is restored at start.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from hoop.core.errors import ConfigError, HoopError
from hoop.core.guardrails import GuardRule, builtin_rules, rule_from_mapping, rule_to_mapping
from hoop.core.masking import MaskRule, mask_rule_from_mapping, mask_rule_to_mapping
from hoop.core.store.base import Store, Tx

log = logging.getLogger("hoop.rules")
CONFIG_AUTHOR = "hoop.toml"
BUILTIN_AUTHOR = "builtin"
KINDS = ("guard", "mask")
BUILTIN_PREFIX = "builtin-"


def is_builtin(kind: str, name: str) -> bool:
    """A rule the product ships (hoop.core.guardrails.builtin_rules): disabled, never removed."""
    return kind == "guard" and name.startswith(BUILTIN_PREFIX)


def parse_rule(kind: str, body: dict[str, Any], where: str = "rule", *, stored: bool = False) -> Any:
    """`stored`: a rule already in the book, saved before its statement kinds were checked; an
    unknown kind in it matches nothing, and the rest of the rule keeps applying."""
    if kind == "guard":
        return rule_from_mapping(body, file=where, key="rule", check_kinds=not stored, stored=stored)
    if kind == "mask":
        return mask_rule_from_mapping(body, file=where, key="masking")
    raise HoopError(f"unknown rule kind {kind!r} (expected guard or mask)")


def rule_body(kind: str, rule: Any) -> dict[str, Any]:
    return rule_to_mapping(rule) if kind == "guard" else mask_rule_to_mapping(rule)


def _canonical(body: dict[str, Any]) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


class RuleBook:
    def __init__(self, store: Store) -> None:
        self.store = store

    # -- reading ---------------------------------------------------------------------------

    def latest_rows(self, include_deleted: bool = False) -> list[dict[str, Any]]:
        rows = self.store.query(_LATEST)
        return [r for r in rows if include_deleted or not r["deleted"]]

    def current(self) -> tuple[list[GuardRule], list[MaskRule]]:
        guards: list[GuardRule] = []
        masks: list[MaskRule] = []
        for row in self.latest_rows():
            try:
                where = f"stored rule {row['name']} v{row['version']}"
                rule = parse_rule(row["kind"], json.loads(row["body"]), where, stored=True)
            except ConfigError as exc:  # a bad stored rule must not disable every other rule
                log.error("skipping invalid stored rule: %s", exc)
                continue
            (guards if row["kind"] == "guard" else masks).append(rule)
        return guards, masks

    def marker(self) -> int:
        row = self.store.one("SELECT coalesce(max(id), 0) AS m FROM rules")
        return int(row["m"]) if row else 0

    def history(self, kind: str, name: str) -> list[dict[str, Any]]:
        return self.store.query("SELECT * FROM rules WHERE kind = ? AND name = ? ORDER BY version", (kind, name))

    # -- writing ---------------------------------------------------------------------------

    def save(self, kind: str, body: dict[str, Any], author: str) -> int:
        """Validate and store a new version; returns the version number."""
        rule = parse_rule(kind, body)
        return self._write(kind, rule.name, rule_body(kind, rule), author, deleted=False)

    def remove(self, kind: str, name: str, author: str) -> int:
        latest = self._latest(kind, name)
        if is_builtin(kind, name):
            raise HoopError(
                f"built-in rules can be disabled, not removed: hoop rules disable guard {name} --reason ..."
            )
        return self._write(kind, name, json.loads(latest["body"]), author, deleted=True)

    def set_enabled(self, kind: str, name: str, enabled: bool, author: str, reason: str = "") -> int:
        """Switch a rule on or off (a new version); a built-in rule is switched off only with a reason."""
        latest = self._latest(kind, name)
        if not enabled and is_builtin(kind, name) and not reason.strip():
            raise HoopError(f"a reason is required to disable the built-in rule {name}")
        body = json.loads(latest["body"])
        body["enabled"] = enabled
        return self.save(kind, body, author)

    def _latest(self, kind: str, name: str) -> dict[str, Any]:
        latest = self.store.one(
            "SELECT * FROM rules WHERE kind = ? AND name = ? ORDER BY version DESC LIMIT 1", (kind, name)
        )
        if latest is None or latest["deleted"]:
            raise HoopError(f"no {kind} rule named {name!r}")
        return latest

    def _write(self, kind: str, name: str, body: dict[str, Any], author: str, *, deleted: bool) -> int:
        with self.store.transaction() as conn:
            conn.lock_rules()  # two admins saving through two gateways get one version each
            return _add_version(conn, kind, name, body, author, deleted=deleted)

    def seed(self, config_guards: list[GuardRule], config_masks: list[MaskRule], builtins: bool) -> list[str]:
        """Bring the book in line with hoop.toml; returns a line per change for the audit."""
        wanted: list[tuple[str, Any, str]] = [("guard", r, CONFIG_AUTHOR) for r in config_guards]
        wanted += [("mask", r, CONFIG_AUTHOR) for r in config_masks]
        configured = {r.name for r in config_guards}
        switched_off: list[str] = []
        for rule in builtin_rules():
            if rule.name in configured:
                continue
            if builtins:
                wanted.append(("guard", rule, BUILTIN_AUTHOR))
            else:
                switched_off.append(rule.name)
        # One transaction under the rule book's lock: gateways starting together on a shared
        # store seed it once, the later one finding the earlier one's rows already there.
        with self.store.transaction() as conn:
            conn.lock_rules()
            return self._seed(conn, wanted, switched_off)

    def _seed(self, conn: Tx, wanted: list[tuple[str, Any, str]], switched_off: list[str]) -> list[str]:
        changes: list[str] = []
        latest = {(r["kind"], r["name"]): r for r in conn.execute(_LATEST).fetchall()}
        for name in switched_off:
            current = latest.get(("guard", name))
            if current is not None and not current["deleted"] and current["author"] == BUILTIN_AUTHOR:
                _add_version(conn, "guard", name, json.loads(current["body"]), BUILTIN_AUTHOR, deleted=True)
                changes.append(f"disabled builtin {name}")
        for kind, rule, author in wanted:
            current = latest.get((kind, rule.name))
            body = rule_body(kind, rule)
            # A built-in rule is never deleted by a person (it can be disabled); one found deleted
            # was removed before that was enforced, and comes back.
            restore = author == BUILTIN_AUTHOR and current is not None and current["deleted"]
            if current is not None and current["author"] not in (CONFIG_AUTHOR, BUILTIN_AUTHOR) and not restore:
                if _canonical(body) != current["body"]:
                    log.warning(
                        "rule %s was last changed by %s; keeping it over %s", rule.name, current["author"], author
                    )
                continue
            if current is None or current["deleted"] or _canonical(body) != current["body"]:
                version = _add_version(conn, kind, rule.name, body, author, deleted=False)
                changes.append(f"{kind} {rule.name} v{version}")
        return changes


_LATEST = (
    "SELECT r.* FROM rules r JOIN (SELECT kind, name, max(version) AS v FROM rules GROUP BY kind, name) m "
    "ON r.kind = m.kind AND r.name = m.name AND r.version = m.v ORDER BY r.kind, r.id"
)


def _add_version(conn: Tx, kind: str, name: str, body: dict[str, Any], author: str, *, deleted: bool) -> int:
    row = conn.execute(
        "SELECT coalesce(max(version), 0) AS v FROM rules WHERE kind = ? AND name = ?", (kind, name)
    ).fetchone()
    version = int(row["v"]) + 1
    conn.execute(
        "INSERT INTO rules(kind, name, version, body, author, created, deleted) VALUES (?,?,?,?,?,?,?)",
        (kind, name, version, _canonical(body), author, time.time(), int(deleted)),
    )
    return version
