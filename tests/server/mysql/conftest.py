"""Fixtures for the MySQL wire tests: the real MariaDB, throwaway users, TLS material, and a
tiny token-receiving server built on hoop's own codec and ClearTokenAuth."""

from __future__ import annotations

import asyncio
import secrets
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pymysql
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from support.servers import missing

from hoop.core.tlscert import write_self_signed
from hoop.server.mysql import codec as c
from hoop.server.mysql import connection_phase as cp
from hoop.server.mysql import packets as p
from hoop.server.mysql.auth import AuthProtocolError, ClearTokenAuth, new_scramble

MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}


@pytest.fixture(scope="session")
def mariadb_root() -> Iterator[pymysql.connections.Connection]:
    """Root connection to the machine's MariaDB; missing server fails under CI, else skips."""
    try:
        conn = pymysql.connect(**MARIADB, autocommit=True, connect_timeout=5)
    except pymysql.err.OperationalError as exc:
        missing(f"MariaDB on 127.0.0.1:3306 not available: {exc}")
    yield conn
    conn.close()


@dataclass
class DbUser:
    name: str
    password: str


@pytest.fixture
def mariadb_user(mariadb_root: pymysql.connections.Connection) -> Iterator[DbUser]:
    """A per-test mysql_native_password user with rights on `test`, dropped afterwards."""
    user = DbUser(f"hoop_t_{secrets.token_hex(4)}", secrets.token_urlsafe(16))
    with mariadb_root.cursor() as cur:
        cur.execute(
            "CREATE USER %s@'127.0.0.1' IDENTIFIED VIA mysql_native_password USING PASSWORD(%s)",
            (user.name, user.password),
        )
        cur.execute("GRANT ALL ON test.* TO %s@'127.0.0.1'", (user.name,))
    yield user
    with mariadb_root.cursor() as cur:
        cur.execute("DROP USER IF EXISTS %s@'127.0.0.1'", (user.name,))


@dataclass
class TlsFiles:
    cert: Path
    key: Path


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """Self-signed certificate for 127.0.0.1 (it is its own CA)."""
    d = tmp_path_factory.mktemp("tls")
    write_self_signed(d / "cert.pem", d / "key.pem", names=("127.0.0.1",), days=1)
    return TlsFiles(d / "cert.pem", d / "key.pem")


@dataclass
class Login:
    user: bytes
    client_plugin: str | None
    tls: bool
    accepted: bool


@dataclass
class TokenServer:
    """Accepts a login when the clear token equals `token`; answers every command with OK.

    Before TLS the socket is read with exact sizes: a client sends its TLS ClientHello right
    after the SSLRequest, and those bytes must stay in the kernel buffer for the TLS layer
    (asyncio's StreamWriter.start_tls would lose bytes already buffered by the reader).
    """

    token: bytes
    ssl_context: ssl.SSLContext | None = None
    rsa_key: rsa.RSAPrivateKey | None = None
    logins: list[Login] = field(default_factory=list)
    port: int = 0

    async def handle(self, sock: socket.socket) -> None:
        try:
            await self._session(sock)
        except (ConnectionError, AuthProtocolError, c.ProtocolViolation, ssl.SSLError):
            pass
        finally:
            sock.close()

    async def _session(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        scramble = new_scramble()
        caps = (
            c.CLIENT_LONG_PASSWORD
            | c.CLIENT_PROTOCOL_41
            | c.CLIENT_SECURE_CONNECTION
            | c.CLIENT_PLUGIN_AUTH
            | c.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
            | c.CLIENT_CONNECT_WITH_DB
            | c.CLIENT_CONNECT_ATTRS
            | c.CLIENT_TRANSACTIONS
            | c.CLIENT_MULTI_RESULTS
            | (c.CLIENT_SSL if self.ssl_context else 0)
        )
        hs = cp.ServerHandshake(b"8.0.99-hoop-test", 4242, scramble, caps, 45, 2, "caching_sha2_password")
        await loop.sock_sendall(sock, c.encode_packet(cp.build_handshake(hs), 0))
        header = await _sock_exact(loop, sock, 4)
        payload = await _sock_exact(loop, sock, int.from_bytes(header[:3], "little"))
        seq = header[3]
        use_tls = cp.is_ssl_request(payload)
        reader = asyncio.StreamReader()
        proto = asyncio.StreamReaderProtocol(reader)
        transport, _ = await loop.connect_accepted_socket(
            lambda: proto, sock, ssl=self.ssl_context if use_tls else None
        )
        writer = asyncio.StreamWriter(transport, proto, reader, loop)
        try:
            if use_tls:
                seq, payload = await _read_packet(reader)
            await self._authenticate(reader, writer, scramble, caps, use_tls, seq, payload)
        finally:
            writer.close()

    async def _authenticate(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        scramble: bytes,
        caps: int,
        tls: bool,
        seq: int,
        payload: bytes,
    ) -> None:
        resp = cp.parse_handshake_response(payload)
        auth = ClearTokenAuth(scramble, tls, self.rsa_key)
        step = auth.start(resp)
        while step.token is None:
            writer.write(c.encode_packet(step.reply or b"", seq + 1))
            seq, payload = await _read_packet(reader)
            step = auth.feed(payload)
        ok = secrets.compare_digest(step.token, self.token)
        self.logins.append(Login(resp.username, resp.auth_plugin, tls, ok))
        if not ok:
            writer.write(c.encode_packet(p.build_err(1045, "28000", "Access denied (hoop test server)"), seq + 1))
            await writer.drain()
            return
        writer.write(c.encode_packet(p.build_ok(p.OkPacket(), caps), seq + 1))
        while True:
            seq, payload = await _read_packet(reader)
            if payload[:1] == bytes((c.COM_QUIT,)):
                return
            writer.write(c.encode_packet(p.build_ok(p.OkPacket(), caps), seq + 1))


async def _sock_exact(loop: asyncio.AbstractEventLoop, sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = await loop.sock_recv(sock, n - len(buf))
        if not chunk:
            raise ConnectionError("client went away")
        buf += chunk
    return buf


async def _read_packet(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    framer = c.PacketFramer()
    while (pkt := framer.next()) is None:
        data = await reader.read(65536)
        if not data:
            raise ConnectionError("client went away")
        framer.feed(data)
    if framer.buffered:
        raise c.ProtocolViolation("client pipelined during login")
    return pkt


@pytest.fixture
async def token_server_factory() -> AsyncIterator[Callable[..., Awaitable[TokenServer]]]:
    """`await factory(token, ssl_context=None, rsa_key=None)` starts a TokenServer on
    127.0.0.1 (ephemeral port); all stop at teardown."""
    loop = asyncio.get_running_loop()
    listeners: list[socket.socket] = []
    tasks: set[asyncio.Task[None]] = set()

    async def accept_loop(server: TokenServer, listener: socket.socket) -> None:
        while True:
            sock, _ = await loop.sock_accept(listener)
            sock.setblocking(False)
            task = asyncio.create_task(server.handle(sock))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    async def start(
        token: bytes,
        ssl_context: ssl.SSLContext | None = None,
        rsa_key: rsa.RSAPrivateKey | None = None,
    ) -> TokenServer:
        server = TokenServer(token, ssl_context, rsa_key)
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        listeners.append(listener)
        server.port = listener.getsockname()[1]
        task = asyncio.create_task(accept_loop(server, listener))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return server

    yield start
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for listener in listeners:
        listener.close()
