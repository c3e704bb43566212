"""Logging in to an SSH target with the credential the gateway holds, and checking its host key.

The target's host key is pinned by the connection's `known_hosts` file when one is set;
otherwise the first key seen is recorded in the store (`host_keys`, trust on first use) and
every later login must present the same key. A different key is refused and audited: it is
either a rebuilt host or someone in the middle, and only an operator can tell which.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

import asyncssh

from hoop.core.config import Connection
from hoop.core.errors import HoopError
from hoop.server.ssh.corking import CorkingConnector
from hoop.server.ssh.tuning import connection_options

if TYPE_CHECKING:
    from hoop.core.identity import Identity
    from hoop.server.services import Services

log = logging.getLogger("hoop.ssh")


class ClientLogin(Protocol):
    """What a channel's session uses of the client connection that carries it
    (listener.GatewayServer), declared here so the session modules need not import the listener."""

    services: Services
    identity: Identity | None
    user: str
    client: str

    async def target(self, connection: Connection) -> asyncssh.SSHClientConnection:
        """The connection's target login, shared by the client connection's channels."""
        ...


class TargetError(HoopError):
    """The target could not be reached or logged in to; the message is safe to show the user."""


class HostKeyChanged(TargetError):
    pass


def client_keys(connection: Connection) -> list[asyncssh.SSHKey]:
    """The connection's private key: `${VAR}` holding the key itself, or a file path."""
    if connection.private_key is None:
        return []
    value = connection.private_key.reveal()
    try:
        if value.lstrip().startswith("-----BEGIN"):
            return [asyncssh.import_private_key(value)]
        return [asyncssh.read_private_key(value)]
    except (OSError, asyncssh.KeyImportError) as exc:
        # Name the connection and the kind of problem, never the value.
        raise TargetError(
            f"the private key of connection {connection.name!r} cannot be loaded ({type(exc).__name__})"
        ) from None


class _Pinned:
    """known_hosts callable: trust exactly the stored key."""

    def __init__(self, key: asyncssh.SSHKey) -> None:
        self.key = key

    def __call__(self, host: str, addr: str, port: int) -> tuple[list[Any], list[Any], list[Any]]:
        return [self.key], [], []


def stored_host_key(store: Any, connection: Connection) -> str | None:
    row = store.one(
        "SELECT key FROM host_keys WHERE connection = ? AND host = ? AND port = ?",
        (connection.name, connection.host, connection.port),
    )
    return str(row["key"]) if row else None


def remember_host_key(store: Any, connection: Connection, key: asyncssh.SSHKey) -> None:
    text = key.export_public_key("openssh").decode("ascii").strip()
    store.execute(
        "INSERT INTO host_keys(connection, host, port, key, first_seen) VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING",
        (connection.name, connection.host, connection.port, text, time.time()),
    )


async def connect_target(
    services: Any, connection: Connection, *, user: str, agent_path: str | None = None
) -> asyncssh.SSHClientConnection:
    """Log in to the target; raises TargetError with a message fit for the user."""
    keys = client_keys(connection)
    password = connection.password.reveal() if connection.password else None
    tofu = connection.known_hosts is None
    stored = await asyncio.to_thread(stored_host_key, services.store, connection) if tofu else None
    if connection.known_hosts is not None:
        known_hosts: Any = str(connection.known_hosts)
    elif stored is not None:
        known_hosts = _Pinned(asyncssh.import_public_key(stored))
    else:
        known_hosts = None  # first contact: accept, then record below
    where = f"{connection.name} ({connection.host}:{connection.port})"
    began = time.monotonic()
    try:
        conn = await asyncio.wait_for(
            asyncssh.connect(
                connection.host,
                connection.port,
                username=connection.username,
                client_keys=keys or None,
                password=password,
                known_hosts=known_hosts,
                agent_path=agent_path,
                agent_forwarding=agent_path is not None,
                config=None,
                preferred_auth="publickey,password,keyboard-interactive" if keys else "password,keyboard-interactive",
                kbdint_auth=password is not None,
                encoding=None,
                tunnel=CorkingConnector(),  # connects itself, so that the writes to the target are corked
                **connection_options(server=False),
            ),
            connection.connect_timeout,
        )
    except asyncssh.HostKeyNotVerifiable:
        services.journal.audit(
            user,
            "ssh.hostkey.mismatch",
            connection.name,
            host=connection.host,
            port=connection.port,
            pinned_by="known_hosts" if not tofu else "store",
        )
        raise HostKeyChanged(
            f"the host key of {where} does not match the one Hoop trusts; refusing to connect "
            "(an operator must verify the host and update the pinned key)"
        ) from None
    except asyncssh.PermissionDenied:
        services.journal.audit(user, "upstream.failure", connection.name, reason="target refused login")
        raise TargetError(f"{where} refused the gateway's credential") from None
    except (TimeoutError, OSError, asyncssh.Error) as exc:
        services.journal.audit(user, "upstream.failure", connection.name, reason=type(exc).__name__)
        raise TargetError(f"cannot reach {where}: {_reason(exc)}") from None
    services.metrics.upstream_connected("ssh", connection.name, time.monotonic() - began)
    if tofu and stored is None:
        key = conn.get_server_host_key()
        if key is not None:
            await asyncio.to_thread(remember_host_key, services.store, connection, key)
            services.journal.audit(
                user,
                "ssh.hostkey.trusted",
                connection.name,
                host=connection.host,
                port=connection.port,
                fingerprint=key.get_fingerprint(),
            )
    return conn


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return getattr(exc, "reason", "") or type(exc).__name__


async def reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    """A quick TCP connect, for `list`."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (TimeoutError, OSError):
        return False
    writer.close()
    return True
