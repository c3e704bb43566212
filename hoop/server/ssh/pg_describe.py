"""The catalog queries behind the PostgreSQL shell's `\\dt` and `\\d NAME`.

They are ordinary statements of the shell's session, sent through the gateway's door like
anything the user types, so they are judged, recorded and audited too (never a side channel).
The name in `\\d NAME` is a string literal for `to_regclass`, which resolves it as PostgreSQL
would (search path, schema-qualified and quoted names); an escape-string literal (E'...')
is safe whatever standard_conforming_strings says.
"""

from __future__ import annotations

LIST_TABLES = """\
SELECT n.nspname AS "Schema", c.relname AS "Name",
  CASE c.relkind WHEN 'p' THEN 'partitioned table' ELSE 'table' END AS "Type",
  pg_catalog.pg_get_userbyid(c.relowner) AS "Owner"
FROM pg_catalog.pg_class c
  LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND n.nspname <> 'pg_catalog' AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_toast'
  AND pg_catalog.pg_table_is_visible(c.oid)
ORDER BY 1, 2"""

KINDS = {"r": "Table", "p": "Partitioned table", "v": "View", "m": "Materialized view", "f": "Foreign table"}


def literal(text: str) -> str:
    return "E'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def relation(name: str) -> str:
    """One row (schema, name, kind letter) for NAME, or none when it names no relation."""
    return (
        "SELECT n.nspname, c.relname, c.relkind FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE c.oid = pg_catalog.to_regclass({literal(name)})"
    )


def columns(name: str) -> str:
    return f"""\
SELECT a.attname AS "Column", pg_catalog.format_type(a.atttypid, a.atttypmod) AS "Type",
  CASE WHEN a.attnotnull THEN 'not null' ELSE '' END AS "Nullable",
  COALESCE(pg_catalog.pg_get_expr(d.adbin, d.adrelid), '') AS "Default"
FROM pg_catalog.pg_attribute a
  LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = pg_catalog.to_regclass({literal(name)}) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum"""


def title(schema: str, name: str, kind: str) -> str:
    return f'{KINDS.get(kind, "Relation")} "{schema}.{name}"'
