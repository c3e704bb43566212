"""One accept loop for every door: survives running out of file descriptors, counts logins.

`asyncio.start_server` and `loop.create_server` are not enough here. Under uvloop an accept
error such as EMFILE closes the listening handle for good (libuv reports it to the listen
callback, and uvloop treats that as fatal), and a `sock_accept` loop that lets the OSError
out ends its task: one moment without a free descriptor stopped a door from accepting until
the gateway restarted. This loop accepts itself: when the process (or the system) has no
descriptor left, it logs once, sleeps with back-off while connections wait in the kernel's
backlog, and goes on as soon as descriptors are free again.

Each accepted connection is counted as logging in for its source address (see
`Limiter.admit`); over the limit it is closed at once, before any byte is read.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import struct
from collections.abc import Callable
from typing import Any

from hoop.server.limiting import Limiter

log = logging.getLogger("hoop.accept")

# Out of descriptors or kernel memory: nothing to do but wait for some to be freed.
EXHAUSTED = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
FIRST_PAUSE = 0.01
LONGEST_PAUSE = 0.5


class Acceptor:
    """Listens on host:port; `serve(sock, peer)` takes over each admitted connection. Has what
    callers of an asyncio Server use: close(), wait_closed(), sockets, get_addresses()."""

    def __init__(self, door: str, limiter: Limiter, serve: Callable[[socket.socket, Any], None]) -> None:
        self.door = door
        self.limiter = limiter
        self.serve = serve
        self.sock: socket.socket | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self, host: str, port: int, backlog: int = 512) -> Acceptor:
        # The address family of the configured host (an IPv6 literal such as ::1 needs AF_INET6).
        family = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
        sock = socket.create_server((host, port), family=family, backlog=backlog)
        sock.setblocking(False)
        self.sock = sock
        self.task = asyncio.create_task(self._loop(sock))
        return self

    @property
    def sockets(self) -> list[socket.socket]:
        return [self.sock] if self.sock is not None else []

    def get_addresses(self) -> list[Any]:
        return [s.getsockname() for s in self.sockets]

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        if self.sock is not None:
            self.sock.close()

    async def wait_closed(self) -> None:
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)

    async def _loop(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        pause = 0.0  # > 0 while descriptors are exhausted
        while True:
            try:
                sock, peer = await loop.sock_accept(listener)
            except OSError as exc:
                if listener.fileno() < 0:  # closed: the gateway is stopping
                    return
                if exc.errno not in EXHAUSTED:  # the client gave up before we took it (ECONNABORTED...)
                    log.debug("%s: accept failed: %s", self.door, exc)
                    continue
                if not pause:
                    log.error("%s: cannot accept connections: %s; waiting for descriptors to be freed", self.door, exc)
                pause = min(LONGEST_PAUSE, pause * 2 or FIRST_PAUSE)
                await asyncio.sleep(pause)
                continue
            if pause:
                log.warning("%s: accepting connections again", self.door)
                pause = 0.0
            self._take(sock, peer)

    def _take(self, sock: socket.socket, peer: Any) -> None:
        if not self.limiter.admit(peer, self.door):
            _close_now(sock)
            return
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.serve(sock, peer)
        except Exception:  # one connection's failure must not stop the loop
            log.exception("%s: serving a new connection failed", self.door)
            self.limiter.logged_in(peer)
            sock.close()


async def open_streams(sock: socket.socket, limit: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Streams over an accepted socket, as `asyncio.start_server` would hand them: the protocol
    gets a connected callback, which is also how `StreamWriter.start_tls` knows it is the
    server side of the TLS handshake."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    connected: asyncio.Future[asyncio.StreamWriter] = loop.create_future()
    protocol = asyncio.StreamReaderProtocol(reader, lambda _, writer: connected.set_result(writer), loop=loop)
    await loop.connect_accepted_socket(lambda: protocol, sock)
    return reader, await connected


def _close_now(sock: socket.socket) -> None:
    """Close with a reset, so the refused client learns at once and no TIME_WAIT is left."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()
