"""Control operations that change rules: save, remove, enable, disable (the TUI and the CLI).

`OPERATIONS` is merged into control.py's table of operations. Only admins may change guard and
masking rules; the rule book validates and versions every change, the gateway's rule watcher
applies it within a second, and each change is audited (`rule.save`, `rule.remove`,
`rule.enable`, `rule.disable`) with the new version. Built-in rules are disabled with a
reason, never removed.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hoop.core.config import SHELL_RULE_PREFIX
from hoop.core.errors import ConfigError, HoopError
from hoop.core.guardrails import builtin_rules
from hoop.core.identity import Identity
from hoop.core.roles import NotAllowed
from hoop.core.rulebook import BUILTIN_PREFIX, KINDS, RuleBook, is_builtin, parse_rule, rule_body
from hoop.server.services import Services


def _kind(req: dict[str, Any]) -> str:
    kind = str(req.get("kind", ""))
    if kind not in KINDS:
        raise HoopError(f"kind must be one of {', '.join(KINDS)}")
    return kind


def _admin(services: Services, who: Identity, what: str) -> None:
    roles = services.roles_of(who)
    if not roles.admin:
        held = f"your roles: {', '.join(roles.names)}" if roles.names else "you hold no role"
        raise NotAllowed(f"only admins may {what} ({held})")


def _validated(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    try:
        return rule_body(kind, parse_rule(kind, body))
    except ConfigError as exc:
        raise HoopError(f"invalid rule: {exc}") from None


def _switch(before: dict[str, Any] | None, after: dict[str, Any]) -> str:
    """`rule.enable` / `rule.disable` when only `enabled` changed, else `rule.save`."""
    if before is not None:
        rest = {k: v for k, v in before.items() if k != "enabled"}
        if rest == {k: v for k, v in after.items() if k != "enabled"}:
            on_before, on_after = before.get("enabled", True), after.get("enabled", True)
            if on_before != on_after:
                return "rule.enable" if on_after else "rule.disable"
    return "rule.save"


def _latest_body(book: RuleBook, kind: str, name: str) -> dict[str, Any] | None:
    rows = book.history(kind, name)
    return json.loads(rows[-1]["body"]) if rows and not rows[-1]["deleted"] else None


async def _rules_save(services: Services, who: Identity, req: dict[str, Any]) -> Any:
    kind, body = _kind(req), req.get("body")
    if not isinstance(body, dict):
        raise HoopError("body must be an object (the rule's fields)")
    _admin(services, who, "change rules")
    clean = _validated(kind, body)
    name, reason = str(clean["name"]), str(req.get("reason", "")).strip()
    if is_builtin(kind, name) and name not in {r.name for r in builtin_rules()}:
        raise HoopError(f"the name prefix {BUILTIN_PREFIX!r} is kept for the rules Hoop ships; name the rule otherwise")
    if name.startswith(SHELL_RULE_PREFIX):
        raise HoopError(
            f"the name prefix {SHELL_RULE_PREFIX!r} is kept for connections' shell approvers; name the rule otherwise"
        )
    if is_builtin(kind, name) and clean.get("enabled", True) is False and not reason:
        raise HoopError(f"a reason is required to disable the built-in rule {name}")
    book = RuleBook(services.store)
    before = await asyncio.to_thread(_latest_body, book, kind, name)
    version = await asyncio.to_thread(book.save, kind, clean, who.name)
    action = _switch(before, clean)
    detail: dict[str, Any] = {"kind": kind, "version": version, "body": clean}
    if reason:
        detail["reason"] = reason
    services.journal.audit(who.name, action, f"{kind}:{name}", **detail)
    return {"kind": kind, "name": name, "version": version}


async def _rules_remove(services: Services, who: Identity, req: dict[str, Any]) -> Any:
    kind, name = _kind(req), str(req.get("name", ""))
    _admin(services, who, "change rules")
    if is_builtin(kind, name):
        raise NotAllowed(f"built-in rules can be disabled, not removed: hoop rules disable guard {name} --reason ...")
    version = await asyncio.to_thread(RuleBook(services.store).remove, kind, name, who.name)
    services.journal.audit(who.name, "rule.remove", f"{kind}:{name}", kind=kind, version=version)
    return {"kind": kind, "name": name, "version": version}


def _switcher(enabled: bool) -> Any:
    async def switch(services: Services, who: Identity, req: dict[str, Any]) -> Any:
        kind, name = _kind(req), str(req.get("name", ""))
        reason = str(req.get("reason", "")).strip()
        _admin(services, who, "change rules")
        try:
            version = await asyncio.to_thread(
                RuleBook(services.store).set_enabled, kind, name, enabled, who.name, reason
            )
        except ConfigError as exc:
            raise HoopError(f"invalid rule: {exc}") from None
        action = "rule.enable" if enabled else "rule.disable"
        services.journal.audit(who.name, action, f"{kind}:{name}", kind=kind, version=version, reason=reason)
        return {"kind": kind, "name": name, "version": version, "enabled": enabled}

    return switch


OPERATIONS = {
    "rules.save": _rules_save,
    "rules.remove": _rules_remove,
    "rules.enable": _switcher(True),
    "rules.disable": _switcher(False),
}
