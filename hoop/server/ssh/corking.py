"""Fewer, larger sends on both SSH legs: what one turn of the event loop writes goes out at once.

asyncssh writes each SSH packet to its transport as soon as it is built, and it sends an empty
MSG_IGNORE before every data packet (a traffic-analysis countermeasure it always applies). So
relaying a bulk transfer cost two `send` calls per 32 KiB packet, and each could wake the
client's `ssh` once more. A bulk transfer is bound by such hand-offs between the processes of
the chain more than by CPU (see the README's performance notes). `CorkedTransport` keeps what
is written during one loop turn and writes it as one buffer when the turn ends, like TCP_CORK
but never waiting on a timer. Measured in the same rounds of bench/ssh_bench.py against the
same code without it (the target leg then an OpenSSH child): `cat` +1 to +7%, scp download
+7 to +15%, upload +4 to +6%. With the built-in target leg, corking its writes to the target
as well: upload 0.82x -> 0.87x of direct, the rest unchanged. Corking the pipe into an
OpenSSH child instead made uploads slower (0.80x -> 0.75x): it works best fed packet by packet.

How: asyncssh accepts as a listener any object with `create_server(session_factory, host,
port)`, and as a connector one with `create_connection(session_factory, host, port)` (its
tunnel protocols). `CorkingListener` and `CorkingConnector` listen and connect over TCP
themselves, so asyncssh's connections get a `CorkedTransport`.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterable
from typing import Any

from hoop.server.accepting import Acceptor
from hoop.server.limiting import Limiter

# A turn that writes more than this sends at once: bounds the copy made by joining.
FLUSH_AT = 256 * 1024


class CorkedTransport(asyncio.Transport):
    """Wraps a write transport; every other call goes straight to it."""

    def __init__(self, transport: Any) -> None:
        super().__init__()
        self._transport = transport
        self._parts: list[bytes] = []
        self._size = 0
        self._loop = asyncio.get_running_loop()
        self._scheduled = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        chunk = data if isinstance(data, bytes) else bytes(data)  # views may change after we return
        if not chunk:
            return
        self._parts.append(chunk)
        self._size += len(chunk)
        if self._size >= FLUSH_AT:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._turn_ended)

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        for data in list_of_data:
            self.write(data)

    def _turn_ended(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self) -> None:
        """Write what is held now (a no-op when nothing is)."""
        parts = self._parts
        if not parts:
            return
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self._parts = []
        self._size = 0
        if not self._transport.is_closing():
            self._transport.write(data)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return bool(self._transport.can_write_eof())

    def close(self) -> None:
        self.flush()  # what was written before close() still goes out, as with any transport
        self._transport.close()

    def abort(self) -> None:
        self._parts = []
        self._size = 0
        self._transport.abort()

    def is_closing(self) -> bool:
        return bool(self._transport.is_closing())

    def get_write_buffer_size(self) -> int:
        return int(self._transport.get_write_buffer_size()) + self._size

    def get_write_buffer_limits(self) -> tuple[int, int]:
        low, high = self._transport.get_write_buffer_limits()
        return low, high

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def is_reading(self) -> bool:
        return bool(self._transport.is_reading())

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        protocol: asyncio.BaseProtocol = self._transport.get_protocol()
        return protocol


class _CorkingProtocol(asyncio.Protocol):
    """Hands the inner protocol (asyncssh's connection) a CorkedTransport; passes the rest on."""

    def __init__(self, inner: asyncio.Protocol, limiter: Limiter | None = None, peer: Any = None) -> None:
        self.inner = inner
        self.limiter, self.peer = limiter, peer  # a client connection: counted until it logs in or goes

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.inner.connection_made(CorkedTransport(transport))

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.limiter is not None:
            self.limiter.logged_in(self.peer)
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class CorkingListener:
    """Passed to `asyncssh.create_server(..., tunnel=...)`: listens on TCP (through the shared
    accept loop, which survives descriptor exhaustion and counts logins per source) and corks
    each connection."""

    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter
        self._tasks: set[asyncio.Task[None]] = set()

    async def create_server(
        self, session_factory: Callable[[str, int], asyncio.Protocol], host: str, port: int
    ) -> Acceptor:
        def accepted(sock: socket.socket, peer: Any) -> None:
            task = asyncio.create_task(self._connect(sock, peer, lambda: session_factory(host, port)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        return await Acceptor("ssh", self.limiter, accepted).start(host, port, backlog=100)

    async def _connect(self, sock: socket.socket, peer: Any, inner: Callable[[], asyncio.Protocol]) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(lambda: _CorkingProtocol(inner(), self.limiter, peer), sock)
        except OSError:  # no descriptor or memory left for it: the client is dropped, not the door
            self.limiter.logged_in(peer)
            sock.close()

    def close(self) -> None:
        """Nothing of its own to close: the server it made belongs to asyncssh's acceptor."""

    async def wait_closed(self) -> None:
        """See close()."""


class CorkingConnector:
    """Passed to `asyncssh.connect(..., tunnel=...)`: connects over TCP and corks the connection."""

    async def create_connection(
        self, session_factory: Callable[[], asyncio.Protocol], host: str, port: int
    ) -> tuple[asyncio.BaseTransport, asyncio.Protocol]:
        loop = asyncio.get_running_loop()
        transport, corking = await loop.create_connection(lambda: _CorkingProtocol(session_factory()), host, port)
        return transport, corking.inner

    def close(self) -> None:
        """Nothing of its own to close: the connection belongs to asyncssh."""

    async def wait_closed(self) -> None:
        """See close()."""
