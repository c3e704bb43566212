"""`hoop tui [--token T]`: the approvers' console (Textual), acting as the token's identity."""

from __future__ import annotations

import argparse
import os
from typing import Any

from hoop.core.config import Config


def cmd_tui(args: argparse.Namespace, config: Config) -> int:
    from hoop.control_client import ControlClient
    from hoop.tui.app import HoopApp
    from hoop.tui.data import GatewayLink, History

    token = args.token or os.environ.get("HOOP_TOKEN", "")
    client = ControlClient(config.gateway.control_path, token) if token else None
    history = History.open(config.gateway.db_path, config.gateway.recordings_dir)
    HoopApp(history, GatewayLink(client), start=args.area).run()
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> dict[str, Any]:
    p = sub.add_parser("tui", parents=[common], help="open the approvers' console")
    p.add_argument("--token", default=None, help="your Hoop token (default: $HOOP_TOKEN)")
    p.add_argument(
        "--area",
        default="approvals",
        choices=["sessions", "approvals", "rules", "recordings"],
        help="the area to open first (default approvals)",
    )
    return {"tui": cmd_tui}
