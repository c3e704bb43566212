"""Keeps the pipeline's RoutineCatalog of each connection current, for every door.

A call of a routine that exists upstream is judged by the routine's body, read from the
server's catalog by the door's own `fetch` (over a side connection with the held credential).
One `RoutineWatcher` per connection, shared by its sessions: it loads when a session starts
(the session waits for it, so the session's first statement is judged on a catalog read after
it connected; sessions starting together share one load that began after they asked), again in
the background after DDL through the gateway, and every `REFRESH_EVERY` seconds once a session
has started, so a routine created directly on the server is judged within that time in
sessions that were already open. Classifying the bodies runs in a worker
thread, off the event loop. A catalog that cannot be read refuses the session: calls of
routines could not be judged otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from hoop.core.pipeline import Pipeline, Subject
from hoop.core.sql.routines import RoutineCatalog

log = logging.getLogger("hoop.routines")
REFRESH_EVERY = 10.0

Fetch = Callable[[Any], Awaitable[Callable[[], RoutineCatalog]]]  # target -> (build in a thread)


class RoutineCatalogError(Exception):
    """The upstream catalog could not be read."""


class RoutineWatcher:
    def __init__(self, name: str, target: Any, pipeline: Pipeline, fetch: Fetch) -> None:
        self.name = name
        self.target = target
        self.pipeline = pipeline
        self.fetch = fetch
        self.started_at = -1.0  # when the last completed load began
        self.lock = asyncio.Lock()
        self.stale = False
        self.task: asyncio.Task[None] | None = None
        self.ticker: asyncio.Task[None] | None = None

    async def session_start(self, subject: Subject) -> None:
        """Read the catalog before the session's first statement is judged (also where no rule
        applies to this user yet: a rule can be added while the session runs)."""
        try:
            await self.load(time.monotonic())
        except Exception as exc:  # noqa: BLE001 - any failure to read: refuse (fail closed)
            log.warning("connection %s: cannot read routines: %s", self.name, exc)
            raise RoutineCatalogError(
                f"connection {self.name}: the gateway could not read the server's routines to judge calls of them"
            ) from None
        if self.ticker is None or self.ticker.done():
            self.ticker = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_EVERY)
            try:
                await self.load(time.monotonic())
            except Exception as exc:  # noqa: BLE001 - the previous catalog stays; retried next time
                log.warning("connection %s: cannot reload routines: %s", self.name, exc)

    def changed(self) -> None:
        """DDL went through the gateway: routines or triggers may have changed; reload soon."""
        self.stale = True
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._reload())

    async def _reload(self) -> None:
        try:
            while self.stale:  # DDL during a load: load once more
                await self.load(time.monotonic())
        except Exception as exc:  # noqa: BLE001 - the previous catalog stays; the next session start retries
            log.warning("connection %s: cannot reload routines: %s", self.name, exc)

    async def load(self, asked: float) -> None:
        """Load unless a load that began at or after `asked` has completed meanwhile."""
        async with self.lock:
            if self.started_at >= asked:
                return
            started = time.monotonic()
            self.stale = False
            build = await self.fetch(self.target)
            self.pipeline.set_routines(self.name, await asyncio.to_thread(build))
            self.started_at = started


class RoutineWatchers:
    """The watchers of one door, by connection name."""

    def __init__(self, pipeline: Pipeline, fetch: Fetch) -> None:
        self.pipeline = pipeline
        self.fetch = fetch
        self.watchers: dict[str, RoutineWatcher] = {}

    def get(self, name: str, target: Any) -> RoutineWatcher:
        watcher = self.watchers.get(name)
        if watcher is None:
            watcher = self.watchers[name] = RoutineWatcher(name, target, self.pipeline, self.fetch)
        return watcher
