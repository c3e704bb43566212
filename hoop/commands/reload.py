"""`hoop reload`: the running gateway re-reads hoop.toml, as on SIGHUP (admins only).

The gateway validates the file as `hoop serve` does; an invalid file is refused and the
running configuration stays. Exit status 0 when applied, 1 when refused.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from hoop.control_client import caller_client
from hoop.core.config import Config
from hoop.core.visible import visible


def cmd_reload(args: argparse.Namespace, config: Config) -> int:
    outcome = caller_client(config.gateway.control_path, args.token, config.oidc).call("reload")
    if args.json:
        print(json.dumps(outcome, indent=2))
        return 0
    changed = outcome.get("changed") or []
    print(visible("reloaded: " + ("; ".join(changed) if changed else "no change")))
    for table in outcome.get("needs_restart") or []:
        print(visible(f"{table} changed: needs a restart (left as it is)"))
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> dict[str, Any]:
    p = sub.add_parser(
        "reload",
        parents=[common],
        help="apply hoop.toml to the running gateway without a restart (admins)",
        description=(
            "Ask the running gateway to re-read and validate its config file, as on SIGHUP. Users, "
            "connections, roles and limits apply to new logins (open sessions keep their connection); "
            "rules and masking apply at once. [gateway], [listen], [auth] and [[notify]] changes need "
            "a restart."
        ),
        epilog="example:\n  HOOP_TOKEN=... hoop reload -c /etc/hoop/hoop.toml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--token", default=None, help="an admin's token (default: $HOOP_TOKEN, then `hoop login`)")
    p.add_argument("--json", action="store_true")
    return {"reload": cmd_reload}
