"""The one place a protocol registers: its `[listen]` key -> the package that serves it.

Each package exposes `door(services, tls) -> Door` (see `session.seams.Door`) and is imported
only when its door is configured, so a gateway without SSH never loads asyncssh.
"""

from __future__ import annotations

import importlib
import ssl

from hoop.server.services import Services
from hoop.server.session.seams import Door

DOORS: dict[str, str] = {
    "postgres": "hoop.server.postgres",
    "mysql": "hoop.server.mysql",
    "ssh": "hoop.server.ssh",
}


def door(name: str, services: Services, tls: ssl.SSLContext | None) -> Door:
    package = importlib.import_module(DOORS[name])
    made: Door = package.door(services, tls)
    return made
