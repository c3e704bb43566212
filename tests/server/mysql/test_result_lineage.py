"""Which columns of a MySQL result the door follows for masking, from the cached catalog
alone, and the current database as the server reports it."""

from __future__ import annotations

import time

import pytest

from hoop.core.lineage import Relation
from hoop.core.masking import ColumnRef, MaskPolicy
from hoop.core.masking_rules import MaskRule
from hoop.server.mysql import codec as c
from hoop.server.mysql import packets as p
from hoop.server.mysql.lineage_catalog import ConnectionLineage, metadata_only
from hoop.server.mysql.result_lineage import LineageRefused, NeedsCatalog, derived_columns
from hoop.server.mysql.session_vars import reported_schema

EMAIL = ColumnRef("app", "users", "email")


def _policy(on_unknown: str = "mask") -> MaskPolicy:
    return MaskPolicy([MaskRule(name="pii", columns=("users.email",), on_unknown=on_unknown)], (), b"k" * 32)


def _col(org_table: bytes = b"", org_name: bytes = b"", schema: bytes = b"app") -> p.ColumnDefinition:
    return p.ColumnDefinition(name=org_name or b"x", type=253, schema=schema, org_table=org_table, org_name=org_name)


def _cache(text: str, outputs: list[tuple[frozenset[ColumnRef], ...]] | str) -> ConnectionLineage:
    cache = ConnectionLineage()
    now = time.monotonic()
    cache.relations[("app", "users")] = (now, Relation("app", "users", ("id", "email")))
    cache.relations[("app", "c")] = (now, None)  # a CTE MariaDB names as the origin table
    cache.lineages.entries[("app", text)] = (now, outputs)
    return cache


def test_plain_columns_of_base_tables_are_not_followed() -> None:
    cache = _cache("select email from users", "never read")
    assert derived_columns(cache, _policy(), "app", "select email from users", [_col(b"users", b"email")]) is None


def test_a_cte_column_and_a_computed_column_take_their_lineage() -> None:
    text = "with c as (select email from users) select email, upper(email), id from c"
    cache = _cache(text, [(frozenset({EMAIL}), frozenset({EMAIL}), frozenset())])
    cols = [_col(b"c", b"email"), _col(), _col(b"users", b"id")]
    assert derived_columns(cache, _policy(), "app", text, cols) == [
        frozenset({EMAIL}),
        frozenset({EMAIL}),
        frozenset(),
    ]


def test_a_table_not_yet_looked_up_or_a_lineage_not_cached_needs_the_catalog() -> None:
    cache = _cache("select 1", [(frozenset(),)])
    with pytest.raises(NeedsCatalog):
        derived_columns(cache, _policy(), "app", "select 1", [_col(b"other", b"id")])
    with pytest.raises(NeedsCatalog):
        derived_columns(cache, _policy(), "app", "select 2", [_col()])


def test_unknown_lineage_masks_whole_or_refuses() -> None:
    cache = _cache("select x", "a recursive CTE is not followed")
    cols = [_col(), _col(b"users", b"id")]
    assert derived_columns(cache, _policy(), "app", "select x", cols) == [None, frozenset()]
    with pytest.raises(LineageRefused, match='recursive CTE is not followed.*on_unknown = "block"'):
        derived_columns(cache, _policy("block"), "app", "select x", cols)


def test_show_and_describe_are_not_followed() -> None:
    assert metadata_only("SHOW TABLES") and metadata_only("DESCRIBE users")
    assert not metadata_only("CALL p()") and not metadata_only("select 1")
    cache = _cache("SHOW TABLES", [])
    assert derived_columns(cache, _policy(), "app", "SHOW TABLES", [_col()]) is None


def test_the_current_database_comes_from_the_session_state_block() -> None:
    entry = c.write_lenenc_str(b"other_db")
    block = bytes([1]) + c.write_lenenc_str(entry)  # SESSION_TRACK_SCHEMA
    assert reported_schema(block) == "other_db"
    assert reported_schema(b"") is None


class _Events:
    """The parts of ResponseEvents a result set uses; lineage answers from `cache`."""

    def __init__(self, policy: MaskPolicy, cache: ConnectionLineage) -> None:
        self.policy, self.cache = policy, cache
        self.done: list[object] = []

    def mask_policy(self) -> MaskPolicy:
        return self.policy

    def derived_columns(self, policy: MaskPolicy, text: str, cols: list[p.ColumnDefinition]) -> object:
        return derived_columns(self.cache, policy, "app", text, cols)

    def resolve_columns(self, refs: list[object]) -> list[object]:
        return refs

    def unit_done(self, unit: object) -> None:
        self.done.append(unit)

    def __getattr__(self, name: str) -> object:
        return lambda *a, **k: None


def _result(secret: bytes) -> bytes:
    """A one-column text result (EOF packets): `concat(email, '')` holding `secret`, twice."""
    col = p.ColumnDefinition(name=b"concat(email,'')", type=253)
    packets = [bytes([1]), p.build_column_definition(col), p.build_eof()]
    packets += [p.build_text_row([secret]), p.build_text_row([secret]), p.build_eof()]
    return b"".join(c.encode_packet(pkt, i + 1) for i, pkt in enumerate(packets))


@pytest.mark.parametrize("cached", [True, False])
def test_refused_or_waiting_rows_never_reach_the_client(cached: bool) -> None:
    from hoop.server.mysql.response_events import Unit
    from hoop.server.mysql.results import Responses

    text = "select concat(email, '') from r"
    cache = _cache(text, "a recursive CTE is not followed") if cached else ConnectionLineage()
    responses = Responses(_Events(_policy("block"), cache), 0)  # type: ignore[arg-type]
    responses.units.append(Unit(text, "result", record=False))  # not sampled: rows may run unparsed
    out = b"".join(responses.feed(_result(b"grace@navy.example")))
    if not cached:  # the plan waits for the catalog: the rows wait with it
        assert responses.paused is not None and b"grace" not in out
        cache.lineages.entries[("app", text)] = (time.monotonic(), "a recursive CTE is not followed")
        out += b"".join(responses.resume(None))
    assert b"grace" not in out
    assert b"cannot tell where this result's computed columns come from" in out
    assert not responses.units  # the result ended: the next command's answer is read as such
