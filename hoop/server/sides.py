"""What both database relays share: wiring, closing, and the transport callbacks.

A relay subclasses `TwoSided` and provides `from_client`, `from_upstream`, `upstream_lost()`
(tell the client, in its protocol, that the server went away), `answered()` (see below) and
`GOODBYE` (the message that ends the upstream session politely). It closes with a
`CloseStatus`, which goes to the session kit's bracket through `on_close`. Flow control is
symmetric: when one side's write buffer fills, the other side stops reading until it drains.

A client that shuts down its sending side (`shutdown(SHUT_WR)`, as batch tools do after their
last statement) still reads: what it sent is answered in order, as the server itself would,
and only then do both sides close (`end_of_input`). From then on the upstream side checks
`answered()` after each read; before the end of input the data path does no such check.

Fair share of the event loop: the event loop may hand one socket many reads in a row (libuv
reads up to 32 times per turn). A server read whose handling took longer than `READ_SLICE`
(rows masked one by one, a large result checked against limits) pauses reading from the
server until the loop's next turn, so every other session is served between two such reads
and a large masked result streams in bounded chunks instead of holding the loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import cast

from hoop.core.pipeline import Decision
from hoop.core.store.records import CloseStatus, review
from hoop.server.session import Session
from hoop.server.session.holds import HoldOutcome
from hoop.server.session.seams import Notify


def write_batch(transport: asyncio.WriteTransport | None, parts: list[bytes | memoryview]) -> None:
    """One write per batch: joining is a memcpy, far cheaper than a syscall (or a TLS record)
    per message."""
    if transport is not None:  # None only before `attach`
        transport.write(parts[0] if len(parts) == 1 else b"".join(parts))


# CPU seconds (this thread's: a preempted moment is not work) spent on server bytes before
# other sessions get a turn.
READ_SLICE = 0.004
READ_CHUNK = 16384  # server bytes handled at a time while the slice lasts


class Side(asyncio.Protocol):
    def __init__(self, relay: TwoSided, handler: Callable[[bytes], None], name: str) -> None:
        self.relay = relay
        self.handler = handler
        self.name = name
        self.later = b""  # server bytes read but left for the loop's next turn (see READ_SLICE)
        self.slow = False  # the last read took a good part of a slice: handle the next in chunks
        self.yielded = False  # waiting for the loop's next turn
        self.paused_here = False  # ... with reading paused by this side (not by the relay)
        self.held_by_peer = False  # reading paused because the other side's buffer is full

    def data_received(self, data: bytes) -> None:
        if self.relay.closed:
            return
        if self.name != "upstream":
            self.handler(data)
            return
        if self.yielded:  # reading went on (the relay resumed it): keep the order, wait the turn
            self.later += data
            transport = self.relay.upstream
            if transport is not None and transport.is_reading():
                transport.pause_reading()
                self.paused_here = True
            return
        self._handle(data, time.thread_time())

    def _handle(self, data: bytes, started: float) -> None:
        """Hand `data` on (in chunks while reads are slow) until the slice is used up; the
        rest waits a loop turn. Reads that are quick to handle go whole: one write each."""
        pos, size = 0, len(data)
        if not self.slow:
            self.handler(data)
            pos = size
            if self.relay.closed:
                return
        while pos < size:
            end = size if size - pos <= READ_CHUNK else pos + READ_CHUNK
            self.handler(data if pos == 0 and end == size else data[pos:end])
            pos = end
            if self.relay.closed:
                return
            if pos < size and time.thread_time() - started > READ_SLICE:
                break
        self.later = data[pos:]
        self.slow = time.thread_time() - started > READ_SLICE / 2
        transport = self.relay.upstream
        if transport is None or transport.is_closing():
            return
        if self.later or time.thread_time() - started > READ_SLICE:
            if not self.yielded:
                self.yielded = True
                if transport.is_reading():  # else paused already (by the relay, or here)
                    transport.pause_reading()
                    self.paused_here = True
                asyncio.get_running_loop().call_soon(self._next_turn)

    def _next_turn(self) -> None:
        self.yielded = False
        if self.relay.closed:
            return
        if self.later:
            data, self.later = self.later, b""
            self._handle(data, time.thread_time())
            if self.yielded:
                return
        if not self.paused_here:
            return
        self.paused_here = False
        transport = self.relay.upstream
        if transport is not None and not self.held_by_peer and not transport.is_closing():
            transport.resume_reading()

    def eof_received(self) -> bool | None:
        if self.name == "client" and self.relay.end_of_input():
            return True  # still open for writing: the answers to what it sent follow
        self._gone()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone()

    def _gone(self) -> None:
        if self.later and not self.relay.closed:  # what the server sent before it went: in order
            data, self.later = self.later, b""
            self.handler(data)
        if self.name == "upstream" and not self.relay.closed and not self.relay.said_goodbye:
            self.relay.upstream_lost()
        else:
            self.relay.close(CloseStatus.CLOSED)

    def _other(self) -> asyncio.Transport | None:
        return self.relay.upstream if self.name == "client" else self.relay.client

    def pause_writing(self) -> None:
        other = self._other()
        if self.name == "client":
            self.relay.upstream_side.held_by_peer = True
        if other is not None and not other.is_closing():
            other.pause_reading()

    def resume_writing(self) -> None:
        other = self._other()
        if self.name == "client":
            upstream_side = self.relay.upstream_side
            upstream_side.held_by_peer = False
            if upstream_side.yielded:
                upstream_side.paused_here = True  # `_next_turn` resumes reading, after the rest
                return
        if other is not None and not other.is_closing():
            other.resume_reading()


class TwoSided:
    GOODBYE: bytes = b""
    # The client ended the session in its protocol (Terminate, COM_QUIT): the server closing
    # after that is the goodbye answered, not a lost upstream.
    said_goodbye = False
    client: asyncio.Transport | None
    upstream: asyncio.Transport | None
    upstream_side: Side
    closed: bool
    done: asyncio.Future[CloseStatus]
    hold_task: asyncio.Future[None] | None
    on_close: Callable[[CloseStatus], None]
    session: Session
    from_client: Callable[[bytes], None]
    from_upstream: Callable[[bytes], None]

    input_ended = False  # the client shut down its sending side; it still reads the answers
    approval_requested = False  # a held statement's request exists: approvers see it

    def attach(
        self, client: asyncio.WriteTransport, upstream: asyncio.WriteTransport, client_left: bytes, upstream_left: bytes
    ) -> None:
        """Take over both logged-in transports (a stream's transport, typed for writing, also
        reads); bytes read ahead during login are fed first."""
        self.client, self.upstream = cast(asyncio.Transport, client), cast(asyncio.Transport, upstream)
        client.set_protocol(Side(self, self.from_client, "client"))
        self.upstream_side = Side(self, self.from_upstream, "upstream")
        upstream.set_protocol(self.upstream_side)
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

    def answered(self) -> bool:
        """Has everything the client sent been answered, or can it no longer be (the server
        waits for data the client cannot send any more)? Bytes of an unfinished message do
        not count: the client can never finish it."""
        raise NotImplementedError

    # -- the client's end of input -----------------------------------------------------------

    def end_of_input(self) -> bool:
        """The client will send nothing more. Answer what it sent, then close (`closed`);
        returns whether its transport stays open for that.

        Not over TLS: asyncio's TLS transport closes itself at the end of input whatever the
        protocol says, so such a session ends there (as before)."""
        if self.closed or self.client is None or self.client.get_extra_info("ssl_object") is not None:
            return False
        if not self.input_ended:
            self.input_ended = True
            self.upstream_side.handler = self._from_upstream_after_input
            if self.approval_requested and self.hold_task is not None:
                self.hold_task.cancel()  # lands in `wait_for_approvers`: the request is abandoned
        self.close_if_answered()
        return True

    def resume_client(self) -> None:
        """Carry on with client bytes that waited (for approvers, the parse pool, earlier
        answers): read again and handle what is buffered."""
        if self.client is not None and not self.input_ended:
            self.client.resume_reading()
        self.from_client(b"")
        self.close_if_answered()

    def close_if_answered(self) -> None:
        if self.input_ended and not self.closed and self.answered():
            self.close(CloseStatus.CLOSED)

    def _from_upstream_after_input(self, data: bytes) -> None:
        self.from_upstream(data)
        self.close_if_answered()

    async def wait_for_approvers(self, text: str, decision: Decision, notify: Notify) -> HoldOutcome:
        """The session's hold, abandoned if the client ends its input before approvers decide.

        Such a statement never runs: the end of input of a batch tool and that of a client
        gone for good look alike, and a decision could reach no one. The request is abandoned
        once it exists (the notice says so), never while it is being written: cancelling then
        would leave it pending for approvers with no one waiting."""

        def requested(message: str) -> None:
            self.approval_requested = True
            if self.input_ended:
                cast(asyncio.Task[None], asyncio.current_task()).cancel()
            else:
                notify(message)

        self.approval_requested = False
        try:
            return await self.session.hold(text, decision, requested)
        except asyncio.CancelledError:
            if self.closed or not self.input_ended:
                raise
            reason = "the client ended its input while the statement waited"
            message = f"held for approval by rule {decision.rule}, abandoned: {reason}"
            return HoldOutcome(False, review("abandoned"), "cancelled", message, 0, reason)
        finally:
            self.approval_requested = False

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
