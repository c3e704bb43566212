"""SSH door of the gateway: `ssh -p 2222 alice@gateway` and `ssh alice+web1@gateway`.

One `GatewayServer` per client connection: it authenticates (a public key from the user's
`[[users]] ssh_keys`, or a Hoop token as the password), parses the user name
(`alice` -> built-in session, `alice+NAME` -> straight to connection NAME, `alice+tui` ->
reserved for the approver TUI; any other name, such as an empty one, is refused at login)
and answers each channel request. Everything the user is not allowed to do (port, agent and
X11 forwarding unless the connection enables them) is refused and audited here.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import asyncssh

from hoop.core.config import Connection
from hoop.core.errors import AccessDenied, AuthError
from hoop.core.identity import MAX_NAME, Identity, name_problem
from hoop.server.limiting import THROTTLED, SessionSlot, TooManySessions
from hoop.server.services import Services
from hoop.server.ssh.corking import CorkingListener
from hoop.server.ssh.device_auth import LOGIN_TIMEOUT, DeviceAuth
from hoop.server.ssh.target import TargetError, connect_target
from hoop.server.ssh.tuning import channel_options, connection_options

log = logging.getLogger("hoop.ssh")
HOST_KEY_NAME = "ssh_host_ed25519_key"
TUI_NAME = "tui"


def ensure_host_key(data_dir: Path) -> asyncssh.SSHKey:
    """The gateway's host key, generated once (mode 0600) so clients can pin it."""
    path = data_dir / HOST_KEY_NAME
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        key = asyncssh.generate_private_key("ssh-ed25519")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key.export_private_key())
        path.with_name(HOST_KEY_NAME + ".pub").write_bytes(key.export_public_key())
    return asyncssh.read_private_key(path)


def login_connection_problem(name: str) -> str:
    """Why the part after `+` of an SSH login name names no connection ("" when it may)."""
    if "+" in name:
        return "the login name has more than one '+'"
    return name_problem(name, "connection name")


class SSHDoor:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def start(self, host: str, port: int) -> asyncssh.SSHAcceptor:
        key = await asyncio.to_thread(ensure_host_key, self.services.config.gateway.data_dir)
        limits = self.services.config.limits
        return await asyncssh.create_server(
            lambda: GatewayServer(self.services),
            host,
            port,
            server_host_keys=[key],
            encoding=None,
            line_editor=False,
            agent_forwarding=True,
            x11_forwarding=False,
            allow_scp=False,
            keepalive_interval=60,
            login_timeout=LOGIN_TIMEOUT if self.services.config.oidc is not None else limits.ssh_login_timeout,
            server_version="Hoop",
            tunnel=CorkingListener(
                self.services.limiter
            ),  # listens itself, so that each connection's writes are corked
            **connection_options(server=True),
        )


