"""`hoop approvals`, `hoop approve ID`, `hoop deny ID --reason ...`, `hoop kill SESSION --reason ...`.

Listing reads the store and shows its text inert (hoop.core.visible); decisions go to the
running gateway's control endpoint, acting as the identity of `--token` / `HOOP_TOKEN`, because
only the gateway can wake a held session.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from hoop.commands.filters import add_filters, shorten, where_of
from hoop.control_client import ControlClient, caller_client
from hoop.core.config import Config
from hoop.core.errors import HoopError
from hoop.core.identity import parse_ttl
from hoop.core.visible import visible

PREVIEW = 80  # characters of a statement in the list; `--json` and the TUI show all of it


def _client(args: argparse.Namespace, config: Config) -> ControlClient:
    return caller_client(config.gateway.control_path, args.token, config.oidc)


def cmd_approvals(args: argparse.Namespace, config: Config) -> int:
    from hoop.core.store.base import open_store

    store = open_store(config.gateway.store_target)
    where = where_of(args, time="created", user="user", connection="connection", decision="status")
    if not (args.all or args.decision):
        where.add("status = 'pending'")
    rows = store.query(f"SELECT * FROM approvals{where.sql()} ORDER BY id DESC LIMIT 200", where.params)
    now = time.time()
    for r in rows:
        r["age"] = f"{now - r['created']:.0f}s"
        r["approvers"] = json.loads(r["approvers"])
        r["decisions"] = json.loads(r["decisions"])
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no pending approval requests" if not args.all else "no approval requests")
        return 0
    # Newlines show as \n: folded into spaces, a newline ending a `--` comment would make what
    # follows it read as part of the comment. A cut statement ends with `…`.
    table = [
        [
            f"#{r['id']}",
            str(r["status"]),
            visible(r["user"]),  # names whole: a cut name could pass for another
            visible(r["connection"]),
            visible(r["rule"]),
            r["age"],
            shorten(visible(r["statement"]), PREVIEW),
        ]
        for r in rows
    ]
    header = ["ID", "STATUS", "USER", "CONNECTION", "RULE", "AGE", "STATEMENT"]
    widths = [max(len(line[i]) for line in [header, *table]) for i in range(len(header) - 1)]
    for line in [header, *table]:
        print("  ".join([*(cell.ljust(w) for cell, w in zip(line, widths)), line[-1]]))
    return 0


def cmd_decide(args: argparse.Namespace, config: Config) -> int:
    client = _client(args, config)
    params: dict[str, Any] = {"id": args.id, "reason": args.reason or ""}
    if args.command == "approve" and args.grant:
        try:
            params["grant_seconds"] = parse_ttl(args.grant, config.gateway.max_grant, "[gateway] max_grant")
        except ValueError as exc:
            raise HoopError(f"--grant: {exc}") from None
    result = client.call(args.command, **params)
    if result.get("status") == "pending":
        print(f"approved #{args.id}: {result['approvals']} of {result['required']} approvals so far")
    else:
        print(f"#{args.id} {result['status']}")
    return 0


def cmd_kill(args: argparse.Namespace, config: Config) -> int:
    _client(args, config).call("kill", id=args.id, reason=args.reason)
    print(f"session {args.id} killed")
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> dict[str, Any]:
    ident = argparse.ArgumentParser(add_help=False)
    ident.add_argument("--token", default=None, help="your token (default: $HOOP_TOKEN, then `hoop login`)")
    p = sub.add_parser("approvals", parents=[common], help="list approval requests")
    p.add_argument("--json", action="store_true")
    p.add_argument("--all", action="store_true", help="include decided requests")
    add_filters(p, decision="only requests in this state: pending, approved, denied, expired, cancelled")
    p = sub.add_parser("approve", parents=[common, ident], help="approve a held command")
    p.add_argument("id", type=int)
    p.add_argument("--reason", default="")
    p.add_argument("--grant", default=None, help="also let this user run statements of this rule for e.g. 30m")
    p = sub.add_parser("deny", parents=[common, ident], help="deny a held command")
    p.add_argument("id", type=int)
    p.add_argument("--reason", required=True)
    p = sub.add_parser("kill", parents=[common, ident], help="disconnect a live session")
    p.add_argument("id", type=int)
    p.add_argument("--reason", required=True)
    return {"approvals": cmd_approvals, "approve": cmd_decide, "deny": cmd_decide, "kill": cmd_kill}
