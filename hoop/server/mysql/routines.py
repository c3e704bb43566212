"""Reads the stored routines and triggers that exist upstream, for the pipeline's RoutineCatalog.

From information_schema, outside the system schemas, in one query over a short side connection
with the held credential: `ROUTINES` (the body of each procedure and function; a body the
gateway's account may not see is read as empty, which the catalog judges dynamic),
`PARAMETERS` (their names: values, not columns, in the body), `TRIGGERS` (the table, the event
and the body) and `VIEWS` (a view that calls a stored function runs it).
`hoop.server.routine_watch` decides when to read.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from hoop.core.sql.routines import RoutineCatalog, mysql_catalog
from hoop.server.mysql.views import fetch_rows

_SYSTEM = "('mysql', 'sys', 'information_schema', 'performance_schema')"
_QUERY = f"""
SELECT 'R', ROUTINE_SCHEMA, ROUTINE_NAME, '', '', ROUTINE_DEFINITION
FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA NOT IN {_SYSTEM}
UNION ALL
SELECT 'P', SPECIFIC_SCHEMA, SPECIFIC_NAME, PARAMETER_NAME, '', ''
FROM information_schema.PARAMETERS WHERE SPECIFIC_SCHEMA NOT IN {_SYSTEM} AND PARAMETER_NAME IS NOT NULL
UNION ALL
SELECT 'V', TABLE_SCHEMA, TABLE_NAME, '', '', VIEW_DEFINITION
FROM information_schema.VIEWS WHERE TABLE_SCHEMA NOT IN {_SYSTEM}
UNION ALL
SELECT 'T', TRIGGER_SCHEMA, TRIGGER_NAME, EVENT_OBJECT_TABLE, EVENT_MANIPULATION, ACTION_STATEMENT
FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA NOT IN {_SYSTEM}
"""


async def fetch(target: Any) -> Callable[[], RoutineCatalog]:
    rows = await fetch_rows(target, _QUERY, 6)
    params: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        if r[0] == "P":
            params.setdefault((r[1], r[2]), []).append(r[3])
    routines = sorted((r[1], r[2], ",".join(params.get((r[1], r[2]), [])), r[5]) for r in rows if r[0] == "R")
    triggers = sorted((r[1], r[2], r[3], r[4], r[5]) for r in rows if r[0] == "T")
    views = sorted((r[1], r[2], r[5]) for r in rows if r[0] == "V")
    return partial(mysql_catalog, routines, triggers, views)
