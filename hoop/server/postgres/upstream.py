"""Log in to the real PostgreSQL server with the credential the gateway holds.

The client never sees this credential; any error raised here names the connection
(``target.name``) and is scrubbed of the password, even when the text came from the server.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from dataclasses import dataclass, field
from typing import Literal, NoReturn

import scramp

from hoop.server import upstream_tls
from hoop.server.postgres import codec, framing, frontend

log = logging.getLogger("hoop.postgres")

SSLMode = Literal["disable", "prefer", "require", "verify-ca", "verify-full"]
_SSL_MODES = ("disable", "prefer", "require", "verify-ca", "verify-full")
# Startup parameters the gateway decides itself, never taken from the client. Replication
# connections speak a protocol the statement policy cannot inspect, so they are not passed on.
_GATEWAY_OWNED = {"user", "database", "replication"}
_READ_SIZE = 65536


@dataclass(frozen=True)
class UpstreamTarget:
    host: str
    port: int
    database: str
    username: str
    password: str | None = field(default=None, repr=False)
    sslmode: SSLMode = "verify-full"
    sslrootcert: str | None = None
    connect_timeout: float = 10.0
    name: str = ""

    def __post_init__(self) -> None:
        if self.sslmode not in _SSL_MODES:
            raise ValueError(f"sslmode must be one of {', '.join(_SSL_MODES)}")


@dataclass
class UpstreamSession:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    parameters: dict[str, str]
    backend_pid: int
    backend_key: int
    tls: bool
    leftover: bytes = b""
    auth_method: str = "trust"  # 'trust' | 'password' | 'md5' | 'scram-sha-256[-plus]', for the audit

    async def close(self) -> None:
        """Say goodbye politely (Terminate) and close the socket."""
        try:
            if not self.writer.is_closing():
                self.writer.write(frontend.terminate())
            self.writer.close()
            await self.writer.wait_closed()
        except (OSError, ssl.SSLError):
            pass


class UpstreamError(Exception):
    """Login to the upstream server failed. ``sqlstate`` is suitable for an ErrorResponse."""

    def __init__(self, message: str, sqlstate: str = "08006") -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class UpstreamUnavailable(UpstreamError):
    """Could not reach the server, it went away, or it did not answer in time."""


class UpstreamAuthFailed(UpstreamError):
    """The server refused the stored credential (or asked for an unsupported method)."""


class UpstreamTLSRequired(UpstreamError):
    """TLS was required by sslmode but the server does not offer it."""


class UpstreamTLSFailed(UpstreamUnavailable):
    """The TLS handshake failed (e.g. the certificate did not verify)."""


def _scrub(text: str, password: str | None) -> str:
    if password:
        text = text.replace(password, "********")
    return text


def _md5_password(password: str, user: str, salt: bytes) -> bytes:
    inner = hashlib.md5((password + user).encode()).hexdigest()
    return b"md5" + hashlib.md5(inner.encode() + salt).hexdigest().encode()


class _Login:
    """One login attempt; keeps the state the error paths need."""

    def __init__(self, target: UpstreamTarget, startup_params: dict[str, str]) -> None:
        self.t = target
        self.label = target.name or f"{target.host}:{target.port}/{target.database}"
        self.params = {k: v for k, v in startup_params.items() if k not in _GATEWAY_OWNED}
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.tls = False
        self.verified = False  # the certificate chained to a trusted CA (and named the host)
        self.framer = framing.MessageFramer()
        self.scram: scramp.ScramClient | None = None
        self.scram_verified = False
        self.auth_method = "trust"

    def fail(self, cls: type[UpstreamError], text: str, sqlstate: str = "08006") -> NoReturn:
        # `from None`: the chained low-level exception adds nothing and is not scrubbed.
        raise cls(_scrub(f"connection {self.label!r}: {text}", self.t.password), sqlstate) from None

    async def run(self) -> UpstreamSession:
        t = self.t
        try:
            self.reader, self.writer = await asyncio.open_connection(t.host, t.port)
        except OSError as exc:
            reason = _scrub(exc.strerror or str(exc), t.password)
            self.fail(UpstreamUnavailable, f"cannot connect to {t.host}:{t.port}: {reason}")
        if t.sslmode != "disable":
            await self._negotiate_tls()
        self.writer.write(frontend.startup_message({"user": t.username, "database": t.database, **self.params}))
        await self.writer.drain()
        return await self._authenticate()

    async def _negotiate_tls(self) -> None:
        assert self.reader is not None and self.writer is not None
        t = self.t
        self.writer.write(frontend.ssl_request())
        await self.writer.drain()
        answer = await self._read_exactly(1)
        if answer == b"N":
            if t.sslmode in ("require", "verify-ca", "verify-full"):
                self.fail(
                    UpstreamTLSRequired,
                    f"server {t.host}:{t.port} does not support TLS, but sslmode={t.sslmode}",
                )
            return
        if answer != b"S":
            self.fail(UpstreamError, f"unexpected answer {answer!r} to SSLRequest", "08P01")
        # Anything already buffered arrived in plaintext before the handshake; treating it as
        # TLS-protected data would let a man in the middle inject messages (CVE-2021-23222).
        if len(getattr(self.reader, "_buffer", b"")):
            self.fail(UpstreamError, "server sent unencrypted data after accepting TLS", "08P01")
        try:
            ctx = upstream_tls.client_context(t.sslmode, t.sslrootcert)
            hostname = t.host if t.sslmode == "verify-full" else None
            await self.writer.start_tls(ctx, server_hostname=hostname)
        except ssl.SSLCertVerificationError as exc:
            self.fail(UpstreamTLSFailed, upstream_tls.untrusted(t.host, t.port, t.sslmode, exc))
        except (ssl.SSLError, ssl.CertificateError, OSError) as exc:
            reason = getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or exc
            self.fail(UpstreamTLSFailed, f"TLS handshake with {t.host}:{t.port} failed: {reason}")
        self.tls = True
        self.verified = upstream_tls.verified(t.sslmode, t.sslrootcert, tls=True)

    async def _read_exactly(self, n: int) -> bytes:
        assert self.reader is not None
        try:
            return await self.reader.readexactly(n)
        except asyncio.IncompleteReadError:
            self.fail(UpstreamUnavailable, "server closed the connection during login")
        except OSError as exc:
            self.fail(UpstreamUnavailable, f"connection lost during login: {exc}")

    async def _next_message(self) -> tuple[int, bytes]:
        assert self.reader is not None
        while (msg := self.framer.next()) is None:
            try:
                chunk = await self.reader.read(_READ_SIZE)
            except (OSError, ssl.SSLError) as exc:
                self.fail(UpstreamUnavailable, f"connection lost during login: {exc}")
            if not chunk:
                self.fail(UpstreamUnavailable, "server closed the connection during login")
            self.framer.feed(chunk)
        return msg[0], bytes(msg[1][5:])

    async def _send(self, data: bytes) -> None:
        assert self.writer is not None
        self.writer.write(data)
        await self.writer.drain()

    def _need_password(self, method: str) -> str:
        if self.t.password is None:
            self.fail(
                UpstreamAuthFailed,
                f"server requires {method} authentication but no password is stored",
                "28P01",
            )
        return self.t.password

    def _revealing(self, method: str, asked: str) -> str:
        """The password for a method that shows it to the server: only a verified server gets
        it (an empty password is no secret). SCRAM needs no such check: its proof does not
        reveal the password."""
        pw = self._need_password(method)
        if pw and not self.verified:
            text = upstream_tls.unverified_refusal(asked, self.t.sslmode, "use SCRAM-SHA-256 on the server")
            log.warning("connection %r: %s", self.label, text)
            self.fail(UpstreamAuthFailed, text, "28000")
        return pw

    async def _start_scram(self, mechs: list[str]) -> None:
        """SCRAM-SHA-256, bound to the TLS channel (-PLUS, tls-server-end-point) whenever TLS
        is on and the server offers it: a man in the middle relaying the exchange to the real
        server then fails, because the two sides see different certificates."""
        offered = [m for m in ("SCRAM-SHA-256", "SCRAM-SHA-256-PLUS") if m in mechs]
        if not offered:
            self.fail(UpstreamAuthFailed, f"unsupported SASL mechanisms {mechs}", "28000")
        pw = self._need_password("SCRAM-SHA-256")
        assert self.writer is not None
        tls_object = self.writer.get_extra_info("ssl_object") if self.tls else None
        try:
            binding = ("tls-server-end-point", tls_object) if tls_object is not None else None
            self.scram = scramp.ScramClient(offered, self.t.username, pw, channel_binding=binding)
        except scramp.ScramException:  # e.g. a certificate whose hash binding is undefined
            if "SCRAM-SHA-256" not in offered:
                self.fail(UpstreamAuthFailed, "cannot bind SCRAM to this server's certificate", "28000")
            self.scram = scramp.ScramClient(["SCRAM-SHA-256"], self.t.username, pw)
        mechanism = self.scram.mechanism_name
        self.auth_method = mechanism.lower()
        first = self.scram.get_client_first().encode()
        await self._send(frontend.sasl_initial_response(mechanism, first))

    async def _authenticate(self) -> UpstreamSession:
        """Answer authentication requests, then collect parameters until ReadyForQuery."""
        assert self.reader is not None and self.writer is not None
        parameters: dict[str, str] = {}
        pid = key = 0
        while True:
            mtype, payload = await self._next_message()
            if mtype == ord("R"):
                await self._auth_request(*codec.parse_authentication(payload))
            elif mtype == ord("E"):
                self._server_error(codec.parse_error_fields(payload))
            elif mtype == ord("S"):
                name, value = codec.parse_parameter_status(payload)
                parameters[name] = value
            elif mtype == ord("K"):
                pid, key = codec.parse_backend_key_data(payload)
            elif mtype in (ord("N"), ord("v")):
                continue  # notices and NegotiateProtocolVersion need no answer
            elif mtype == ord("Z"):
                rest = self.framer.take_rest()
                return UpstreamSession(self.reader, self.writer, parameters, pid, key, self.tls, rest, self.auth_method)
            else:
                self.fail(UpstreamError, f"unexpected message {chr(mtype)!r} during login", "08P01")

    async def _auth_request(self, code: int, data: bytes) -> None:
        t = self.t
        if code == 0:  # AuthenticationOk
            if self.scram is not None and not self.scram_verified:
                # A server that skips SCRAM's final proof never showed it knows the password.
                self.fail(UpstreamAuthFailed, "server skipped SCRAM verification", "28000")
        elif code == 3:  # cleartext: the password itself
            pw = self._revealing("password", "a cleartext password")
            self.auth_method = "password"
            await self._send(frontend.password_message(pw.encode()))
        elif code == 5:  # md5: a hash that logs in like the password wherever the same role exists
            pw = self._revealing("md5", "an MD5 password")
            self.auth_method = "md5"
            await self._send(frontend.password_message(_md5_password(pw, t.username, data[:4])))
        elif code == 10:
            await self._start_scram(codec.parse_sasl_mechanisms(data))
        elif code in (11, 12) and self.scram is not None:
            try:
                if code == 11:
                    self.scram.set_server_first(data.decode())
                    await self._send(frontend.sasl_response(self.scram.get_client_final().encode()))
                else:
                    self.scram.set_server_final(data.decode())
                    self.scram_verified = True
            except (scramp.ScramException, UnicodeDecodeError) as exc:
                self.fail(UpstreamAuthFailed, f"SCRAM exchange failed: {exc}", "28000")
        else:
            self.fail(UpstreamAuthFailed, f"unsupported authentication request {code}", "28000")

    def _server_error(self, fields: dict[str, str]) -> NoReturn:
        code = fields.get("C", "08006")
        text = f"server refused login: {fields.get('M', 'unknown error')}"
        if code.startswith("28"):
            self.fail(UpstreamAuthFailed, text, code)
        if code in ("57P03", "53300", "57P01"):  # starting up / too many connections / shutdown
            self.fail(UpstreamUnavailable, text, code)
        self.fail(UpstreamError, text, code)


async def connect_upstream(target: UpstreamTarget, startup_params: dict[str, str]) -> UpstreamSession:
    """Open a logged-in connection to ``target``; raises an UpstreamError subclass on failure."""
    login = _Login(target, startup_params)
    try:
        async with asyncio.timeout(target.connect_timeout):
            return await login.run()
    except TimeoutError:
        _abort(login)
        raise UpstreamUnavailable(
            f"connection {login.label!r}: timed out after {target.connect_timeout:g}s "
            f"connecting to {target.host}:{target.port}"
        ) from None
    except framing.ProtocolViolation as exc:
        _abort(login)
        raise UpstreamError(
            _scrub(f"connection {login.label!r}: protocol violation: {exc}", target.password),
            "08P01",
        ) from None
    except BaseException:
        _abort(login)
        raise


def _abort(login: _Login) -> None:
    if login.writer is not None:
        login.writer.close()
