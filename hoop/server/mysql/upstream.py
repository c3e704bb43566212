"""Log in to an upstream MySQL/MariaDB server with the gateway's stored credential.

`connect_upstream(target)` runs the connection phase as named steps: connect, read the
handshake, negotiate capabilities, upgrade to TLS if asked, send HandshakeResponse41, then
follow the server through auth switches and caching_sha2 fast/full authentication.
Error messages name the target, never the password.

What goes to the server depends on whether its identity was verified (hoop.server.upstream_tls):
scrambles (mysql_native_password, the caching_sha2 fast path) are challenge-response, one-time
answers to the server's random nonce that do not contain the password, so they go to any
server; the password itself (caching_sha2 full authentication, mysql_clear_password) goes only
over TLS whose certificate verified, or, for caching_sha2, RSA-encrypted with the public key
pinned in `server_public_key`. A key the server sends is never used: an impostor would send its
own. An empty password is no secret and is sent as is.
"""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_mod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NoReturn

from hoop.server import upstream_tls
from hoop.server.mysql import auth
from hoop.server.mysql import codec as c
from hoop.server.mysql import connection_phase as cp
from hoop.server.mysql import packets as p

SslMode = Literal["disable", "prefer", "require", "verify-ca", "verify-full"]
log = logging.getLogger("hoop.mysql")

# What the gateway asks for by default. No compression, no LOCAL INFILE (a file-read
# primitive on the gateway host), no MariaDB metadata caching (changes row layouts).
DEFAULT_CLIENT_CAPABILITIES = (
    c.CLIENT_LONG_PASSWORD
    | c.CLIENT_LONG_FLAG
    | c.CLIENT_PROTOCOL_41
    | c.CLIENT_TRANSACTIONS
    | c.CLIENT_SECURE_CONNECTION
    | c.CLIENT_MULTI_STATEMENTS
    | c.CLIENT_MULTI_RESULTS
    | c.CLIENT_PS_MULTI_RESULTS
    | c.CLIENT_PLUGIN_AUTH
    | c.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
    | c.CLIENT_CONNECT_ATTRS
    | c.CLIENT_SESSION_TRACK
    | c.CLIENT_DEPRECATE_EOF
)
# Bits the gateway's own login code depends on.
_REQUIRED = c.CLIENT_PROTOCOL_41 | c.CLIENT_SECURE_CONNECTION | c.CLIENT_PLUGIN_AUTH


