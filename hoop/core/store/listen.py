"""PostgreSQL LISTEN on a connection of its own, in a thread: how gateways sharing a store
hear each other (a decision made through another gateway, a session to kill here).

The thread reconnects by itself after the server or the network drops the connection; it
calls `on_connect` after each (re)connection so the caller can catch up on what it may have
missed while deaf (a notification sent while nobody listens is lost; callers also re-check
on a timer for that reason).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import psycopg
from psycopg import sql

from hoop.core.secrets import Secret

log = logging.getLogger("hoop.store")
RETRY = 1.0  # seconds between reconnection attempts
APPLICATION = "hoop-listen"  # how the listening connection shows in pg_stat_activity
POLL = 0.5  # seconds a wait for notifications lasts before the stop flag is looked at again


class Listener:
    def __init__(
        self,
        dsn: Secret,
        channels: Sequence[str],
        on_notify: Callable[[str, str], None],
        on_connect: Callable[[], None] = lambda: None,
    ) -> None:
        self.dsn = dsn
        self.channels = list(channels)
        self.on_notify = on_notify
        self.on_connect = on_connect
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hoop-store-listen", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2 * POLL + 1)

    def _run(self) -> None:
        lost = False
        while not self._stop.is_set():
            try:
                self._listen()
            except psycopg.Error as exc:
                if not lost:  # once per outage, not once per retry
                    log.warning("listening for other gateways failed (%s); reconnecting", _first_line(exc))
                lost = True
            except Exception:  # a callback's bug must not end the listening for good
                log.exception("handling a notification from another gateway failed")
            else:
                lost = False
            self.connected.clear()
            self._stop.wait(RETRY)

    def _listen(self) -> None:
        with psycopg.connect(
            self.dsn.reveal(),
            autocommit=True,
            connect_timeout=5,
            keepalives=1,
            keepalives_idle=5,
            application_name=APPLICATION,
        ) as conn:
            for channel in self.channels:
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            self.connected.set()
            log.info("listening for other gateways on %s", ", ".join(self.channels))
            self.on_connect()
            while not self._stop.is_set():
                for note in conn.notifies(timeout=POLL):
                    self.on_notify(note.channel, note.payload)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
