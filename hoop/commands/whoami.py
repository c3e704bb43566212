"""`hoop whoami [--token T] [--json]`: who the gateway takes you for, your roles and scope.

The answer comes from the running gateway (the one place that decides), for the token of
--token, HOOP_TOKEN or `hoop login`.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from hoop.control_client import caller_client
from hoop.core.config import Config
from hoop.core.visible import visible


def cmd_whoami(args: argparse.Namespace, config: Config) -> int:
    me = caller_client(config.gateway.control_path, args.token, config.oidc).call("whoami")
    if args.json:
        print(json.dumps(me, indent=2))
        return 0
    scope = me.get("scope") or {}
    print(visible(f"user:   {me['user']}"))
    print(visible(f"groups: {', '.join(me.get('groups') or []) or 'none'}"))
    print(visible(f"roles:  {', '.join(me.get('roles') or []) or 'none'}"))
    if scope.get("rules"):
        print(visible(f"approves rules: {', '.join(scope['rules'])}"))
        print(visible(f"on connections: {', '.join(scope.get('connections') or []) or 'none'}"))
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> dict[str, Any]:
    p = sub.add_parser("whoami", parents=[common], help="show your identity, roles and approver scope")
    p.add_argument("--token", default=None, help="your token (default: $HOOP_TOKEN, then `hoop login`)")
    p.add_argument("--json", action="store_true")
    return {"whoami": cmd_whoami}