class UpstreamError(Exception):
    """Upstream refused or broke the login; code/sqlstate are suitable for an ERR packet."""

    def __init__(self, code: int, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.sqlstate = sqlstate
        self.message = message


class UpstreamUnavailable(UpstreamError):
    """The upstream could not be reached (refused, timed out, closed during login)."""


class UpstreamAuthFailed(UpstreamError):
    """The upstream rejected the stored credential."""


@dataclass(frozen=True)
class MySQLTarget:
    host: str
    port: int = 3306
    username: str = "root"
    password: str = field(default="", repr=False)
    database: str | None = None
    ssl: SslMode = "verify-full"
    ssl_ca: str | None = None
    server_public_key: str | None = None  # PEM file of the server's RSA key, pinned
    connect_timeout: float = 10.0
    name: str = ""
    client_capabilities: int = DEFAULT_CLIENT_CAPABILITIES
    charset: int = c.CHARSET_UTF8MB4_GENERAL_CI
    connect_attrs: dict[str, str] = field(default_factory=lambda: {"_client_name": "hoop"})

    @property
    def label(self) -> str:
        return self.name or f"{self.host}:{self.port}"


@dataclass
class MySQLUpstream:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    handshake: cp.ServerHandshake
    capabilities: int  # negotiated (what both sides speak), incl. MariaDB extended bits
    status: int  # server status from the final OK packet
    leftover: bytes  # bytes read past the final OK (normally empty)
    tls: bool

    @property
    def connection_id(self) -> int:
        """Upstream thread id, e.g. for mapping KILL / cancellation."""
        return self.handshake.connection_id

    @property
    def server_version(self) -> str:
        return self.handshake.display_version

    async def close(self) -> None:
        try:
            self.writer.write(c.encode_packet(bytes((c.COM_QUIT,)), 0))
            self.writer.close()
            await self.writer.wait_closed()
        except (OSError, ConnectionError, ssl_mod.SSLError):
            pass


class _Conn:
    """Packet I/O during the login: tracks the sequence id."""

    def __init__(self, target: MySQLTarget, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.t = target
        self.reader = reader
        self.writer = writer
        self.framer = c.PacketFramer()
        self.seq = 0

    async def read(self) -> bytes:
        while True:
            pkt = self.framer.next()
            if pkt is not None:
                self.seq = (pkt[0] + 1) & 0xFF
                return pkt[1]
            data = await self.reader.read(65536)
            if not data:
                raise UpstreamUnavailable(2013, "HY000", f"{self.t.label}: upstream closed the connection during login")
            self.framer.feed(data)

    def send(self, payload: bytes) -> None:
        self.writer.write(c.encode_packet(payload, self.seq))
        self.seq = (self.seq + c.packet_count(len(payload))) & 0xFF


async def connect_upstream(target: MySQLTarget) -> MySQLUpstream:
    try:
        async with asyncio.timeout(target.connect_timeout):
            return await _login(target)
    except TimeoutError:
        raise UpstreamUnavailable(
            2013, "HY000", f"{target.label}: login timed out after {target.connect_timeout}s"
        ) from None


async def _login(t: MySQLTarget) -> MySQLUpstream:
    reader, writer = await _open(t)
    conn = _Conn(t, reader, writer)
    try:
        hs = await _read_handshake(conn)
        caps = _negotiate(t, hs)
        tls = await _maybe_start_tls(conn, hs, caps)
        verified = upstream_tls.verified(t.ssl, t.ssl_ca, tls)
        status = await _authenticate(conn, hs, caps, tls, verified)
    except BaseException:
        writer.close()
        raise
    return MySQLUpstream(reader, writer, hs, caps, status, conn.framer.take_rest(), tls)


async def _open(t: MySQLTarget) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        return await asyncio.open_connection(t.host, t.port)
    except OSError as exc:
        raise UpstreamUnavailable(
            2003, "HY000", f"{t.label}: cannot connect to {t.host}:{t.port} ({exc.strerror or exc})"
        ) from None


async def _read_handshake(conn: _Conn) -> cp.ServerHandshake:
    payload = await conn.read()
    if p.is_err(payload):
        err = p.parse_err(payload)
        raise UpstreamUnavailable(err.code, err.sqlstate, f"{conn.t.label}: {err.message}")
    try:
        return cp.parse_handshake(payload)
    except c.ProtocolViolation as exc:
        raise UpstreamError(2027, "HY000", f"{conn.t.label}: bad handshake: {exc}") from None


def _negotiate(t: MySQLTarget, hs: cp.ServerHandshake) -> int:
    wanted = t.client_capabilities | _REQUIRED
    if t.database:
        wanted |= c.CLIENT_CONNECT_WITH_DB
    missing = _REQUIRED & ~hs.capabilities
    if missing:
        raise UpstreamError(2054, "08004", f"{t.label}: server lacks required capabilities 0x{missing:x}")
    caps = wanted & hs.capabilities & 0xFFFFFFFF
    if not hs.capabilities & c.CLIENT_MYSQL:  # MariaDB: extended caps are negotiated too
        caps |= wanted & hs.capabilities & ~0xFFFFFFFF
        caps &= ~c.CLIENT_MYSQL
    return caps


async def _maybe_start_tls(conn: _Conn, hs: cp.ServerHandshake, caps: int) -> bool:
    t = conn.t
    if t.ssl == "disable":
        return False
    if not hs.capabilities & c.CLIENT_SSL:
        if t.ssl == "prefer":
            return False
        raise UpstreamError(2026, "HY000", f"{t.label}: sslmode={t.ssl} but the server does not offer TLS")
    conn.send(cp.build_ssl_request(caps, t.charset))
    await conn.writer.drain()
    try:
        await conn.writer.start_tls(upstream_tls.client_context(t.ssl, t.ssl_ca), server_hostname=t.host)
    except ssl_mod.SSLCertVerificationError as exc:
        raise UpstreamError(2026, "HY000", f"{t.label}: {upstream_tls.untrusted(t.host, t.port, t.ssl, exc)}") from None
    except (ssl_mod.SSLError, OSError) as exc:
        raise UpstreamError(2026, "HY000", f"{t.label}: TLS handshake failed: {exc}") from None
    return True


def _auth_data(plugin: str, password: bytes, scramble: bytes) -> bytes:
    if plugin == auth.CACHING_SHA2_PASSWORD:
        return auth.scramble_caching_sha2(password, scramble)
    return auth.scramble_native_password(password, scramble)


async def _authenticate(conn: _Conn, hs: cp.ServerHandshake, caps: int, tls: bool, verified: bool) -> int:
    t = conn.t
    password = t.password.encode("utf-8")
    plugin = (
        hs.auth_plugin if hs.auth_plugin in (auth.CACHING_SHA2_PASSWORD, auth.NATIVE_PASSWORD) else auth.NATIVE_PASSWORD
    )
    scramble = hs.scramble
    conn.send(
        cp.build_handshake_response(
            cp.HandshakeResponse(
                capabilities=caps | (c.CLIENT_SSL if tls else 0),
                username=t.username.encode("utf-8"),
                auth_response=_auth_data(plugin, password, scramble),
                database=t.database.encode("utf-8") if t.database else None,
                auth_plugin=plugin,
                connect_attrs={k.encode(): v.encode() for k, v in t.connect_attrs.items()},
                charset=t.charset,
            )
        )
    )
    while True:
        await conn.writer.drain()
        payload = await conn.read()
        if p.is_ok(payload):
            return p.parse_ok(payload, caps).status
        if p.is_err(payload):
            _raise_err(t, p.parse_err(payload))
        if payload[:1] == b"\xfe":
            plugin, scramble = cp.parse_auth_switch(payload)
            conn.send(_switch_response(t, plugin, password, scramble, verified))
        elif payload[:1] == b"\x01" and plugin == auth.CACHING_SHA2_PASSWORD:
            _caching_sha2_more(conn, cp.parse_auth_more_data(payload), password, scramble, tls, verified)
        else:
            raise UpstreamError(2027, "HY000", f"{t.label}: unexpected packet 0x{payload[:1].hex()} during login")


def _switch_response(t: MySQLTarget, plugin: str, password: bytes, scramble: bytes, verified: bool) -> bytes:
    if plugin in (auth.NATIVE_PASSWORD, auth.CACHING_SHA2_PASSWORD):
        return _auth_data(plugin, password, scramble)
    if plugin == auth.CLEAR_PASSWORD:
        if password and not verified:
            _refuse(t, "the password in clear (mysql_clear_password)")
        return auth.clear_password_response(password)
    raise UpstreamError(2059, "HY000", f"{t.label}: unsupported authentication plugin {plugin!r}")


def _caching_sha2_more(conn: _Conn, data: bytes, password: bytes, scramble: bytes, tls: bool, verified: bool) -> None:
    """caching_sha2: the fast path succeeded, or the server wants the password itself."""
    t = conn.t
    if data == auth.CACHING_SHA2_FAST_AUTH_SUCCESS:
        return  # the OK packet follows
    if data != auth.CACHING_SHA2_PERFORM_FULL_AUTH:
        raise UpstreamError(2027, "HY000", f"{t.label}: unexpected caching_sha2 data")
    if not password or verified:
        conn.send(auth.clear_password_response(password))
        return
    if tls or t.server_public_key is None:
        # over TLS the server reads the password in clear, so a pinned key cannot help there
        _refuse(t, "the full password (caching_sha2_password)", "server_public_key naming the server's RSA key file")
    conn.send(auth.rsa_encrypt_password(password, scramble, _pinned_key(t, t.server_public_key)))


def _pinned_key(t: MySQLTarget, path: str) -> bytes:
    try:
        pem = Path(path).read_bytes()
        auth.rsa_encrypt_password(b"", bytes(20), pem)  # a key that cannot encrypt fails here
    except (OSError, ValueError, auth.AuthProtocolError) as exc:
        raise UpstreamError(2061, "HY000", f"{t.label}: cannot use server_public_key {path}: {exc}") from None
    return pem


def _refuse(t: MySQLTarget, asked: str, other_fix: str = "") -> NoReturn:
    text = upstream_tls.unverified_refusal(asked, t.ssl, other_fix)
    log.warning("connection %r: %s", t.label, text)
    # 2061 is the client error MySQL itself gives when full authentication needs a secure connection
    raise UpstreamError(2061, "HY000", f"{t.label}: {text}")


async def run_setup(up: MySQLUpstream, sql: str) -> p.OkPacket:
    """Run one statement of the gateway's own on a fresh login, before the relay starts, and
    return its OK packet (UpstreamError for anything else)."""
    label = up.server_version
    framer = c.PacketFramer()
    framer.feed(up.leftover)
    up.leftover = b""
    up.writer.write(c.encode_packet(p.build_com_query(sql), 0))
    await up.writer.drain()
    while (pkt := framer.next()) is None:
        data = await up.reader.read(65536)
        if not data:
            raise UpstreamUnavailable(2013, "HY000", "upstream closed the connection during setup")
        framer.feed(data)
    up.leftover = framer.take_rest()
    payload = pkt[1]
    if p.is_ok(payload):
        return p.parse_ok(payload, up.capabilities)
    if p.is_err(payload):
        err = p.parse_err(payload)
        raise UpstreamError(err.code, err.sqlstate, f"session setup refused by the server ({label}): {err.message}")
    raise UpstreamError(2027, "HY000", f"unexpected answer to the session setup from the server ({label})")


def _raise_err(t: MySQLTarget, err: p.ErrPacket) -> None:
    msg = f"{t.label}: {err.message}"
    if err.code in (1044, 1045, 1698, 1251, 1862):  # access denied / plugin / expired
        raise UpstreamAuthFailed(err.code, err.sqlstate, msg)
    raise UpstreamError(err.code, err.sqlstate, msg)
