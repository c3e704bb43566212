"""Roles on the control plane, from groups.

`[roles]` in hoop.toml names the groups of two roles:

- `admin`: changes rules and masking, kills any session, watches every session;
- `auditor`: reads everything (sessions, recordings, audit, approvals), changes nothing.

Approvers are not a table here: a member of a group a guard rule names in `approvers` (or a
connection names in `shell_approvers`, which is the rule `shell:NAME`: hoop/core/shell_rules.py)
approves that rule's requests, and watches and kills the sessions on the connections the rule covers
(its own `connections` globs, matched as the rule matches them). An admin decides a request
only when also an approver of its rule. The groups come from the identity: `[[users]]` for
local tokens, the token's groups claim for OIDC.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hoop.core.errors import ConfigError, HoopError

if TYPE_CHECKING:
    from hoop.core.guardrails import GuardRule

ROLE_KEYS = ("admin", "auditor")


class NotAllowed(HoopError):
    """The caller's roles do not allow the operation (the message says which role would)."""


@dataclass(frozen=True)
class RolesConfig:
    """`[roles]`: the groups whose members hold each role."""

    admin: tuple[str, ...] = ()
    auditor: tuple[str, ...] = ()


def roles_from_mapping(data: Any, *, file: str, key: str = "roles") -> RolesConfig:
    if not isinstance(data, dict):
        raise ConfigError(file, key, f"expected a table, got {type(data).__name__}")
    unknown = sorted(set(data) - set(ROLE_KEYS))
    if unknown:
        raise ConfigError(file, f"{key}.{unknown[0]}", f"unknown key; expected one of {', '.join(ROLE_KEYS)}")
    values: dict[str, tuple[str, ...]] = {}
    for name in ROLE_KEYS:
        raw = data.get(name, [])
        if not isinstance(raw, list) or not all(isinstance(g, str) and g.strip() for g in raw):
            raise ConfigError(file, f"{key}.{name}", f"expected a list of group names, got {raw!r}")
        values[name] = tuple(g.strip() for g in raw)
    return RolesConfig(**values)


@dataclass(frozen=True)
class Scope:
    """What an approver watches: the rules they approve and the connection globs those cover.
    Built by the gateway (`roles_of`) and rebuilt by clients from `whoami`."""

    rules: tuple[str, ...] = ()
    connections: tuple[str, ...] = ()

    def covers(self, connection: str) -> bool:
        # The same glob semantics as a rule's `connections` (fnmatch, whole name).
        return any(fnmatch.fnmatchcase(connection, glob) for glob in self.connections)


@dataclass(frozen=True)
class RoleSet:
    """The caller's roles: admin, auditor, and the scope of the rules they approve."""

    admin: bool = False
    auditor: bool = False
    scope: Scope = Scope()

    @property
    def approver(self) -> bool:
        return bool(self.scope.rules)

    @property
    def names(self) -> list[str]:
        held = (("admin", self.admin), ("auditor", self.auditor), ("approver", self.approver))
        return [name for name, on in held if on]

    @property
    def reads_all(self) -> bool:
        """Admins and auditors see every session and request."""
        return self.admin or self.auditor

    def watches(self, connection: str) -> bool:
        """May see (and, unless only an auditor, act on) sessions on this connection."""
        return self.reads_all or self.scope.covers(connection)

    def as_dict(self) -> dict[str, Any]:
        return {
            "roles": self.names,
            "scope": {"rules": list(self.scope.rules), "connections": list(self.scope.connections)},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoleSet:
        """From `whoami`'s answer (a client's view; the gateway decides with its own)."""
        roles = set(data.get("roles") or ())
        scope = data.get("scope") or {}
        return cls(
            "admin" in roles,
            "auditor" in roles,
            Scope(tuple(scope.get("rules") or ()), tuple(scope.get("connections") or ())),
        )


def roles_of(config: RolesConfig, rules: Sequence[GuardRule], groups: Iterable[str]) -> RoleSet:
    """The roles of a member of `groups` under `config` and the guard rules in force."""
    mine = frozenset(groups)
    approved = [r for r in rules if r.enabled and mine.intersection(r.approvers)]
    connections: list[str] = []
    for rule in approved:
        connections += [c for c in rule.connections if c not in connections]
    return RoleSet(
        admin=bool(mine.intersection(config.admin)),
        auditor=bool(mine.intersection(config.auditor)),
        scope=Scope(tuple(r.name for r in approved), tuple(connections)),
    )
