"""`hoop tui [--token T]`: the approvers' console (Textual), acting as the token's identity."""

from __future__ import annotations

import argparse
from typing import Any

from hoop.core.config import Config
from hoop.core.errors import HoopError


def cmd_tui(args: argparse.Namespace, config: Config) -> int:
    from hoop.control_client import ControlClient, token_from
    from hoop.tui.app import HoopApp
    from hoop.tui.data import GatewayLink, History

    try:
        token = token_from(args.token, config.oidc)
    except HoopError:  # the console still opens, read-only, and says why
        token = ""
    client = ControlClient(config.gateway.control_path, token) if token else None
    history = History.open(config.gateway.store_target, config.gateway.recordings_dir)
    HoopApp(history, GatewayLink(client), start=args.area).run()
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> dict[str, Any]:
    p = sub.add_parser("tui", parents=[common], help="open the approvers' console")
    p.add_argument("--token", default=None, help="your token (default: $HOOP_TOKEN, then `hoop login`)")
    p.add_argument(
        "--area",
        default="approvals",
        choices=["sessions", "approvals", "rules", "recordings"],
        help="the area to open first (default approvals)",
    )
    return {"tui": cmd_tui}
