"""Control operations the TUI needs beyond approve/deny/kill: saving and removing rules.

`OPERATIONS` is merged into control.py's table of operations. Only approvers may change rules;
the rule book validates and versions every change, the gateway's rule watcher applies it
within a second, and each change is audited with the new version.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hoop.core.errors import ConfigError, HoopError
from hoop.core.identity import Identity
from hoop.core.rulebook import KINDS, RuleBook
from hoop.server.services import Services


def _kind(req: dict[str, Any]) -> str:
    kind = str(req.get("kind", ""))
    if kind not in KINDS:
        raise HoopError(f"kind must be one of {', '.join(KINDS)}")
    return kind


def _approver(services: Services, who: Identity, what: str) -> None:
    if not services.is_approver(who):
        raise HoopError(f"only members of an approver group may {what}")


async def _rules_save(services: Services, who: Identity, req: dict[str, Any]) -> Any:
    kind, body = _kind(req), req.get("body")
    if not isinstance(body, dict):
        raise HoopError("body must be an object (the rule's fields)")
    _approver(services, who, "change rules")
    try:
        version = await asyncio.to_thread(RuleBook(services.store).save, kind, body, who.name)
    except ConfigError as exc:
        raise HoopError(f"invalid rule: {exc}") from None
    services.journal.audit(who.name, "rule.save", f"{kind}:{body.get('name')}", kind=kind, version=version, body=body)
    return {"kind": kind, "name": body.get("name"), "version": version}


async def _rules_remove(services: Services, who: Identity, req: dict[str, Any]) -> Any:
    kind, name = _kind(req), str(req.get("name", ""))
    _approver(services, who, "change rules")
    version = await asyncio.to_thread(RuleBook(services.store).remove, kind, name, who.name)
    services.journal.audit(who.name, "rule.remove", f"{kind}:{name}", kind=kind, version=version)
    return {"kind": kind, "name": name, "version": version}


OPERATIONS = {"rules.save": _rules_save, "rules.remove": _rules_remove}
