"""Which connection a MySQL login opens.

The database name of the HandshakeResponse picks the connection. A login that names none
(`mariadb-dump`, which selects schemas later; the `mariadb` client's second connection that
sends `KILL QUERY` on Ctrl-C) gets the user's default: `default_connection` of their
`[[users]]` entry, or else the one MySQL connection they may use. With none or several to
choose from, the login is refused with that reason rather than guessed.
"""

from __future__ import annotations

from hoop.core.config import Connection
from hoop.core.errors import AccessDenied
from hoop.core.identity import Identity
from hoop.server.services import Services


class NoDefaultConnection(Exception):
    """The login named no database and no single connection is the user's default."""


def default_connection(services: Services, identity: Identity) -> Connection:
    entry = services.config.user(identity.name)
    if entry is not None and entry.default_connection is not None:
        try:
            return services.resolve_connection(identity, entry.default_connection, "mysql")
        except AccessDenied:
            raise NoDefaultConnection(
                f"no database named, and your default_connection {entry.default_connection!r} is not open to you"
            ) from None
    mine = [conn for conn in services.connections_for(identity) if conn.type == "mysql"]
    if len(mine) == 1:
        return mine[0]
    if not mine:
        raise NoDefaultConnection(f"no database named, and no MySQL connection is open to {identity.name!r}")
    names = ", ".join(conn.name for conn in mine)
    raise NoDefaultConnection(
        f"no database named, and {len(mine)} MySQL connections are open to {identity.name!r} ({names}): "
        f"name one as the database, or set default_connection in the [[users]] entry"
    )
