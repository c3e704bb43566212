"""MySQL/MariaDB door of the gateway: one client connection from TCP accept to relay.

`serve_client` reads as the steps a session goes through: greet with our own handshake
(our connection id, caching_sha2_password), negotiate TLS, read the HandshakeResponse,
take the token in clear (full authentication inside TLS), authenticate, pick the
connection by database name (or the user's default, login_target.py), log in upstream
with the held credential, answer OK, relay.
Failures are ERR packets built in `_fail`, the one place that maps errors to the wire.

Before TLS the socket is read with exact sizes: a client sends its ClientHello right after
the SSLRequest, and those bytes must still be in the kernel buffer when TLS starts.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import socket
import ssl
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from hoop.core.config import Connection
from hoop.core.errors import AccessDenied, AuthError
from hoop.core.identity import MAX_NAME, Identity, name_problem
from hoop.core.pipeline import Subject
from hoop.core.sql.textmode import mysql_version_id
from hoop.core.store.wire_text import from_wire
from hoop.server.accepting import Acceptor
from hoop.server.limiting import SessionSlot, TooManySessions
from hoop.server.mysql import codec as c
from hoop.server.mysql import connection_phase as cp
from hoop.server.mysql import packets as p
from hoop.server.mysql.auth import AuthProtocolError, ClearTokenAuth, PluginRefused, new_scramble
from hoop.server.mysql.lineage_catalog import MySQLLineage
from hoop.server.mysql.login_target import NoDefaultConnection, default_connection
from hoop.server.mysql.relay import Relay
from hoop.server.mysql.routines import fetch as fetch_routines
from hoop.server.mysql.session_vars import TRACK_SQL, Settings, parse_state
from hoop.server.mysql.upstream import (
    DEFAULT_CLIENT_CAPABILITIES,
    MySQLTarget,
    MySQLUpstream,
    UpstreamError,
    connect_upstream,
    run_setup,
)
from hoop.server.mysql.views import Views
from hoop.server.routine_watch import RoutineCatalogError, RoutineWatchers
from hoop.server.services import Services
from hoop.server.session import CloseStatus, Session

log = logging.getLogger("hoop.mysql")
LOGIN_TIMEOUT = 30.0
# Clients see the gateway: a MariaDB-style version makes them pick collations both MariaDB
# and MySQL know (a MySQL 8 version makes some pick utf8mb4_0900_ai_ci, unknown to MariaDB).
# SELECT VERSION() still shows the real server.
SERVER_VERSION = b"5.5.5-10.11.99-MariaDB-hoop"

# What we offer clients. CLIENT_MYSQL (bit 0) stays set, so no MariaDB extended capability
# (metadata caching, COM_MULTI, bulk) is ever negotiated; no compression, no query attributes.
OFFERED = (
    c.CLIENT_LONG_PASSWORD
    | c.CLIENT_FOUND_ROWS
    | c.CLIENT_LONG_FLAG
    | c.CLIENT_CONNECT_WITH_DB
    | c.CLIENT_PROTOCOL_41
    | c.CLIENT_IGNORE_SPACE
    | c.CLIENT_INTERACTIVE
    | c.CLIENT_TRANSACTIONS
    | c.CLIENT_SECURE_CONNECTION
    | c.CLIENT_MULTI_STATEMENTS
    | c.CLIENT_MULTI_RESULTS
    | c.CLIENT_PS_MULTI_RESULTS
    | c.CLIENT_PLUGIN_AUTH
    | c.CLIENT_CONNECT_ATTRS
    | c.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
    | c.CLIENT_SESSION_TRACK
    | c.CLIENT_DEPRECATE_EOF
)
# Bits that change the byte layout of responses: client and upstream must agree on them,
# because the relay forwards the server's packets as they are. CLIENT_SESSION_TRACK is not
# among them: upstream always has it (the server reports the session's text settings, see
# session_vars.py) and the relay rewrites OK packets for clients without it.
LAYOUT = (
    c.CLIENT_PROTOCOL_41
    | c.CLIENT_DEPRECATE_EOF
    | c.CLIENT_MULTI_RESULTS
    | c.CLIENT_PS_MULTI_RESULTS
    | c.CLIENT_TRANSACTIONS
)
# Bits only the gateway's side of the connection uses.
CLIENT_ONLY = c.CLIENT_SSL | c.CLIENT_CONNECT_WITH_DB | c.CLIENT_COMPRESS | c.CLIENT_SSL_VERIFY_SERVER_CERT


class ClientError(Exception):
    """Ends the login with an ERR packet to the client."""

    def __init__(self, code: int, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.sqlstate = sqlstate


class _Login:
    """Packet I/O during the login; tracks the sequence id."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seq: int) -> None:
        self.reader, self.writer, self.seq = reader, writer, seq
        self.framer = c.PacketFramer(1 << 20)

    async def read(self) -> bytes:
        while (pkt := self.framer.next()) is None:
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("client went away during login")
            self.framer.feed(data)
        self.seq = (pkt[0] + 1) & 0xFF
        return pkt[1]

    def send(self, payload: bytes) -> None:
        self.writer.write(c.encode_packet(payload, self.seq))
        self.seq = (self.seq + 1) & 0xFF


