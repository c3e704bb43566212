"""Impostor database servers: whoever answers at a database address and asks for the password.

Each runs an asyncio server on 127.0.0.1 in a thread of its own (so a gateway subprocess and
an async test alike can reach it) and keeps every byte a client sent it after any TLS layer,
which is what an impostor learns. `PgImpostor` asks for a cleartext password or MD5 and,
given one, finishes the login (so a test can also show that a verified server does get it);
`MysqlImpostor` asks for caching_sha2_password full authentication, offers its own RSA key,
and decrypts whatever it can.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives.asymmetric import rsa

from hoop.server.mysql import auth as my_auth
from hoop.server.mysql import codec as my_codec
from hoop.server.mysql import connection_phase as cp
from hoop.server.mysql import packets as my_packets
from hoop.server.postgres import codec as pg_codec
from hoop.server.postgres import framing as pg_framing


@dataclass
class Impostor:
    received: bytearray = field(default_factory=bytearray)
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None

    def leaked(self, password: str) -> bool:
        """Whether the impostor could read `password` (raw, or after its own decryption)."""
        return password.encode() in bytes(self.received)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def _read(self, reader: asyncio.StreamReader) -> bytes:
        data = await reader.read(65536)
        if not data:
            raise ConnectionError("client went away")
        self.received += data
        return data

    async def _guarded(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._handle(reader, writer)
            while await self._read(reader):  # keep listening: anything sent later counts too
                pass
        except (ConnectionError, ssl.SSLError, OSError, ValueError):
            pass
        finally:
            writer.transport.abort()


@contextmanager
def serving(impostor: Impostor) -> Iterator[Impostor]:
    """Run `impostor` on an ephemeral loopback port until the block ends."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    async def start() -> asyncio.Server:
        server = await asyncio.start_server(impostor._guarded, "127.0.0.1", 0)
        impostor.port = server.sockets[0].getsockname()[1]
        return server

    def run() -> None:
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(start())
        ready.set()
        loop.run_forever()
        server.close()
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield impostor
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def server_tls(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


@dataclass
class PgImpostor(Impostor):
    """Asks for `method` ('password' = AuthenticationCleartextPassword, or 'md5')."""

    method: Literal["password", "md5"] = "password"
    tls: ssl.SSLContext | None = None
    salt: bytes = b"s4lt"
    passwords: list[bytes] = field(default_factory=list)  # PasswordMessage payloads it got

    def leaked(self, password: str, user: str = "") -> bool:
        inner = hashlib.md5((password + user).encode()).hexdigest()
        md5 = b"md5" + hashlib.md5(inner.encode() + self.salt).hexdigest().encode()
        return super().leaked(password) or md5 in bytes(self.received)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        framer = pg_framing.MessageFramer()
        startup = await self._startup(reader, framer)
        if pg_codec.parse_startup(startup[4:]).kind == "ssl":
            if self.tls is None:
                writer.write(b"N")
            else:
                writer.write(b"S")
                await writer.start_tls(self.tls)
            startup = await self._startup(reader, framer)
        if self.method == "md5":
            writer.write(pg_codec.authentication_md5_password(self.salt))
        else:
            writer.write(pg_codec.authentication_cleartext_password())
        while (msg := framer.next()) is None:
            framer.feed(await self._read(reader))
        self.passwords.append(bytes(msg[1][5:]))
        writer.write(
            pg_codec.authentication_ok()
            + pg_codec.parameter_status("server_version", "16.0")
            + pg_codec.backend_key_data(1, 2)
            + pg_codec.ready_for_query()
        )
        await writer.drain()

    async def _startup(self, reader: asyncio.StreamReader, framer: pg_framing.MessageFramer) -> bytes:
        while (msg := framer.next_startup()) is None:
            framer.feed(await self._read(reader))
        return bytes(msg)


@dataclass
class MysqlImpostor(Impostor):
    """No TLS; caching_sha2_password, then "perform full authentication". With `switch_to_clear`
    it asks for mysql_clear_password instead. It hands out its own RSA key on request and
    decrypts any packet it can with it; a `genuine` one accepts `password` and says OK."""

    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    switch_to_clear: bool = False
    password: bytes = b""
    decrypted: list[bytes] = field(default_factory=list)
    accepted: bool = False

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        scramble = my_auth.new_scramble()
        caps = (
            my_codec.CLIENT_LONG_PASSWORD
            | my_codec.CLIENT_PROTOCOL_41
            | my_codec.CLIENT_SECURE_CONNECTION
            | my_codec.CLIENT_PLUGIN_AUTH
            | my_codec.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
            | my_codec.CLIENT_CONNECT_WITH_DB
            | my_codec.CLIENT_TRANSACTIONS
            | my_codec.CLIENT_MULTI_RESULTS
            | my_codec.CLIENT_MYSQL
        )
        hs = cp.ServerHandshake(b"8.0.99-impostor", 7, scramble, caps, 45, 2, my_auth.CACHING_SHA2_PASSWORD)
        writer.write(my_codec.encode_packet(cp.build_handshake(hs), 0))
        framer = my_codec.PacketFramer()
        seq, _response = await self._packet(reader, framer)
        if self.switch_to_clear:
            writer.write(my_codec.encode_packet(cp.build_auth_switch(my_auth.CLEAR_PASSWORD, b""), seq + 1))
        else:
            writer.write(
                my_codec.encode_packet(cp.build_auth_more_data(my_auth.CACHING_SHA2_PERFORM_FULL_AUTH), seq + 1)
            )
        seq, payload = await self._packet(reader, framer)
        if payload == my_auth.CACHING_SHA2_REQUEST_PUBLIC_KEY:
            writer.write(my_codec.encode_packet(cp.build_auth_more_data(my_auth.public_key_pem(self.key)), seq + 1))
            seq, payload = await self._packet(reader, framer)
        try:
            plain = my_auth.rsa_decrypt_password(self.key, payload, scramble)
            self.decrypted.append(plain)
            self.received += plain  # what the impostor learns counts as received
        except (my_auth.AuthProtocolError, ValueError):
            plain = payload.rstrip(b"\x00")
        self.accepted = bool(self.password) and plain == self.password
        reply = (
            my_packets.build_ok(my_packets.OkPacket(), caps)
            if self.accepted
            else my_packets.build_err(1045, "28000", "Access denied (impostor)")
        )
        writer.write(my_codec.encode_packet(reply, seq + 1))
        await writer.drain()

    async def _packet(self, reader: asyncio.StreamReader, framer: my_codec.PacketFramer) -> tuple[int, bytes]:
        while (pkt := framer.next()) is None:
            framer.feed(await self._read(reader))
        return pkt[0], bytes(pkt[1])

    def public_key_file(self, path: Path) -> Path:
        path.write_bytes(my_auth.public_key_pem(self.key))
        return path
