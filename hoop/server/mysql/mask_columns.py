"""How masking sees MySQL result columns: where each comes from, what type it names, and
binary (prepared statement) values as text for the mask plan and back.
"""

from __future__ import annotations

from typing import Any

from hoop.core.masking import ColumnRef
from hoop.server.mysql import codec as c
from hoop.server.mysql import packets as p

# How masking names MySQL column types (see hoop.core.detectors.type_kind).
TYPE_HINTS = {
    c.MYSQL_TYPE_TINY: "tinyint",
    c.MYSQL_TYPE_SHORT: "smallint",
    c.MYSQL_TYPE_LONG: "int",
    c.MYSQL_TYPE_INT24: "mediumint",
    c.MYSQL_TYPE_LONGLONG: "bigint",
    c.MYSQL_TYPE_FLOAT: "float",
    c.MYSQL_TYPE_DOUBLE: "double",
    c.MYSQL_TYPE_DECIMAL: "decimal",
    c.MYSQL_TYPE_NEWDECIMAL: "decimal",
    c.MYSQL_TYPE_YEAR: "year",
    c.MYSQL_TYPE_DATE: "date",
    c.MYSQL_TYPE_NEWDATE: "date",
    c.MYSQL_TYPE_TIME: "time",
    c.MYSQL_TYPE_DATETIME: "datetime",
    c.MYSQL_TYPE_TIMESTAMP: "timestamp",
    c.MYSQL_TYPE_BIT: "bit",
    c.MYSQL_TYPE_GEOMETRY: "geometry",
    c.MYSQL_TYPE_JSON: "json",
    c.MYSQL_TYPE_NULL: "text",
}
_NUMERIC_BINARY = frozenset(
    (
        c.MYSQL_TYPE_TINY,
        c.MYSQL_TYPE_SHORT,
        c.MYSQL_TYPE_LONG,
        c.MYSQL_TYPE_INT24,
        c.MYSQL_TYPE_LONGLONG,
        c.MYSQL_TYPE_YEAR,
    )
)


def column_ref(col: p.ColumnDefinition) -> ColumnRef | None:
    """MySQL names the origin of each result column, so aliases resolve here; computed columns
    have no origin table and are left to the content detectors."""
    if not col.org_table or not col.org_name:
        return None
    return ColumnRef(
        col.schema.decode("utf-8", "replace").lower(),
        col.org_table.decode("utf-8", "replace").lower(),
        col.org_name.decode("utf-8", "replace").lower(),
    )


def text_of(v: Any) -> bytes:
    if isinstance(v, float):
        return repr(v).encode()
    return str(v).encode()


def binary_of(v: bytes | None, col: p.ColumnDefinition) -> Any:
    """A masked value back in the column's binary type; anything that does not fit is NULL."""
    if v is None:
        return None
    if col.type in _NUMERIC_BINARY:
        try:
            return int(v)
        except ValueError:
            return None
    if col.type in (c.MYSQL_TYPE_DOUBLE, c.MYSQL_TYPE_FLOAT):
        try:
            return float(v)
        except ValueError:
            return None
    if col.type in TYPE_HINTS and col.type not in (
        c.MYSQL_TYPE_DECIMAL,
        c.MYSQL_TYPE_NEWDECIMAL,
        c.MYSQL_TYPE_JSON,
        c.MYSQL_TYPE_BIT,
        c.MYSQL_TYPE_GEOMETRY,
    ):
        return None  # dates and times: masked whole means withheld
    return v
