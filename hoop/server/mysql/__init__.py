"""The MySQL/MariaDB door: the wire codec, login, the relay and what it reads of results."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hoop.server.services import Services
    from hoop.server.session.seams import Door


def door(services: Services, tls: ssl.SSLContext | None) -> Door:  # registered in hoop/server/doors.py
    from hoop.server.mysql.listener import MySQLDoor

    return MySQLDoor(services, tls)
