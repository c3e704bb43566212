"""The SSH door: the gateway's own SSH server, its built-in session and the relays to targets."""

from __future__ import annotations

import ssl
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hoop.server.services import Services
    from hoop.server.session.seams import Door

# asyncssh names cryptography's DSA types when it is imported, and cryptography 51 deprecates
# them with a warning per name: ten lines on every start that concern no setting of Hoop's.
# Ignored for asyncssh's own modules only, so a warning from anywhere else still shows.
warnings.filterwarnings("ignore", message="DSA is deprecated", module=r"asyncssh\.")


def door(services: Services, tls: ssl.SSLContext | None) -> Door:  # registered in hoop/server/doors.py
    """SSH has its own host keys: `tls` is for the database doors."""
    from hoop.server.ssh.listener import SSHDoor

    return SSHDoor(services)
