"""Reload hoop.toml into the running gateway (SIGHUP, `hoop reload`).

The file is read and validated exactly as `hoop serve` reads it (secrets resolved, every key
checked). A file that does not load is refused: the error is logged and audited, and the
running configuration stays. A file that loads is swapped in as one new `Config` object in
one step on the event loop, so a login sees either the old configuration or the new one,
never a mix:

- users, groups, connections, [roles] and [limits] apply to logins from then on. An open
  session keeps the connection (target, credentials, options) it was opened with, and an
  identity it logged in as; removing a user refuses that user's new logins only.
- [[rules]] and [[masking]] go into the rule book as at start; the rule set then in force
  judges every statement from then on, in open sessions too (as a change made with
  `hoop rules` does): a new block rule must not wait for sessions to end.
- [gateway], [listen] and [auth] are read once at start (addresses, data_dir, keys, the
  OIDC provider): a change there is reported as needing a restart and left as it is.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from hoop.core.config import Config, load_config
from hoop.core.errors import HoopError
from hoop.core.oidc import authenticators_for
from hoop.core.rulebook import RuleBook
from hoop.server.services import Services

log = logging.getLogger("hoop.gateway")

# Config fields that only a restart applies, with the table they come from.
RESTART_ONLY = {"gateway": "[gateway]", "listen": "[listen]", "oidc": "[auth]", "notify": "[[notify]]"}


class ReloadRefused(HoopError):
    """The file could not be applied; the running configuration is unchanged."""


def reload_config(services: Services, rulebook: RuleBook, actor: str = "gateway") -> dict[str, Any]:
    """Load, validate and apply the config file; what changed, or ReloadRefused saying why."""
    old = services.config
    try:
        new = load_config(old.path)
        guards, masks = _rules_of(new, rulebook)
    except HoopError as exc:
        why = str(exc)
        log.error("config reload refused, keeping the running configuration: %s", why)
        services.journal.audit(actor, "config.reload_refused", str(old.path), why=why)
        raise ReloadRefused(f"config reload refused, the running configuration stays: {why}") from None
    needs_restart = restart_only_changes(old, new)
    applied = replace(new, gateway=old.gateway, listen=old.listen, oidc=old.oidc)
    changes = describe_changes(old, applied)
    _swap(services, applied)
    services.pipeline.set_rules(guards, masks)
    outcome = {"changed": changes, "needs_restart": needs_restart}
    services.journal.audit(actor, "config.reload", str(old.path), **outcome)
    log.info(
        "config reloaded: %s%s",
        "; ".join(changes) or "no change",
        f"; {', '.join(needs_restart)} changed and needs a restart (left as it is)" if needs_restart else "",
    )
    return outcome


def restart_only_changes(old: Config, new: Config) -> list[str]:
    """What differs in settings only a restart applies."""
    changed = [table for name, table in RESTART_ONLY.items() if getattr(new, name) != getattr(old, name)]
    # The MySQL door decides at start whether it offers LOCAL INFILE to its clients at all.
    if _local_infile(new) and not _local_infile(old):
        changed.append("allow_local_infile (the MySQL door offers LOCAL INFILE only when started with it)")
    return changed


def _local_infile(config: Config) -> bool:
    return any(c.type == "mysql" and c.allow_local_infile for c in config.connections)


def _rules_of(config: Config, rulebook: RuleBook) -> tuple[list[Any], list[Any]]:
    """Seed the rule book from the file as `hoop serve` does; the rules now in force."""
    rulebook.seed(list(config.rules), list(config.masking), config.gateway.builtin_rules)
    guards, masks = rulebook.current()
    return list(guards), list(masks)


def _swap(services: Services, config: Config) -> None:
    """Point every reader of the configuration at `config`; no await in between."""
    services.config = config
    services.tokens.config = config
    services.authenticators = authenticators_for(config, services.store, services.journal.audit, services.tokens)
    services.approvals.pending_per_user = config.limits.pending_approvals_per_user
    services.limiter.reconfigure(config.limits)


def describe_changes(old: Config, new: Config) -> list[str]:
    """One line per thing that differs (names only, never a secret)."""
    lines: list[str] = []
    lines += _named_diff("user", old.users, new.users)
    lines += _named_diff("connection", old.connections, new.connections)
    lines += _named_diff("rule", old.rules, new.rules)
    lines += _named_diff("masking rule", old.masking, new.masking)
    if old.roles != new.roles:
        lines.append("[roles] changed")
    if old.limits != new.limits:
        lines.append("[limits] changed")
    return lines


def _named_diff(what: str, old: tuple[Any, ...], new: tuple[Any, ...]) -> list[str]:
    before, after = {x.name: x for x in old}, {x.name: x for x in new}
    lines = [f"{what} {name} added" for name in after if name not in before]
    lines += [f"{what} {name} removed" for name in before if name not in after]
    lines += [f"{what} {name} changed" for name in after if name in before and before[name] != after[name]]
    return lines
