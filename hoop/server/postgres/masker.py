"""Result rewriting for one session: masks DataRow and COPY OUT values, enforces row limits.

Built once per RowDescription (or CopyOutResponse): the plan decides which columns are
masked whole and which are scanned, and rows where nothing changes are forwarded as the
original bytes. Binary-format values are never passed through raw when their column is
masked, and are only scanned when their binary form is readable (text types, integers).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from hoop.core.masking import MaskPlan
from hoop.core.recording import sample_value
from hoop.server.postgres import codec, framing
from hoop.server.postgres.columns import JSONB, TEXT_IN_BINARY, TYPE_NAMES


def type_hints(fields: list[codec.Field]) -> list[str | None]:
    return [TYPE_NAMES.get(f.type_oid) for f in fields]


class RowMasker:
    """Applies a plan to DataRow messages of one result set.

    Binary-format values the plan touches are shown to it as text where their binary form is
    readable (text types, json, jsonb, integers, floats) and written back in binary; a value
    whose binary form we cannot read is withheld (NULL) rather than passed on unexamined.
    """

    __slots__ = ("plan", "columns", "binary", "in_place")

    def __init__(self, plan: MaskPlan, fields: list[codec.Field]) -> None:
        self.plan = plan
        self.columns = len(fields)
        self.binary: dict[int, tuple[Callable[[bytes], bytes], Callable[[bytes], bytes] | None]] = {}
        touched = set(plan.masked_columns) | set(plan.scanned_columns)
        for i, f in enumerate(fields):
            if f.format == 1 and i in touched:
                self.binary[i] = _binary_codec(f.type_oid)
        # Rows of text-format values the plan masks one at a time are rewritten in place.
        fns = None if self.binary else plan.value_functions()
        self.in_place = InPlaceRows(fns, self.columns) if fns is not None else None

    def rewrite(self, body: memoryview) -> bytes | None:
        """A replacement DataRow message, or None when the row is unchanged."""
        values = codec.parse_data_row(body)
        if len(values) != self.columns:
            raise framing.ProtocolViolation("DataRow column count differs from RowDescription")
        if not self.binary:
            out = self.plan.apply(values)
            return None if out is None else codec.data_row(out)
        shown = list(values)
        unreadable: list[int] = []
        for i, (decode, _) in self.binary.items():
            v = values[i]
            if v is not None:
                try:
                    shown[i] = decode(v)
                except (struct.error, ValueError, UnicodeDecodeError):
                    unreadable.append(i)
        out = self.plan.apply(shown)
        if out is None and not unreadable:
            return None
        final = list(values)
        for i, new in enumerate(out if out is not None else shown):
            if new is shown[i]:
                continue
            if i not in self.binary:
                final[i] = new
                continue
            encode = self.binary[i][1]
            final[i] = encode(new) if encode is not None and new is not None else None
        for i in unreadable:
            final[i] = None
        return codec.data_row(final)


_I16_AT = struct.Struct("!h").unpack_from
_I32_AT = struct.Struct("!i").unpack_from
_I32 = struct.Struct("!i").pack
_HDR = struct.Struct("!cI").pack
NULL_VALUE = codec.NULL_VALUE
_NOTHING = object()  # no value masked yet in a column


class InPlaceRows:
    """Rewrites whole DataRow messages where they lie in a buffer of many: only the values of
    touched columns become Python objects, the bytes between them are copied as they came, and
    a masked value's encoded form (length + bytes) is built once while the mask keeps
    returning the same object (a constant such as the redaction marker)."""

    __slots__ = ("fns", "columns", "last", "encoded")

    def __init__(self, fns: tuple[Callable[[bytes], bytes | None] | None, ...], columns: int) -> None:
        if len(fns) > columns:
            raise ValueError("the plan touches a column the result does not have")
        self.fns = tuple(enumerate(fns))
        self.columns = columns
        self.last: list[object] = [_NOTHING] * len(fns)  # per column: the last new value ...
        self.encoded: list[bytes] = [b""] * len(fns)  # ... and its wire form

    def rewrite_rows(
        self, data: bytes, marks: list[tuple[int, int, int]], k: int, out: list[Any], prev: int
    ) -> tuple[int, int]:
        """Rewrites the DataRows `marks[k:]` lists in `data` up to the first other message.
        Appends to `out` the bytes from `prev` up to each changed row and its replacement;
        returns the index of the first mark not handled and the offset up to which `data` is
        accounted for in `out` (unchanged rows stay in the stretch from there)."""
        columns, fns, last, encoded = self.columns, self.fns, self.last, self.encoded
        append = out.append
        count = len(marks)
        while k < count:
            t, start, end = marks[k]
            if t != 68:  # "D"
                break
            k += 1
            if end - start < 7:
                raise framing.ProtocolViolation("DataRow: truncated message (expected int16)")
            if _I16_AT(data, start + 5)[0] != columns:
                raise framing.ProtocolViolation("DataRow column count differs from RowDescription")
            pos = start + 7
            keep = -1  # where this row's bytes not yet copied begin, once a value changed
            size = end - start - 1  # the length field's value, adjusted as values change size
            for i, fn in fns:
                if pos + 4 > end:
                    raise framing.ProtocolViolation("DataRow: truncated message (expected int32)")
                n = _I32_AT(data, pos)[0]
                pos += 4
                if n < 0:
                    if n != -1:
                        raise framing.ProtocolViolation(f"DataRow: invalid value length {n}")
                    continue
                stop = pos + n
                if stop > end:
                    raise framing.ProtocolViolation(f"DataRow: truncated message (expected {n} bytes)")
                if fn is not None:
                    v = data[pos:stop]
                    nv = fn(v)
                    if nv is not v:
                        if nv is last[i]:
                            wire = encoded[i]
                        else:
                            wire = NULL_VALUE if nv is None else _I32(len(nv)) + nv
                            last[i], encoded[i] = nv, wire
                        if keep < 0:
                            if start > prev:
                                append(data[prev:start])
                            header = len(out)
                            append(b"")  # the header, once the row's new length is known
                            keep = start + 5
                        append(data[keep : pos - 4])
                        append(wire)
                        size += len(wire) - 4 - n
                        keep = stop
                pos = stop
            if keep >= 0:
                append(data[keep:end])
                out[header] = _HDR(b"D", size)
                prev = end
        return k, prev

    def rewrite(self, data: bytes, start: int, end: int) -> bytes | None:
        """The DataRow `data[start:end]` (type byte included) masked, or None when unchanged."""
        out: list[Any] = []
        self.rewrite_rows(data, [(68, start, end)], 0, out, start)
        return b"".join(out) if out else None


def _same(value: bytes) -> bytes:
    return value


def _utf8(value: bytes) -> bytes:
    value.decode("utf-8")  # raises for bytes that are not text: then the value is withheld
    return value


def _binary_codec(type_oid: int) -> tuple[Callable[[bytes], bytes], Callable[[bytes], bytes] | None]:
    """(binary -> text shown to the plan, masked text -> binary or None for NULL)."""
    if type_oid in TEXT_IN_BINARY:
        return _utf8, _same
    if type_oid == JSONB:
        return (lambda v: v[1:] if v[:1] == b"\x01" else _unreadable(v)), (lambda t: b"\x01" + t)
    number = _NUMBERS.get(type_oid)
    if number is not None:
        return (lambda v: str(number(v)).encode()), None  # a masked number becomes NULL
    return _unreadable, None


_NUMBERS: dict[int, Callable[[bytes], object]] = {
    20: lambda v: struct.unpack("!q", v)[0],
    23: lambda v: struct.unpack("!i", v)[0],
    21: lambda v: struct.unpack("!h", v)[0],
    701: lambda v: struct.unpack("!d", v)[0],
    700: lambda v: struct.unpack("!f", v)[0],
}


def _unreadable(value: bytes) -> bytes:
    raise ValueError("binary value the detectors cannot read")


class Limits:
    """Rows and bytes of one statement's result against the policy's limits."""

    __slots__ = ("max_rows", "max_bytes", "rows", "bytes")

    def __init__(self, max_rows: int | None, max_bytes: int | None) -> None:
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.rows = 0
        self.bytes = 0

    def add(self, size: int) -> str | None:
        self.rows += 1
        self.bytes += size
        if self.max_rows is not None and self.rows > self.max_rows:
            return f"result exceeds the limit of {self.max_rows} rows per statement"
        if self.max_bytes is not None and self.bytes > self.max_bytes:
            return f"result exceeds the limit of {self.max_bytes} bytes per statement"
        return None


def sample_row(body: memoryview) -> list[Any]:
    """A row for the recording (already masked), values shortened for readability."""
    return [sample_value(v) for v in codec.parse_data_row(body)]
