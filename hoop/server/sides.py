"""The transport callbacks both database relays share (one object per direction).

A relay provides `client`, `upstream`, `closed`, `close(reason)` and `upstream_lost()`, which
tells the client in its own protocol that the server went away. Flow control is symmetric:
when one side's write buffer fills, the other side stops reading until it drains.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


def write_batch(transport: Any, parts: list[Any]) -> None:
    """One write per batch: joining is a memcpy, far cheaper than a syscall (or a TLS record)
    per message."""
    transport.write(parts[0] if len(parts) == 1 else b"".join(parts))


class Side(asyncio.Protocol):
    def __init__(self, relay: Any, handler: Callable[[bytes], None], name: str) -> None:
        self.relay = relay
        self.handler = handler
        self.name = name

    def data_received(self, data: bytes) -> None:
        if not self.relay.closed:
            self.handler(data)

    def eof_received(self) -> bool | None:
        self.relay.close(f"{self.name}-eof")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.name == "upstream" and not self.relay.closed:
            self.relay.upstream_lost()
        else:
            self.relay.close(f"{self.name}-closed")

    def _other(self) -> Any:
        return self.relay.upstream if self.name == "client" else self.relay.client

    def pause_writing(self) -> None:
        other = self._other()
        if other is not None and not other.is_closing():
            other.pause_reading()

    def resume_writing(self) -> None:
        other = self._other()
        if other is not None and not other.is_closing():
            other.resume_reading()
