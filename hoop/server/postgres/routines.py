"""The routines, triggers and rules that exist upstream, read for the pipeline's RoutineCatalog.

One `RoutineWatcher` per connection, shared by its sessions, reads the catalog over its own
side connection with the held credential: functions and procedures of non-system schemas
(extension members excluded, like built-ins), the triggers and rules of user tables. It loads
when a session starts (the session waits for it; sessions starting together share one load
that began after they asked) and again in the background after DDL through the gateway.
Classifying the bodies runs in a worker thread, off the event loop. A catalog that cannot be
read refuses the session: calls could not be judged otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import psycopg

from hoop.core.pipeline import Pipeline, Subject
from hoop.core.sql.routines import postgres_catalog

log = logging.getLogger("hoop.postgres")

_SYSTEM = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'"
_ROUTINES = f"""
SELECT n.nspname, p.proname, l.lanname,
       CASE WHEN l.lanname IN ('sql', 'plpgsql') THEN pg_get_functiondef(p.oid) END
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
WHERE {_SYSTEM} AND p.prokind IN ('f', 'p')
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                  AND d.deptype = 'e')
ORDER BY p.oid
"""
_TRIGGERS = f"""
SELECT n.nspname, c.relname, t.tgtype::int4, pn.nspname, p.proname
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_namespace pn ON pn.oid = p.pronamespace
WHERE NOT t.tgisinternal AND {_SYSTEM}
ORDER BY t.oid
"""
_RULES = f"""
SELECT n.nspname, c.relname, r.rulename, r.ev_type::text, pg_get_ruledef(r.oid)
FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE r.rulename <> '_RETURN' AND {_SYSTEM}
ORDER BY r.oid
"""


class RoutineCatalogError(Exception):
    """The upstream catalog could not be read."""


class RoutineWatcher:
    """Keeps the pipeline's RoutineCatalog of one connection current."""

    def __init__(self, name: str, target: Any, pipeline: Pipeline) -> None:
        self.name = name
        self.target = target
        self.pipeline = pipeline
        self.started_at = -1.0  # when the last completed load began
        self.lock = asyncio.Lock()
        self.conn: psycopg.AsyncConnection[Any] | None = None
        self.stale = False
        self.task: asyncio.Task[None] | None = None

    async def session_start(self, subject: Subject) -> None:
        """Make sure the catalog is fresh before the session's first statement is judged.
        Skipped when no guardrail applies to this user on this connection."""
        if not self.pipeline.applies(subject):
            return
        try:
            await self.load(time.monotonic())
        except (psycopg.Error, OSError, TimeoutError) as exc:
            log.warning("connection %s: cannot read routines: %s", self.name, exc)
            raise RoutineCatalogError(
                f"connection {self.name}: the gateway could not read the server's routines to judge calls of them"
            ) from None

    def changed(self) -> None:
        """DDL went through the gateway: routines or triggers may have changed; reload soon."""
        self.stale = True
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._reload())

    async def _reload(self) -> None:
        try:
            while self.stale:  # DDL during a load: load once more
                await self.load(time.monotonic())
        except (psycopg.Error, OSError, TimeoutError) as exc:
            log.warning("connection %s: cannot reload routines: %s", self.name, exc)

    async def load(self, asked: float) -> None:
        """Load unless a load that began at or after `asked` has completed meanwhile."""
        async with self.lock:
            if self.started_at >= asked:
                return  # another session's load began after this one asked: it is as fresh
            started = time.monotonic()
            self.stale = False
            routines = await self._query(_ROUTINES)
            triggers = await self._query(_TRIGGERS)
            rules = await self._query(_RULES)
            catalog = await asyncio.to_thread(postgres_catalog, routines, triggers, rules)  # type: ignore[arg-type]
            self.pipeline.set_routines(self.name, catalog)
            self.started_at = started

    async def _query(self, sql: str) -> list[tuple[Any, ...]]:
        for attempt in (1, 2):
            try:
                if self.conn is None or self.conn.closed:
                    self.conn = await psycopg.AsyncConnection.connect(**_kwargs(self.target))
                cur = await self.conn.execute(sql)
                return await cur.fetchall()
            except psycopg.OperationalError:
                self.conn = None
                if attempt == 2:
                    raise
        return []

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()


class RoutineWatchers:
    """The watchers of a door, one per connection name."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.watchers: dict[str, RoutineWatcher] = {}

    def get(self, name: str, target: Any) -> RoutineWatcher:
        watcher = self.watchers.get(name)
        if watcher is None:
            watcher = self.watchers[name] = RoutineWatcher(name, target, self.pipeline)
        return watcher


def _kwargs(t: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "host": t.host,
        "port": t.port,
        "dbname": t.database,
        "user": t.username,
        "sslmode": t.sslmode,
        "connect_timeout": max(1, int(t.connect_timeout)),
        "application_name": "hoop-catalog",
        "autocommit": True,
    }
    if t.password:
        kwargs["password"] = t.password
    if t.sslrootcert:
        kwargs["sslrootcert"] = t.sslrootcert
    return kwargs