class GatewayServer(asyncssh.SSHServer):
    """Per client connection: identity, the requested connection and a shared target login."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.conn: asyncssh.SSHServerConnection | None = None
        self.client = "?"
        self.user = ""
        self.target_name = ""
        self.identity: Identity | None = None
        self._target: dict[str, asyncio.Future[asyncssh.SSHClientConnection]] = {}
        self._targets: list[asyncssh.SSHClientConnection] = []
        self._device: DeviceAuth | None = None
        self._name_refused = False  # audited once, whoever refused the login name

    # -- connection and authentication --------------------------------------------------------

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        peer = conn.get_extra_info("peername") or ("?", 0)
        self.client = f"{peer[0]}:{peer[1]}"

    def connection_lost(self, exc: Exception | None) -> None:
        if isinstance(exc, asyncssh.IllegalUserName) and not self._name_refused:
            # asyncssh refused the name itself (not UTF-8, a prohibited character, too long)
            self._refuse_name(exc.reason, None)
        for target in self._targets:
            target.close()
        for pending in self._target.values():
            if not pending.done():
                pending.cancel()

    def begin_auth(self, username: str) -> bool:
        """`USER` or `USER+CONNECTION`; any other login name is refused before a credential is
        looked at, with the reason as the SSH disconnect message (illegal user name).

        Each way of authenticating calls it again: asyncssh calls it only when the name
        changes, and an empty name is no change from its starting value."""
        user, plus, target = username.partition("+")
        problem = name_problem(user) or (plus and login_connection_problem(target))
        if problem:
            self._refuse_name(problem, username)
            raise asyncssh.IllegalUserName(f"{problem}: log in as USER or USER+CONNECTION")
        self.user, self.target_name = user, target
        return True

    def _refuse_name(self, problem: str, username: str | None) -> None:
        self._name_refused = True
        name = {} if username is None else {"user": username[: MAX_NAME + 1]}
        self.services.journal.audit("-", "login.failure", "ssh", reason=problem, client=self.client, **name)

    def password_auth_supported(self) -> bool:
        return True

    async def validate_password(self, username: str, password: str) -> bool:
        self.begin_auth(username)
        try:
            self.identity = await self.services.authenticate(self.user, password, door="ssh", client=self.client)
        except AuthError as exc:
            if exc.reason.startswith(THROTTLED) and self.conn is not None:  # say why, not just "denied"
                self.conn.send_auth_banner(f"hoop: {exc.reason}\r\n")
            return False
        return True

    # Keyboard-interactive: the OIDC device flow when [auth.oidc] is set; otherwise asyncssh's
    # default (NotImplemented), which asks for the password through the same prompt.
    def kbdint_auth_supported(self) -> bool:
        return True if self.services.config.oidc is not None else NotImplemented

    async def get_kbdint_challenge(self, username: str, lang: str, submethods: str) -> Any:
        self.begin_auth(username)
        self._device = DeviceAuth(self.services, self.user, self.client)
        return await self._device.challenge()

    async def validate_kbdint_response(self, username: str, responses: Any) -> bool:
        if self._device is None:
            return False
        identity = await self._device.finish(self.conn)
        if identity is None:
            return False
        self.identity = identity
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        self.begin_auth(username)
        entry = self.services.config.user(self.user)
        if entry is None:
            return False
        if self.services.refusing:  # a key login skips authenticate(), which refuses the others
            self.services.journal.audit(
                self.user, "login.failure", "ssh", reason=self.services.refusing, client=self.client
            )
            return False
        offered = key.public_data
        for line in entry.ssh_keys:
            try:
                if asyncssh.import_public_key(line).public_data == offered:
                    groups = self.services.tokens.groups_of(self.user)
                    self.identity = Identity(self.user, groups, "ssh-key")
                    return True
            except (asyncssh.KeyImportError, ValueError):
                log.warning("user %s has an ssh_keys entry that is not a public key", self.user)
        return False

    def auth_completed(self) -> None:
        assert self.identity is not None and self.conn is not None
        self.services.limiter.logged_in(self.conn.get_extra_info("peername"))
        self.services.journal.audit(
            self.user,
            "login.success",
            "ssh",
            client=self.client,
            method=self.identity.source,
            via=self.target_name or "-",
        )

    # -- what the user asked for ---------------------------------------------------------------

    def connection(self) -> Connection:
        """The connection named after '+', or AccessDenied."""
        assert self.identity is not None
        return self.services.resolve_connection(self.identity, self.target_name)

    async def target(self, connection: Connection) -> asyncssh.SSHClientConnection:
        """One login per target and client connection, shared by its channels."""
        pending = self._target.get(connection.name)
        if pending is None or (pending.done() and (pending.cancelled() or pending.exception() is not None)):
            pending = self._target[connection.name] = asyncio.ensure_future(self._login(connection))
        return await asyncio.shield(pending)

    async def _login(self, connection: Connection) -> asyncssh.SSHClientConnection:
        agent = self.conn.get_agent_path() if self.conn is not None and connection.allow_agent_forwarding else None
        target = await connect_target(self.services, connection, user=self.user, agent_path=agent)
        self._targets.append(target)
        return target

    def refuse(self, what: str, **detail: Any) -> None:
        self.services.journal.audit(
            self.user, f"ssh.refused.{what}", self.target_name or "-", client=self.client, **detail
        )

    def session_requested(self) -> Any:
        from hoop.server.ssh.channel import AuditedChannel
        from hoop.server.ssh.direct import DirectSession
        from hoop.server.ssh.session import BuiltinSession

        assert self.conn is not None
        chan = self.conn.create_server_channel(encoding=None, **channel_options())
        AuditedChannel.adopt(chan, self)
        if not self.target_name:
            return chan, BuiltinSession(self)
        if self.target_name == TUI_NAME:
            from hoop.server.ssh.tui_bridge import TuiBridgeSession

            return chan, TuiBridgeSession(self)
        try:
            connection = self.connection()
        except AccessDenied as exc:
            self.refuse("connection", connection=self.target_name, reason=str(exc))
            return chan, BuiltinSession(self, notice=f"{exc} ({self.target_name!r})", fail=True)
        if connection.type != "ssh":  # its SQL shell logs in through a database door, which counts it
            return chan, BuiltinSession(self, start_with=connection.name)
        return chan, DirectSession(self, connection, self.claim(connection))

    def claim(self, connection: Connection) -> SessionSlot:
        """One of the user's sessions on an SSH target, or the channel is refused before the
        target is contacted."""
        try:
            return self.services.limiter.claim_session(self.user, connection.name, "ssh", self.client)
        except TooManySessions as exc:
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_RESOURCE_SHORTAGE, str(exc)) from None

    # -- forwarding ------------------------------------------------------------------------------

    def forwarding_allowed(self, attr: str) -> bool:
        if not self.target_name or self.target_name == TUI_NAME:
            return False
        try:
            connection = self.connection()
        except AccessDenied:
            return False
        return connection.type == "ssh" and bool(getattr(connection, attr))

    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str, orig_port: int) -> Any:
        if not self.forwarding_allowed("allow_port_forwarding"):
            self.refuse("port_forwarding", dest=f"{dest_host}:{dest_port}")
            return False
        self.services.journal.audit(self.user, "ssh.port_forward", self.target_name, dest=f"{dest_host}:{dest_port}")
        return self._tunnel(dest_host, dest_port)

    async def _tunnel(self, host: str, port: int) -> Any:
        """`ssh -L` opens the connection from the target, as a direct login would."""
        assert self.conn is not None
        try:
            target = await self.target(self.connection())
        except TargetError as exc:
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED, str(exc)) from None
        return await self.conn.forward_tunneled_connection(target, host, port)

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        # Remote forwards (-R) would listen on the gateway itself: always refused.
        self.refuse("remote_forwarding", listen=f"{listen_host}:{listen_port}")
        return False

    def unix_connection_requested(self, dest_path: str) -> bool:
        self.refuse("port_forwarding", dest=dest_path)
        return False

    def unix_server_requested(self, listen_path: str) -> bool:
        self.refuse("remote_forwarding", listen=listen_path)
        return False
