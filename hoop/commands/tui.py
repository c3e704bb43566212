"""`hoop` subcommands for this area (filled in by the feature that owns it)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any, common: argparse.ArgumentParser) -> dict[str, Any]:
    return {}
