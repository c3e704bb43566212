"""Reads the routines, triggers and rules that exist upstream, for the pipeline's RoutineCatalog.

What is read, over a side connection with the held credential (one per upstream, kept open):
functions and procedures of non-system schemas, extension members excluded like built-ins
(the definition of `sql` and `plpgsql` ones via pg_get_functiondef; other languages are judged
dynamic), the triggers of user tables (internal ones, such as foreign-key checks, excluded),
the rules of user tables, and the tables whose views, column defaults, check constraints,
policies or index expressions call a user routine (from the server's own dependency records).
A cheap fingerprint (object ids and row versions) is read first: an unchanged catalog is not
read or classified again. `hoop.server.routine_watch` decides when to read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hoop.core.sql.routines import RoutineCatalog, postgres_catalog
from hoop.server.postgres.sidelink import SideConnection

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


# Which statements an object that calls a routine runs it for (pg_depend.classid -> events).
_USES = f"""
SELECT n.nspname, c.relname, u.what, pn.nspname, p.proname
FROM pg_depend d
JOIN pg_proc p ON d.refclassid = 'pg_proc'::regclass AND d.refobjid = p.oid
JOIN pg_namespace pn ON pn.oid = p.pronamespace
JOIN LATERAL (
  SELECT 'view' AS what, ev_class AS rel FROM pg_rewrite
   WHERE d.classid = 'pg_rewrite'::regclass AND oid = d.objid AND rulename = '_RETURN'
  UNION ALL SELECT 'default', adrelid FROM pg_attrdef WHERE d.classid = 'pg_attrdef'::regclass AND oid = d.objid
  UNION ALL SELECT 'check', conrelid FROM pg_constraint
   WHERE d.classid = 'pg_constraint'::regclass AND oid = d.objid AND conrelid <> 0
  UNION ALL SELECT 'policy', polrelid FROM pg_policy WHERE d.classid = 'pg_policy'::regclass AND oid = d.objid
  UNION ALL SELECT 'index', indrelid FROM pg_index WHERE d.classid = 'pg_class'::regclass AND indexrelid = d.objid
) u ON true
JOIN pg_class c ON c.oid = u.rel JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE pn.nspname NOT IN ('pg_catalog', 'information_schema') AND {_SYSTEM}
ORDER BY 1, 2, 3, 4, 5
"""
_FINGERPRINT = """
SELECT md5(concat_ws('|',
  (SELECT string_agg(oid::text || '.' || xmin::text, ',' ORDER BY oid) FROM pg_proc
    WHERE pronamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)),
  (SELECT string_agg(oid::text || '.' || xmin::text, ',' ORDER BY oid) FROM pg_namespace),
  (SELECT string_agg(oid::text || '.' || xmin::text, ',' ORDER BY oid) FROM pg_trigger),
  (SELECT string_agg(oid::text || '.' || xmin::text, ',' ORDER BY oid) FROM pg_rewrite),
  (SELECT string_agg(objid::text || '.' || refobjid::text, ',' ORDER BY objid, refobjid) FROM pg_depend
    WHERE refclassid = 'pg_proc'::regclass OR deptype = 'e'),
  (SELECT string_agg(oid::text || '.' || xmin::text, ',' ORDER BY oid) FROM pg_class
    WHERE relhastriggers OR relhasrules)
))
"""


class CatalogReader:
    """One kept-open side connection per upstream; `fetch` returns the catalog's builder."""

    def __init__(self) -> None:
        self.links: dict[tuple[str, int, str, str], SideConnection] = {}
        self.last: dict[tuple[str, int, str, str], tuple[str, RoutineCatalog]] = {}

    async def fetch(self, target: Any) -> Callable[[], RoutineCatalog]:
        key = _key(target)
        fingerprint = str((await self._query(target, _FINGERPRINT))[0][0])
        last = self.last.get(key)
        if last is not None and last[0] == fingerprint:
            return lambda: last[1]
        rows = [await self._query(target, sql) for sql in (_ROUTINES, _TRIGGERS, _RULES, _USES)]

        def build() -> RoutineCatalog:
            catalog = postgres_catalog(*rows)
            self.last[key] = (fingerprint, catalog)
            return catalog

        return build

    async def _query(self, target: Any, sql: str) -> list[Any]:
        key = _key(target)
        link = self.links.get(key)
        if link is None:
            link = self.links[key] = SideConnection(target)
        return await link.query(sql)


def _key(t: Any) -> tuple[str, int, str, str]:
    return (t.host, t.port, t.database, t.username)
