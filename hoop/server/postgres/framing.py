"""Sans-IO framing of the PostgreSQL wire protocol (v3): whole messages out of a byte stream.

The framer hands out memoryviews over its internal buffer so a relay can forward bytes without
copying. Startup-phase messages (no type byte) and typed messages have their own readers.
A length beyond the configured maximum is an error, never a reason to buffer without bound.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

DEFAULT_MAX_MESSAGE = 64 * 1024 * 1024
MAX_STARTUP_MESSAGE = 10_000  # the same cap PostgreSQL itself applies to startup packets

_u32_from = struct.Struct("!I").unpack_from


class ProtocolViolation(Exception):
    """The bytes on the wire do not form a valid PostgreSQL message."""


class MessageTooLarge(ProtocolViolation):
    """A message claims a length above the configured maximum."""


class MessageFramer:
    """Splits a byte stream into whole messages.

    Fast path: when a ``feed`` arrives and nothing is pending, the given ``bytes`` object becomes
    the buffer as is (no copy). Only a message straddling two feeds costs a copy of the pending
    tail. Views handed out stay valid until the next ``feed`` (in practice longer: a buffer with
    live views is never mutated, it is replaced).
    """

    __slots__ = ("_buf", "_pos", "_view", "max_message")

    def __init__(self, max_message: int = DEFAULT_MAX_MESSAGE) -> None:
        self.max_message = max_message
        self._buf: bytes | bytearray = b""
        self._pos = 0
        self._view: memoryview | None = None  # cached view of _buf: slicing it is cheap

    def _whole_view(self) -> memoryview:
        view = self._view
        if view is None:
            view = self._view = memoryview(self._buf)
        return view

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if self._view is not None:
            self._view.release()  # slices handed out keep their own reference to the buffer
            self._view = None
        buf, pos = self._buf, self._pos
        if pos >= len(buf):
            # Nothing pending: adopt the chunk itself (zero copy for bytes).
            self._buf = data if isinstance(data, bytes) else bytes(data)
        elif isinstance(buf, bytearray):
            try:  # compact in place: cheap memmove of the (usually short) pending tail
                del buf[:pos]
                buf += data
            except BufferError:  # a caller still holds a view: leave that buffer alone
                self._buf = buf[pos:] + data
        else:
            nb = bytearray(memoryview(buf)[pos:])
            nb += data
            self._buf = nb
        self._pos = 0

    def pending(self) -> int:
        """Number of buffered bytes not yet returned as messages."""
        return len(self._buf) - self._pos

    def take_rest(self) -> bytes:
        """Remove and return every buffered byte not yet returned (e.g. to hand to a relay)."""
        rest = bytes(self._whole_view()[self._pos :])
        self._view.release()  # type: ignore[union-attr]
        self._buf, self._pos, self._view = b"", 0, None
        return rest

    def _length_at(self, pos: int, minimum: int, maximum: int) -> int:
        length: int = _u32_from(self._buf, pos)[0]
        if length < minimum:
            raise ProtocolViolation(f"invalid message length {length} (minimum is {minimum})")
        if length > maximum:
            raise MessageTooLarge(f"message length {length} exceeds the limit of {maximum} bytes")
        return length

    def next(self) -> tuple[int, memoryview] | None:
        """Next typed message as (type byte, view of the whole message), or None if incomplete."""
        buf, pos = self._buf, self._pos
        if len(buf) - pos < 5:
            return None
        length = _u32_from(buf, pos + 1)[0]
        if length < 4 or length > self.max_message:
            self._length_at(pos + 1, 4, self.max_message)  # raises with a clear message
        end = pos + 1 + length
        if end > len(buf):
            return None
        self._pos = end
        return buf[pos], self._whole_view()[pos:end]

    def next_startup(self) -> memoryview | None:
        """Next untyped startup-phase message (StartupMessage, SSLRequest, CancelRequest...)."""
        buf, pos = self._buf, self._pos
        if len(buf) - pos < 4:
            return None
        end = pos + self._length_at(pos, 8, min(self.max_message, MAX_STARTUP_MESSAGE))
        if end > len(buf):
            return None
        self._pos = end
        return self._whole_view()[pos:end]

    def split_complete(
        self, watch: frozenset[int] | set[int] | None = None
    ) -> tuple[memoryview, list[tuple[int, int, int]]]:
        """Consume every complete message at once.

        Returns a view over all complete bytes and ``(type, start, end)`` offsets into that view.
        With ``watch`` only messages whose type byte is in it are listed, so a relay can forward
        ``view[prev_end:start]`` runs untouched and only inspect what it cares about. The cost
        per skipped message is one length read and one set lookup.
        """
        buf, start = self._buf, self._pos
        size, pos, limit = len(buf), start, self.max_message
        out: list[tuple[int, int, int]] = []
        append = out.append
        while size - pos >= 5:
            length = _u32_from(buf, pos + 1)[0]
            if length < 4 or length > limit:
                if pos > start:
                    break  # hand out what is valid first; the next call raises
                self._length_at(pos + 1, 4, limit)
            end = pos + 1 + length
            if end > size:
                break
            t = buf[pos]
            if watch is None or t in watch:
                append((t, pos - start, end - start))
            pos = end
        self._pos = pos
        return self._whole_view()[start:pos], out

    def __iter__(self) -> Iterator[tuple[int, memoryview]]:
        while (msg := self.next()) is not None:
            yield msg
