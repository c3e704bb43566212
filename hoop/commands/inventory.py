"""`hoop connections` and `hoop users`: what the config declares, and who may reach what.

Both read hoop.toml only (no store, no gateway, no secret): a connection's credential is never
shown, only where it points. Users of an OIDC provider are not listed; their groups come with
each login.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from hoop.core.config import Config, Connection, UserEntry
from hoop.core.visible import visible


def _target(conn: Connection) -> str:
    where = f"{conn.username}@{conn.host}:{conn.port}" if conn.username else f"{conn.host}:{conn.port}"
    return f"{where}/{conn.database}" if conn.database else where


def connection_rows(config: Config) -> list[dict[str, Any]]:
    return [
        {
            "name": conn.name,
            "type": conn.type,
            "target": _target(conn),
            "groups": list(conn.groups),
            "users": [u.name for u in config.users if conn.allows(frozenset(u.groups))],
        }
        for conn in config.connections
    ]


def _approves(config: Config, user: UserEntry) -> list[str]:
    """Rules of hoop.toml whose holds this user may decide (through a group it is in)."""
    groups = set(user.groups)
    return [rule.name for rule in config.rules if groups.intersection(getattr(rule, "approvers", ()))]


def user_rows(config: Config) -> list[dict[str, Any]]:
    roles = config.roles
    rows = []
    for user in config.users:
        groups = set(user.groups)
        held = [role for role, members in (("admin", roles.admin), ("auditor", roles.auditor)) if groups & set(members)]
        rows.append(
            {
                "name": user.name,
                "groups": list(user.groups),
                "roles": held,
                "connections": [c.name for c in config.connections if c.allows(frozenset(user.groups))],
                "approves": _approves(config, user),
                "ssh_keys": len(user.ssh_keys),
            }
        )
    return rows


def _print(rows: list[dict[str, Any]], columns: list[str]) -> None:
    if not rows:
        print("(none)")
        return
    cells = [
        [visible(", ".join(v) if isinstance(v, list) else str(v)) or "-" for v in (r[c] for c in columns)] for r in rows
    ]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip())
    for line in cells:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip())


def cmd_connections(args: argparse.Namespace, config: Config) -> int:
    rows = connection_rows(config)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _print(rows, ["name", "type", "target", "groups", "users"])
    return 0


def cmd_users(args: argparse.Namespace, config: Config) -> int:
    rows = user_rows(config)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _print(rows, ["name", "groups", "roles", "connections", "approves"])
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> dict[str, Any]:
    p = sub.add_parser(
        "connections",
        parents=[common],
        help="list the connections and who may use them",
        description="The connections of the config: type, where each points (never its credential), "
        "the groups that may use it and the local users in them.",
        epilog="example: hoop connections --json | jq -r '.[].name'",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p = sub.add_parser(
        "users",
        parents=[common],
        help="list the local users and what each may reach",
        description="The local users of the config: groups, roles (admin, auditor), the connections "
        "each may use and the rules whose holds each may approve.",
        epilog="example: hoop users --json | jq '.[] | select(.name == \"alice\")'",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    return {"connections": cmd_connections, "users": cmd_users}