class MySQLDoor:
    def __init__(self, services: Services, tls: ssl.SSLContext | None) -> None:
        self.services = services
        self.tls = tls
        self.relays: dict[int, Relay] = {}  # gateway connection id -> relay, for KILL
        # Gateway ids start far above the thread ids servers hand out, so that a number in
        # `KILL <id>` names a handshake id or a `CONNECTION_ID()`, not both.
        self._ids = itertools.count(1 << 30)
        # Lets a loopback client without TLS send its token RSA-encrypted (caching_sha2's
        # public-key path); remote clients must use TLS.
        self._rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._tasks: set[asyncio.Task[None]] = set()
        self.views = Views()  # view -> base columns, for masking
        self.lineage = MySQLLineage()  # computed, view and CTE columns, for masking
        self.routines = RoutineWatchers(services.pipeline, fetch_routines)  # calls judged by bodies
        allow_infile = any(conn.type == "mysql" and conn.allow_local_infile for conn in services.config.connections)
        self.offered = OFFERED | (c.CLIENT_SSL if tls else 0) | (c.CLIENT_LOCAL_FILES if allow_infile else 0)

    async def start(self, host: str, port: int) -> Acceptor:
        return await Acceptor("mysql", self.services.limiter, self._accepted).start(host, port)

    def _accepted(self, sock: socket.socket, peer: Any) -> None:
        task = asyncio.create_task(self.serve_client(sock, peer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def serve_client(self, sock: socket.socket, peer: Any) -> None:
        slots: list[SessionSlot] = []  # the session's place under sessions_per_user, once claimed
        try:
            await self._serve(sock, peer, slots)
        finally:
            self.services.limiter.logged_in(peer)
            for slot in slots:
                slot.release()

    async def _serve(self, sock: socket.socket, peer: Any, slots: list[SessionSlot]) -> None:
        client = f"{peer[0]}:{peer[1]}"
        conn_id = next(self._ids)
        login: _Login | None = None
        try:
            async with asyncio.timeout(LOGIN_TIMEOUT):
                async with asyncio.timeout(self.services.config.limits.preauth_timeout):  # the client's part
                    scramble = new_scramble()
                    login, tls, payload = await self._handshake(sock, conn_id, scramble)
                    if tls:  # the first packet asked for TLS: the real response comes inside it
                        payload = await login.read()
                    response = cp.parse_handshake_response(payload)  # malformed: answered as a bad handshake
                    user = self._user(response.username, client)
                    caps = response.capabilities & self.offered
                    token = await self._read_token(login, response, scramble, tls, peer[0])
                    identity = await self._authenticate(user, token, client)
                self.services.limiter.logged_in(peer)
                connection = self._connection(identity, (response.database or b"").decode("utf-8", "replace"), client)
                slots.append(self._claim(identity, connection, client))
                target = self._target(connection, caps, response, identity)
                upstream, settings = await self._login_upstream(target, caps)
                await self._read_routines(identity, connection, target, upstream)
                if self.services.pipeline.mask_policy(
                    Subject(identity.name, identity.groups, connection.name, "mysql")
                ).active:
                    await self.views.ensure(target)
        except ClientError as exc:
            if login is not None:
                _fail(login, exc.code, exc.sqlstate, str(exc))
            else:
                sock.close()
            return
        except c.ProtocolViolation as exc:
            self.services.journal.audit("-", "login.protocol_error", client, problem=str(exc))
            if login is not None:
                _fail(login, 1043, "08S01", f"bad handshake: {exc}")
            else:
                await _refuse_first_packet(sock, f"bad handshake: {exc}")
            return
        except (TimeoutError, ConnectionError, OSError, ssl.SSLError, AuthProtocolError) as exc:
            if isinstance(exc, AuthProtocolError) and login is not None:
                _fail(login, 1045, "28000", str(exc))
            elif login is not None:
                login.writer.close()
            else:
                sock.close()
            return
        await self._run_session(login, tls, conn_id, caps, identity, connection, target, upstream, settings, client)

    # -- steps -------------------------------------------------------------------------------

    async def _handshake(self, sock: socket.socket, conn_id: int, scramble: bytes) -> tuple[_Login, bool, bytes]:
        """Greets the client and reads its first packet on the bare socket, then wraps the socket
        (in TLS when that packet asks for it): the login channel, whether it is encrypted, and
        the first packet."""
        loop = asyncio.get_running_loop()
        hs = cp.ServerHandshake(
            SERVER_VERSION,
            conn_id,
            scramble,
            self.offered,
            c.CHARSET_UTF8MB4_GENERAL_CI,
            c.SERVER_STATUS_AUTOCOMMIT,
            "caching_sha2_password",
        )
        await loop.sock_sendall(sock, c.encode_packet(cp.build_handshake(hs), 0))
        header = await _sock_exact(loop, sock, 4)
        length = int.from_bytes(header[:3], "little")
        if length > 1 << 16:
            raise c.ProtocolViolation("handshake response too large")
        payload = await _sock_exact(loop, sock, length)
        use_tls = self.tls is not None and cp.is_ssl_request(payload)
        reader = asyncio.StreamReader(limit=1 << 20)
        proto = asyncio.StreamReaderProtocol(reader)
        transport, _ = await loop.connect_accepted_socket(lambda: proto, sock, ssl=self.tls if use_tls else None)
        writer = asyncio.StreamWriter(transport, proto, reader, loop)
        return _Login(reader, writer, (header[3] + 1) & 0xFF), use_tls, payload

    async def _read_token(
        self, login: _Login, response: cp.HandshakeResponse, scramble: bytes, tls: bool, host: str
    ) -> str:
        key = self._rsa if not tls and _is_loopback(host) else None
        auth = ClearTokenAuth(scramble, tls, key)
        try:
            step = auth.start(response)
            while step.token is None:
                login.send(step.reply or b"")
                await login.writer.drain()
                step = auth.feed(await login.read())
        except AuthProtocolError as exc:
            hint = "" if isinstance(exc, PluginRefused) else " (connect with TLS, e.g. mariadb --ssl)"
            raise ClientError(1045, "28000", f"{exc}{hint}") from None
        return step.token.decode("utf-8", "replace")

    def _user(self, raw: bytes, client: str) -> str:
        """The Hoop user name the client sent; refused before its token is asked for when it
        names no one."""
        user = from_wire(raw)
        if problem := name_problem(user):
            self.services.journal.audit(
                "-", "login.failure", "mysql", reason=problem, user=user[: MAX_NAME + 1], client=client
            )
            raise ClientError(1045, "28000", f"Access denied: {problem}")
        return user

    async def _authenticate(self, user: str, token: str, client: str) -> Identity:
        try:
            return await self.services.authenticate(user, token, door="mysql", client=client)
        except AuthError as exc:
            raise ClientError(1045, "28000", f"Access denied for user {user!r}: {exc.reason}") from None

    def _claim(self, identity: Identity, connection: Connection, client: str) -> SessionSlot:
        """One of the user's sessions on this connection, before the upstream is contacted."""
        try:
            return self.services.limiter.claim_session(identity.name, connection.name, "mysql", client)
        except TooManySessions as exc:
            raise ClientError(1203, "42000", str(exc)) from None

    def _connection(self, identity: Identity, name: str, client: str) -> Connection:
        """The connection the database name picks, or the user's default when it is empty."""
        try:
            return (
                self.services.resolve_connection(identity, name, "mysql")
                if name
                else default_connection(self.services, identity)
            )
        except NoDefaultConnection as exc:
            self.services.journal.audit(identity.name, "login.failure", "-", reason=str(exc), client=client)
            raise ClientError(1044, "42000", str(exc)) from None
        except AccessDenied as exc:
            self.services.journal.audit(
                identity.name, "login.failure", name, reason="no such connection", client=client
            )
            raise ClientError(1044, "42000", f"{exc} ({name!r}): the database name picks the connection") from None

    async def _read_routines(
        self, identity: Identity, connection: Connection, target: MySQLTarget, upstream: MySQLUpstream
    ) -> None:
        """Calls of routines that exist upstream are judged by their bodies: read them first."""
        try:
            subject = Subject(identity.name, identity.groups, connection.name, "mysql")
            await self.routines.get(connection.name, target).session_start(subject)
        except RoutineCatalogError as exc:
            self.services.journal.audit(identity.name, "routines.unreadable", connection.name, reason=str(exc))
            await upstream.close()
            raise ClientError(1105, "HY000", str(exc)) from None

    def _target(
        self, connection: Connection, caps: int, response: cp.HandshakeResponse, identity: Identity
    ) -> MySQLTarget:
        wanted = (caps & ~CLIENT_ONLY) | (DEFAULT_CLIENT_CAPABILITIES & c.CLIENT_PLUGIN_AUTH) | c.CLIENT_SESSION_TRACK
        if not connection.allow_local_infile:
            wanted &= ~c.CLIENT_LOCAL_FILES
        attrs = {"_client_name": "hoop", "hoop_user": identity.name}
        program = response.connect_attrs.get(b"program_name")
        if program:
            attrs["program_name"] = program.decode("utf-8", "replace")[:64]
        return MySQLTarget(
            host=connection.host,
            port=connection.port,
            username=connection.username,
            password=connection.password.reveal() if connection.password else "",
            database=connection.database or None,
            ssl=connection.sslmode,
            ssl_ca=str(connection.sslrootcert) if connection.sslrootcert else None,
            server_public_key=str(connection.server_public_key) if connection.server_public_key else None,
            connect_timeout=connection.connect_timeout,
            name=connection.name,
            client_capabilities=wanted,
            charset=response.charset or c.CHARSET_UTF8MB4_GENERAL_CI,
            connect_attrs=attrs,
        )

    async def _login_upstream(self, target: MySQLTarget, caps: int) -> tuple[Any, Settings]:
        """Log in upstream and learn how the server reads this session's text (the character
        set from the handshake, the server's sql_mode, which a global default may already set
        to ANSI_QUOTES or NO_BACKSLASH_ESCAPES): the server reports both in the OK packet of
        TRACK_SQL. A session under settings the gateway cannot read is refused here."""
        began = time.monotonic()
        try:
            upstream = await connect_upstream(target)
            self.services.metrics.upstream_connected("mysql", target.name, time.monotonic() - began)
        except UpstreamError as exc:
            self.services.journal.audit("-", "upstream.failure", target.name, reason=exc.message)
            raise ClientError(exc.code, exc.sqlstate, f"connection {target.name!r}: {exc.message}") from None
        problem: tuple[int, str, str] | None = None
        if (upstream.capabilities ^ caps) & LAYOUT:
            problem = (
                2054,
                "08004",
                f"the server lacks protocol features this client uses (0x{(upstream.capabilities ^ caps) & LAYOUT:x})",
            )
        elif not upstream.capabilities & c.CLIENT_SESSION_TRACK:
            problem = (1235, "42000", "the server does not report session settings (MySQL 5.7+, MariaDB 10.2+)")
        settings = Settings(
            server_version=mysql_version_id(upstream.server_version), mariadb=upstream.handshake.is_mariadb
        )
        if problem is None:
            try:
                ok = await run_setup(upstream, TRACK_SQL)
            except UpstreamError as exc:
                problem = (exc.code, exc.sqlstate, exc.message)
            else:
                settings.update(parse_state(ok.session_state or b""))
                problem = settings.login_problem()
        if problem is not None:
            await upstream.close()
            code, state, message = problem
            self.services.journal.audit("-", "upstream.failure", target.name, reason=message)
            raise ClientError(code, state, f"connection {target.name!r}: {message}")
        return upstream, settings

    async def _run_session(
        self,
        login: _Login,
        tls: bool,
        conn_id: int,
        caps: int,
        identity: Identity,
        connection: Connection,
        target: MySQLTarget,
        upstream: MySQLUpstream,
        settings: Settings,
        client: str,
    ) -> None:
        services = self.services
        session = Session(services, identity, connection.name, "mysql", client)
        relay = Relay(
            session=session,
            max_message=services.config.gateway.max_message_size,
            caps=caps,
            upstream_caps=upstream.capabilities,
            settings=settings,
            target=target,
            upstream_id=upstream.connection_id,
            gateway_id=conn_id,
            door=self,
            allow_local_infile=connection.allow_local_infile,
        )
        session.start(
            relay.kill,
            client=client,
            tls=tls,
            gateway_id=conn_id,
            upstream_id=upstream.connection_id,
            upstream_tls=upstream.tls,
        )
        login.send(p.build_ok(p.OkPacket(status=upstream.status), caps))
        self.relays[conn_id] = relay
        try:
            await relay.run(
                (login.reader, login.writer, login.framer.take_rest()),
                (upstream.reader, upstream.writer, upstream.leftover),
            )
        finally:
            self.relays.pop(conn_id, None)
            session.close(CloseStatus.CLOSED)  # the relay has closed it with its status unless it failed first


async def _sock_exact(loop: asyncio.AbstractEventLoop, sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = await loop.sock_recv(sock, n - len(buf))
        if not chunk:
            raise ConnectionError("client went away")
        buf += chunk
    return buf


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _refuse_first_packet(sock: socket.socket, message: str) -> None:
    """An ERR for a first packet we would not read (not MySQL at all, or absurdly long), then
    close. What the client sent is read and dropped for a moment first (at most 1 s, 1 MiB):
    closing with unread bytes would send a reset, and the client would lose the reason."""
    loop = asyncio.get_running_loop()
    try:
        await loop.sock_sendall(sock, c.encode_packet(p.build_err(1043, "08S01", message), 2))
        sock.shutdown(socket.SHUT_WR)
        dropped = 0
        async with asyncio.timeout(1.0):
            while dropped < 1 << 20 and (chunk := await loop.sock_recv(sock, 65536)):
                dropped += len(chunk)
    except (OSError, TimeoutError):
        pass
    finally:
        sock.close()


def _fail(login: _Login, code: int, sqlstate: str, message: str) -> None:
    try:
        login.send(p.build_err(code, sqlstate, message[:1000]))
        login.writer.close()
    except (OSError, RuntimeError):
        pass
