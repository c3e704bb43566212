"""PostgreSQL door of the gateway: one client connection from TCP accept to relay.

`serve_client` reads as the list of steps a session goes through: negotiate TLS, read the
startup packet, take the token as a password, pick the connection, log in upstream with the
held credential, greet the client, relay. Each failure is answered with the ErrorResponse
that fits it (translated in `_fail`, the one place that maps errors to the wire).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any

from hoop.core.config import Connection
from hoop.core.errors import AccessDenied, AuthError
from hoop.core.identity import MAX_NAME, Identity, name_problem
from hoop.core.pipeline import Subject
from hoop.server.accepting import Acceptor, open_streams
from hoop.server.limiting import SessionSlot, TooManySessions
from hoop.server.postgres import codec, framing
from hoop.server.postgres.columns import ColumnResolver
from hoop.server.postgres.relay import Relay
from hoop.server.postgres.routines import CatalogReader
from hoop.server.postgres.session_text import SessionText
from hoop.server.postgres.startup_params import StartupParameterRefused, filter_startup
from hoop.server.postgres.upstream import UpstreamError, UpstreamSession, UpstreamTarget, connect_upstream
from hoop.server.routine_watch import RoutineCatalogError, RoutineWatchers
from hoop.server.services import Services
from hoop.server.session import CloseStatus, Session

log = logging.getLogger("hoop.postgres")
STARTUP_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class LoggedIn:
    """The upstream session and what the door learnt logging in to it."""

    session: UpstreamSession
    target: UpstreamTarget
    text: SessionText  # how the server reads this session's statement text


class ClientError(Exception):
    """Ends the startup phase with an ErrorResponse to the client."""

    def __init__(self, sqlstate: str, message: str, audit_reason: str = "") -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.audit_reason = audit_reason or message


class PostgresDoor:
    def __init__(self, services: Services, tls: ssl.SSLContext | None) -> None:
        self.services = services
        self.tls = tls
        self.relays: dict[tuple[int, int], Relay] = {}  # (upstream PID, our secret) -> relay, for cancels
        self.resolvers: dict[str, ColumnResolver] = {}  # connection name -> catalog lookups
        self.routines = RoutineWatchers(services.pipeline, CatalogReader().fetch)  # calls judged by bodies
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> Acceptor:
        return await Acceptor("postgres", self.services.limiter, self._accepted).start(host, port)

    def _accepted(self, sock: socket.socket, peer: Any) -> None:
        task = asyncio.create_task(self._serve_socket(sock, peer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve_socket(self, sock: socket.socket, peer: Any) -> None:
        try:
            reader, writer = await open_streams(sock, 1 << 20)
            await self.serve_client(reader, writer)
        except OSError:  # no descriptor or memory left for it: the client is dropped, not the door
            sock.close()
        finally:
            self.services.limiter.logged_in(peer)

    async def serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        slots: list[SessionSlot] = []  # the session's place under sessions_per_user, once claimed
        try:
            await self._serve(reader, writer, slots)
        finally:
            for slot in slots:
                slot.release()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, slots: list[SessionSlot]
    ) -> None:
        peer = writer.get_extra_info("peername") or ("?", 0)
        client = f"{peer[0]}:{peer[1]}"
        framer = framing.MessageFramer(min(self.services.config.gateway.max_message_size, 1 << 20))
        try:
            async with asyncio.timeout(STARTUP_TIMEOUT):
                async with asyncio.timeout(self.services.config.limits.preauth_timeout):  # the client's part
                    startup, reader, writer = await self._negotiate(reader, writer, framer)
                    if startup.kind == "cancel":
                        await self._cancel(startup.pid, startup.key)
                        writer.close()
                        return
                    user, conn_name, params = self._who(startup, client)
                    token = await self._read_password(reader, writer, framer, client)
                    identity = await self._authenticate(user, token, client)
                self.services.limiter.logged_in(peer)
                connection = self._connection(identity, conn_name, client)
                slots.append(self._claim(identity, connection, client))
                upstream = await self._login_upstream(connection, params)
                await self._read_routines(identity, connection, upstream)
        except ClientError as exc:
            _fail(writer, exc.sqlstate, str(exc))
            return
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            writer.close()
            return
        except framing.ProtocolViolation as exc:
            self.services.journal.audit("-", "login.protocol_error", client, problem=str(exc))
            _fail(writer, "08P01", f"invalid startup message: {exc}")
            return
        await self._run_session(reader, writer, framer, identity, connection, upstream, client)

    # -- steps -------------------------------------------------------------------------------

    async def _negotiate(
        self, reader: Any, writer: Any, framer: framing.MessageFramer
    ) -> tuple[codec.Startup, Any, Any]:
        """SSLRequest / GSSENCRequest until a StartupMessage or CancelRequest arrives."""
        while True:
            body = await _read_startup(reader, framer)
            startup = codec.parse_startup(body)
            if startup.kind == "ssl":
                if self.tls is None or writer.get_extra_info("sslcontext") is not None:
                    writer.write(b"N")
                    continue
                writer.write(b"S")
                await writer.drain()
                if framer.pending():
                    raise framing.ProtocolViolation("data sent before the TLS handshake")
                await writer.start_tls(self.tls)
                continue
            if startup.kind == "gssenc":
                writer.write(b"N")
                continue
            return startup, reader, writer

    def _who(self, startup: codec.Startup, client: str) -> tuple[str, str, dict[str, str]]:
        params = dict(startup.params)
        user = params.pop("user", "")
        if problem := name_problem(user):
            self.services.journal.audit(
                "-", "login.failure", "postgres", reason=problem, user=user[: MAX_NAME + 1], client=client
            )
            raise ClientError("28000", f"{problem}: connect with your Hoop user name")
        conn_name = params.pop("database", "") or user
        if "replication" in params:
            raise ClientError("28000", "replication connections are not supported through Hoop")
        try:
            return user, conn_name, filter_startup(params)
        except StartupParameterRefused as exc:
            raise ClientError("42501", str(exc)) from None

    async def _read_password(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, framer: framing.MessageFramer, client: str
    ) -> str:
        if writer.get_extra_info("sslcontext") is None and not _is_loopback(writer):
            self.services.journal.audit("-", "login.failure", "postgres", reason="password without TLS", client=client)
            raise ClientError("28000", "TLS is required to send a token to this gateway (use sslmode=require)")
        writer.write(codec.authentication_cleartext_password())
        await writer.drain()
        t, msg = await _read_message(reader, framer)
        if t != ord("p"):
            raise framing.ProtocolViolation(f"expected a password message, got {chr(t)!r}")
        return bytes(msg[5:]).rstrip(b"\0").decode("utf-8", "replace")

    async def _authenticate(self, user: str, token: str, client: str) -> Identity:
        try:
            return await self.services.authenticate(user, token, door="postgres", client=client)
        except AuthError as exc:
            raise ClientError("28P01", f"authentication failed for user {user!r}: {exc.reason}") from None

    def _claim(self, identity: Identity, connection: Connection, client: str) -> SessionSlot:
        """One of the user's sessions on this connection, before the upstream is contacted."""
        try:
            return self.services.limiter.claim_session(identity.name, connection.name, "postgres", client)
        except TooManySessions as exc:
            raise ClientError("53300", str(exc)) from None

    def _connection(self, identity: Identity, name: str, client: str) -> Connection:
        try:
            return self.services.resolve_connection(identity, name, "postgres")
        except AccessDenied as exc:
            self.services.journal.audit(
                identity.name, "login.failure", name, reason="no such connection", client=client
            )
            raise ClientError("3D000", f"{exc} ({name!r})") from None

    async def _login_upstream(self, connection: Connection, params: dict[str, str]) -> LoggedIn:
        target = UpstreamTarget(
            host=connection.host,
            port=connection.port,
            database=connection.database or connection.name,
            username=connection.username,
            password=connection.password.reveal() if connection.password else None,
            sslmode=connection.sslmode,
            sslrootcert=str(connection.sslrootcert) if connection.sslrootcert else None,
            connect_timeout=connection.connect_timeout,
            name=connection.name,
        )
        began = time.monotonic()
        try:
            upstream = await connect_upstream(target, params)
            self.services.metrics.upstream_connected("postgres", connection.name, time.monotonic() - began)
        except UpstreamError as exc:
            self.services.journal.audit("-", "upstream.failure", connection.name, reason=str(exc))
            raise ClientError(exc.sqlstate, str(exc)) from None
        text = SessionText(upstream.parameters)
        if why := text.unreadable():
            await upstream.close()
            raise ClientError("0A000", f"{why}: connect with a supported client_encoding such as UTF8")
        return LoggedIn(upstream, target, text)

    async def _run_session(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        framer: framing.MessageFramer,
        identity: Identity,
        connection: Connection,
        logged_in: LoggedIn,
        client: str,
    ) -> None:
        upstream, target = logged_in.session, logged_in.target
        services = self.services
        session = Session(services, identity, connection.name, "postgres", client)
        key = self._cancel_key(upstream.backend_pid)
        relay = Relay(
            session=session,
            max_message=services.config.gateway.max_message_size,
            upstream_target=target,
            upstream_key=(upstream.backend_pid, upstream.backend_key),
            resolver=self._resolver(connection.name, target),
            text=logged_in.text,
        )
        relay.routines_changed = self.routines.get(connection.name, target).changed
        relay.pid_is_mine = lambda pid: self.pid_is_mine(identity.name, connection.name, pid)
        session.start(
            relay.kill,
            client=client,
            tls=writer.get_extra_info("sslcontext") is not None,
            upstream_auth=upstream.auth_method,
        )
        greeting = [codec.authentication_ok()]
        greeting += [codec.parameter_status(k, v) for k, v in upstream.parameters.items()]
        greeting += [codec.backend_key_data(*key), codec.ready_for_query(b"I")]
        writer.write(b"".join(greeting))
        self.relays[key] = relay
        try:
            await relay.run((reader, writer, framer.take_rest()), (upstream.reader, upstream.writer, upstream.leftover))
        finally:
            self.relays.pop(key, None)
            session.close(CloseStatus.CLOSED)  # the relay has closed it with its status unless it failed first

    def _cancel_key(self, backend_pid: int) -> tuple[int, int]:
        """BackendKeyData for the client: the upstream backend's real PID (one upstream
        connection per session, so `backend_pid`, `pg_backend_pid()` and notification PIDs
        agree) with the gateway's own random secret. The upstream secret never reaches the
        client, and a cancel is honoured only for the pair handed out here. Two upstream
        servers may reuse a PID, so the pair is kept unique among live sessions."""
        while (key := (backend_pid, secrets.randbits(31))) in self.relays:
            pass
        return key

    def pid_is_mine(self, user: str, connection: str, pid: int) -> bool:
        """Is `pid` the upstream backend of a live session of `user` on `connection`, and of no
        one else's session? Such a session may be signalled by the user's others (a pool
        ending a broken connection); any other PID stays under the built-in rule."""
        owners = {(r.session.user, r.session.connection) for (p, _), r in self.relays.items() if p == pid}
        return owners == {(user, connection)}

    def _resolver(self, name: str, target: UpstreamTarget) -> ColumnResolver:
        resolver = self.resolvers.get(name)
        if resolver is None:
            resolver = self.resolvers[name] = ColumnResolver(target)
        return resolver

    async def _read_routines(self, identity: Identity, connection: Connection, upstream: LoggedIn) -> None:
        """Calls of routines that exist upstream are judged by their bodies: read them first."""
        try:
            subject = Subject(identity.name, identity.groups, connection.name, "postgres")
            await self.routines.get(connection.name, upstream.target).session_start(subject)
        except RoutineCatalogError as exc:
            self.services.journal.audit(identity.name, "routines.unreadable", connection.name, reason=str(exc))
            upstream.session.writer.close()
            raise ClientError("58000", str(exc)) from None

    async def _cancel(self, pid: int, key: int) -> None:
        relay = self.relays.get((pid, key))
        if relay is None:
            return  # PostgreSQL also ignores unknown keys silently
        relay.session.audit("statement.cancel")
        await relay.cancel()


async def _read_startup(reader: asyncio.StreamReader, framer: framing.MessageFramer) -> memoryview:
    while (msg := framer.next_startup()) is None:
        data = await reader.read(65536)
        if not data:
            raise asyncio.IncompleteReadError(b"", None)
        framer.feed(data)
    return msg[4:]


async def _read_message(reader: asyncio.StreamReader, framer: framing.MessageFramer) -> tuple[int, memoryview]:
    while (msg := framer.next()) is None:
        data = await reader.read(65536)
        if not data:
            raise asyncio.IncompleteReadError(b"", None)
        framer.feed(data)
    return msg


def _is_loopback(writer: asyncio.StreamWriter) -> bool:
    peer = writer.get_extra_info("peername")
    try:
        return bool(peer) and ipaddress.ip_address(peer[0]).is_loopback
    except ValueError:
        return False


def _fail(writer: asyncio.StreamWriter, sqlstate: str, message: str) -> None:
    try:
        writer.write(codec.error_response("FATAL", sqlstate, message))
        writer.close()
    except (OSError, RuntimeError):
        pass
