"""Which columns of a MySQL result need their lineage, and what it says (lineage_catalog.py).

`derived_columns` runs when a result's column definitions are complete, on the event loop:
it answers from the caches only, and raises `NeedsCatalog` when the catalog must be read
first (the parser then holds the rows back while `load` reads it off the event loop) or
`LineageRefused` when a rule with `on_unknown = "block"` refuses the result. Plain column
reads of base tables cost a dictionary lookup per column, and nothing is parsed for them.
"""

from __future__ import annotations

from hoop.core.lineage import LineageUnknown, Taint, by_position
from hoop.core.masking import MaskPolicy
from hoop.server.mysql import packets as p
from hoop.server.mysql.lineage_catalog import ConnectionLineage, metadata_only
from hoop.server.mysql.upstream import MySQLTarget

Derived = list[Taint | None]


class NeedsCatalog(Exception):
    """The catalog must be read before the plan of this result can be made."""


class LineageRefused(Exception):
    """A rule refuses a result whose computed columns cannot be followed; the message says why."""


def _origin(col: p.ColumnDefinition) -> tuple[str, str, str] | None:
    if not col.org_table or not col.org_name or not col.schema:
        return None  # computed (MariaDB names a view's computed column's view, but no database)
    return (
        col.schema.decode("utf-8", "replace").lower(),
        col.org_table.decode("utf-8", "replace").lower(),
        col.org_name.decode("utf-8", "replace").lower(),
    )


def _followed(cache: ConnectionLineage, cols: list[p.ColumnDefinition]) -> list[bool]:
    """Per column: computed, or read through something that is not a base table holding it."""
    out = []
    for col in cols:
        origin = _origin(col)
        if origin is None:
            out.append(True)
            continue
        known, relation = cache.relation(origin[0], origin[1])
        if not known:
            raise NeedsCatalog
        out.append(relation is None or relation.view is not None or origin[2] not in relation.columns)
    return out


def derived_columns(
    cache: ConnectionLineage, policy: MaskPolicy, database: str, text: str, cols: list[p.ColumnDefinition]
) -> Derived | None:
    """The `derived` argument of `MaskPolicy.plan` for this result (None: nothing to follow)."""
    if not policy.masks_columns:
        return None
    followed = _followed(cache, cols)
    if not any(followed):
        return None
    try:
        outputs = cache.cached(database, text)
        if outputs is None:
            raise NeedsCatalog
        if not outputs and metadata_only(text):
            return None  # SHOW / DESCRIBE: about the schema, not table rows
        derived = by_position(outputs, len(cols))
    except LineageUnknown as why:
        if policy.block_unknown:
            raise LineageRefused(
                f"masking rule {', '.join(policy.block_unknown)} cannot tell where this result's computed "
                f'columns come from ({why}); on_unknown = "block"'
            ) from None
        return [None if f else frozenset() for f in followed]
    return [d if f else frozenset() for d, f in zip(derived, followed)]


async def load(
    cache: ConnectionLineage, target: MySQLTarget, database: str, text: str, cols: list[p.ColumnDefinition]
) -> None:
    """Read what `derived_columns` needs (raises lineage_catalog.CatalogUnreadable)."""
    await cache.load_tables(target, {(o[0], o[1]) for col in cols if (o := _origin(col)) is not None})
    if any(_followed(cache, cols)):
        try:
            await cache.lineage(target, database, text)
        except LineageUnknown:
            pass  # cached as unknown: derived_columns decides
