"""A bare byte relay on uvloop: the floor cost of any Python proxy, for reference rows.

It parses nothing, checks nothing and records nothing: each chunk read from one side is
written to the other. A benchmark that runs it next to the gateway shows how much of the
gateway's cost is simply being a second hop in Python (two more loopback syscalls and two
wake-ups per round trip) and how much is the gateway's own work.

    .venv/bin/python bench/bare_relay.py LISTEN_PORT UPSTREAM_PORT     # both on 127.0.0.1
"""

from __future__ import annotations

import asyncio
import sys

import uvloop


class _Upstream(asyncio.Protocol):
    def __init__(self, client: asyncio.Transport) -> None:
        self.client = client

    def data_received(self, data: bytes) -> None:
        if not self.client.is_closing():  # the client may have left while the server answered
            self.client.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.close()


class _Client(asyncio.Protocol):
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.upstream: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.transport.pause_reading()
        asyncio.ensure_future(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        upstream, _ = await loop.create_connection(lambda: _Upstream(self.transport), "127.0.0.1", self.upstream_port)
        self.upstream = upstream
        self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        assert self.upstream is not None
        if not self.upstream.is_closing():
            self.upstream.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None:
            self.upstream.close()


async def serve(listen_port: int, upstream_port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Client(upstream_port), "127.0.0.1", listen_port)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1]), int(sys.argv[2])))
