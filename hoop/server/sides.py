"""What both database relays share: wiring, closing, and the transport callbacks.

A relay subclasses `TwoSided` and provides `from_client`, `from_upstream`, `upstream_lost()`
(tell the client, in its protocol, that the server went away) and `GOODBYE` (the message that
ends the upstream session politely). It closes with a `CloseStatus`, which goes to the session
kit's bracket through `on_close`. Flow control is symmetric: when one side's write buffer
fills, the other side stops reading until it drains.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

from hoop.core.store.records import CloseStatus


def write_batch(transport: asyncio.WriteTransport | None, parts: list[bytes | memoryview]) -> None:
    """One write per batch: joining is a memcpy, far cheaper than a syscall (or a TLS record)
    per message."""
    if transport is not None:  # None only before `attach`
        transport.write(parts[0] if len(parts) == 1 else b"".join(parts))


class Side(asyncio.Protocol):
    def __init__(self, relay: TwoSided, handler: Callable[[bytes], None], name: str) -> None:
        self.relay = relay
        self.handler = handler
        self.name = name

    def data_received(self, data: bytes) -> None:
        if not self.relay.closed:
            self.handler(data)

    def eof_received(self) -> bool | None:
        self._gone()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone()

    def _gone(self) -> None:
        if self.name == "upstream" and not self.relay.closed and not self.relay.said_goodbye:
            self.relay.upstream_lost()
        else:
            self.relay.close(CloseStatus.CLOSED)

    def _other(self) -> asyncio.Transport | None:
        return self.relay.upstream if self.name == "client" else self.relay.client

    def pause_writing(self) -> None:
        other = self._other()
        if other is not None and not other.is_closing():
            other.pause_reading()

    def resume_writing(self) -> None:
        other = self._other()
        if other is not None and not other.is_closing():
            other.resume_reading()


class TwoSided:
    GOODBYE: bytes = b""
    # The client ended the session in its protocol (Terminate, COM_QUIT): the server closing
    # after that is the goodbye answered, not a lost upstream.
    said_goodbye = False
    client: asyncio.Transport | None
    upstream: asyncio.Transport | None
    closed: bool
    done: asyncio.Future[CloseStatus]
    hold_task: asyncio.Future[None] | None
    on_close: Callable[[CloseStatus], None]
    from_client: Callable[[bytes], None]
    from_upstream: Callable[[bytes], None]

    def attach(
        self, client: asyncio.WriteTransport, upstream: asyncio.WriteTransport, client_left: bytes, upstream_left: bytes
    ) -> None:
        """Take over both logged-in transports (a stream's transport, typed for writing, also
        reads); bytes read ahead during login are fed first."""
        self.client, self.upstream = cast(asyncio.Transport, client), cast(asyncio.Transport, upstream)
        client.set_protocol(Side(self, self.from_client, "client"))
        upstream.set_protocol(Side(self, self.from_upstream, "upstream"))
        if upstream_left:
            self.from_upstream(upstream_left)
        if client_left:
            self.from_client(client_left)

    async def run(
        self,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes],
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes],
    ) -> CloseStatus:
        """Relay two logged-in streams until the session closes. Each comes with the bytes its
        login step read ahead of the reader's buffer (a framer's rest)."""
        (c_reader, c_writer, c_ahead), (u_reader, u_writer, u_ahead) = client, upstream
        self.attach(
            c_writer.transport, u_writer.transport, c_ahead + _buffered(c_reader), u_ahead + _buffered(u_reader)
        )
        return await self.done

    def upstream_lost(self) -> None:
        """Tell the client, in its protocol, that the server went away, and close."""
        raise NotImplementedError

    def cut_off(self) -> None:
        """Record, once each, the statements still running (or held) as the session ends."""

    def close(self, status: CloseStatus, client_error: bytes | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        self.cut_off()
        if self.client is not None and not self.client.is_closing():
            if client_error:
                self.client.write(client_error)
            self.client.close()
        if self.upstream is not None and not self.upstream.is_closing():
            self.upstream.write(self.GOODBYE)
            self.upstream.close()
        if self.hold_task is not None:
            self.hold_task.cancel()  # a held request is abandoned; it never runs later
        if not self.done.done():
            self.done.set_result(status)
        self.on_close(status)


def _buffered(reader: asyncio.StreamReader) -> bytes:
    """Bytes a StreamReader already buffered, taken before its transport changes hands."""
    buf: bytearray = getattr(reader, "_buffer", bytearray())  # asyncio keeps it there; no public way
    data = bytes(buf)
    buf.clear()
    return data
