"""Rows rewritten in place (masker.InPlaceRows) equal rows rebuilt value by value."""

from __future__ import annotations

import random

import pytest

from hoop.core.masking import ColumnRef, MaskPolicy, MaskRule
from hoop.core.message_masking import SeenValues
from hoop.server.postgres import codec
from hoop.server.postgres.codec import Field
from hoop.server.postgres.framing import MessageFramer, ProtocolViolation
from hoop.server.postgres.masker import RowMasker

COLUMNS = ["id", "email", "note", "password_hash", "card"]
TYPES = [(23, "int4"), (25, "text"), (25, "text"), (25, "text"), (20, "int8")]
FIELDS = [Field(n, 1, i + 1, oid, -1, -1, 0) for i, (n, (oid, _)) in enumerate(zip(COLUMNS, TYPES))]
REFS = [ColumnRef("public", "people", n) for n in COLUMNS]
WATCH = frozenset(b"CEZIsTHSGWNAD")


def _masker(style: str, detectors: tuple[str, ...] = ()) -> RowMasker:
    rule = MaskRule(name="m", columns=("*.email", "*.password*"), detectors=detectors, style=style)  # type: ignore[arg-type]
    policy = MaskPolicy.build([rule], connection="c", groups=frozenset())
    plan = policy.plan(REFS, [t for _, t in TYPES], seen=SeenValues())
    assert plan is not None
    return RowMasker(plan, FIELDS)


def _rows(n: int) -> list[list[bytes | None]]:
    rnd = random.Random(7)

    def value(i: int, c: int) -> bytes | None:
        if rnd.random() < 0.15:
            return None
        if c == 0:
            return str(i).encode()
        if c == 4:
            return rnd.choice([b"4111111111111111", b"1234", b"-7"])
        if c == 1:
            return rnd.choice([b"", f"user{i}@example.com".encode()])
        if c == 3:
            return rnd.choice([b"a", f"$2b$12$secret{i}".encode()])
        return rnd.choice([b"", b"a", "Zoë ✓ 3℃".encode() * rnd.randint(1, 40)])

    return [[value(i, c) for c in range(len(COLUMNS))] for i in range(n)]


@pytest.mark.parametrize("style", ["redact", "partial", "hash"])
def test_a_buffer_of_rows_rewritten_in_place_equals_rows_rebuilt(style: str) -> None:
    reference, fast = _masker(style), _masker(style)
    assert fast.in_place is not None
    rows = _rows(400)
    stream = b"".join(codec.data_row(r) for r in rows) + codec.command_complete("SELECT 400")
    expected = []
    for r in rows:
        msg = codec.data_row(r)
        new = reference.rewrite(memoryview(msg)[5:])
        expected.append(msg if new is None else new)
    framer = MessageFramer()
    framer.feed(stream)
    view, marks = framer.split_complete(WATCH)
    data = bytes(view)
    out: list[bytes] = []
    k, prev = fast.in_place.rewrite_rows(data, marks, 0, out, 0)
    assert k == len(rows)  # stops at CommandComplete
    got = b"".join(out) + data[prev:]
    assert got == b"".join(expected) + codec.command_complete("SELECT 400")
    assert b"user" not in got and b"secret" not in got  # columns masked whole


def test_plans_searching_values_together_are_not_rewritten_in_place() -> None:
    assert _masker("redact", ("email",)).in_place is None


def test_binary_masked_columns_are_not_rewritten_in_place() -> None:
    rule = MaskRule(name="m", columns=("*.email",))
    plan = MaskPolicy.build([rule], connection="c", groups=frozenset()).plan(REFS, [t for _, t in TYPES])
    assert plan is not None
    fields = [Field(f.name, f.table_oid, f.attnum, f.type_oid, f.typlen, f.typmod, 1) for f in FIELDS]
    assert RowMasker(plan, fields).in_place is None


@pytest.mark.parametrize(
    "row",
    [
        b"D\x00\x00\x00\x06\x00\x04",  # fewer columns than described
        b"D\x00\x00\x00\x0e\x00\x05\x00\x00\x00\x01" + b"1" + b"\x00\x00",  # truncated length
        b"D\x00\x00\x00\x12\x00\x05\x00\x00\x00\x01" + b"1" + b"\x00\x00\x00\x09ab",  # value past the end
        b"D\x00\x00\x00\x0f\x00\x05\xff\xff\xff\xfe" + b"\x00\x00\x00\x00",  # negative length
    ],
)
def test_malformed_rows_are_a_protocol_violation(row: bytes) -> None:
    masker = _masker("redact")
    assert masker.in_place is not None
    with pytest.raises(ProtocolViolation):
        masker.in_place.rewrite_rows(row, [(68, 0, len(row))], 0, [], 0)
