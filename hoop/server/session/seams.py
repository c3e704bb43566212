"""The small contracts between the session kit, the doors and the gateway."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from hoop.core.store.records import CloseStatus


class Killer(Protocol):
    """What a door gives the kit: end this connection now, telling the client the reason in its
    own protocol (a FATAL 57P01, an ERR 1927, a line on stderr and an exit status); with
    `status` SHUTDOWN in the words its clients know for a server shutting down (PostgreSQL's
    57P01 admin_shutdown, MySQL's ERR 1053)."""

    def __call__(self, reason: str, status: CloseStatus = CloseStatus.KILLED) -> None: ...


# What a door gives a hold: show the user one line while the statement waits, if its protocol
# can (a PostgreSQL NoticeResponse, SSH stderr; MySQL has no asynchronous notice).
Notify = Callable[[str], None]


class Listening(Protocol):
    """A started door: the gateway closes it to stop accepting."""

    def close(self) -> None: ...


class Door(Protocol):
    """What a protocol package offers the gateway (see `doors.py`)."""

    async def start(self, host: str, port: int) -> Listening: ...
