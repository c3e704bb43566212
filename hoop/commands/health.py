"""`hoop health`: is the running gateway storing its records, and how many wait.

Exit status 0 when recording is healthy, 1 when it is not (or the gateway does not answer),
so monitoring can run it as a check.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from hoop.control_client import ControlClient
from hoop.core.config import Config


def cmd_health(args: argparse.Namespace, config: Config) -> int:
    # Read-only status: the gateway answers it without a token (one given is simply passed on).
    token = args.token or os.environ.get("HOOP_TOKEN", "")
    health = ControlClient(config.gateway.control_path, token).call("health")
    if args.json:
        print(json.dumps(health))
    else:
        line = f"recording: {health['recording']}  waiting: {health['waiting']}"
        if health["problem"]:
            line += f"  problem: {health['problem']}"
        print(line)
    return 0 if health["recording"] == "healthy" else 1


def register(sub: Any, common: argparse.ArgumentParser) -> dict[str, Any]:
    p = sub.add_parser(
        "health",
        parents=[common],
        help="is the gateway storing its records (exit 1 when not)",
        description="Ask the running gateway whether its records are being stored and how many wait.",
    )
    p.add_argument("--token", default=None, help="not needed: health is answered without one")
    p.add_argument("--json", action="store_true")
    return {"health": cmd_health}
