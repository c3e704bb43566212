"""Reads the routines, triggers and rules that exist upstream, for the pipeline's RoutineCatalog.

What is read, over a side connection with the held credential (one per upstream, kept open):
functions and procedures of non-system schemas, extension members excluded like built-ins
(the definition of `sql` and `plpgsql` ones via pg_get_functiondef; other languages are judged
dynamic), the triggers of user tables (internal ones, such as foreign-key checks, excluded),
and the rules of user tables (not the `_RETURN` rule of a view). `hoop.server.routine_watch`
decides when to read.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import psycopg

from hoop.core.sql.routines import RoutineCatalog, postgres_catalog

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


class CatalogReader:
    """One kept-open side connection per upstream; `fetch` returns the catalog's builder."""

    def __init__(self) -> None:
        self.conns: dict[tuple[str, int, str, str], psycopg.AsyncConnection[Any]] = {}

    async def fetch(self, target: Any) -> Callable[[], RoutineCatalog]:
        rows = [await self._query(target, sql) for sql in (_ROUTINES, _TRIGGERS, _RULES)]
        return partial(postgres_catalog, *rows)

    async def _query(self, target: Any, sql: str) -> list[Any]:
        key = (target.host, target.port, target.database, target.username)
        for attempt in (1, 2):
            try:
                conn = self.conns.get(key)
                if conn is None or conn.closed:
                    conn = self.conns[key] = await psycopg.AsyncConnection.connect(**_kwargs(target))
                cur = await conn.execute(sql)
                return await cur.fetchall()
            except psycopg.OperationalError:
                self.conns.pop(key, None)
                if attempt == 2:
                    raise
        return []


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
