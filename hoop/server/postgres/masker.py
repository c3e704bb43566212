"""Result rewriting for one session: masks DataRow and COPY OUT values, enforces row limits.

Built once per RowDescription (or CopyOutResponse): the plan decides which columns are
masked whole and which are scanned, and rows where nothing changes are forwarded as the
original bytes. Binary-format values are never passed through raw when their column is
masked, and are only scanned when their binary form is readable (text types, integers).
"""

from __future__ import annotations

import struct
from typing import Any, Callable

from hoop.core.masking import MaskFormatError, MaskPlan, mask_copy_line
from hoop.server.postgres import codec
from hoop.server.postgres.columns import TEXT_IN_BINARY, TYPE_NAMES

_INT_BINARY: dict[int, Callable[[bytes], int]] = {
    20: lambda v: struct.unpack("!q", v)[0],
    23: lambda v: struct.unpack("!i", v)[0],
    21: lambda v: struct.unpack("!h", v)[0],
}


def type_hints(fields: list[codec.Field]) -> list[str | None]:
    return [TYPE_NAMES.get(f.type_oid) for f in fields]


class RowMasker:
    """Applies a plan to DataRow messages of one result set."""

    __slots__ = ("plan", "binary", "columns", "binary_text")

    def __init__(self, plan: MaskPlan, fields: list[codec.Field]) -> None:
        self.plan = plan
        self.columns = len(fields)
        # Binary columns the plan touches: index -> how to show the value to the detectors.
        self.binary: dict[int, Callable[[bytes], int] | None] = {}
        self.binary_text: set[int] = set()  # binary columns whose wire form is UTF-8 text
        touched = set(plan.masked_columns) | set(plan.scanned_columns)
        for i, f in enumerate(fields):
            if f.format == 1 and i in touched:
                if f.type_oid in TEXT_IN_BINARY:
                    self.binary[i] = None
                    self.binary_text.add(i)
                elif plan.column_masked(i):
                    self.binary[i] = None
                else:
                    self.binary[i] = _INT_BINARY.get(f.type_oid, _unreadable)

    def rewrite(self, body: memoryview) -> bytes | None:
        """A replacement DataRow message, or None when the row is unchanged."""
        values = codec.parse_data_row(body)
        if len(values) != self.columns:
            raise codec.ProtocolViolation("DataRow column count differs from RowDescription")
        if not self.binary:
            out = self.plan.apply(values)
            return None if out is None else codec.data_row(out)
        shown = list(values)
        for i, decode in self.binary.items():
            v = values[i]
            if v is not None and decode is not None:
                try:
                    shown[i] = str(decode(v)).encode()
                except (struct.error, ValueError):
                    shown[i] = b"\x00unreadable"
        out = self.plan.apply(shown)
        if out is None:
            return None
        final = list(values)
        for i, new in enumerate(out):
            if new is not shown[i]:
                # A masked binary value becomes NULL unless its binary form is text: a text
                # mask is not valid binary data of another type.
                final[i] = new if i not in self.binary or i in self.binary_text else None
        return codec.data_row(final)


def _unreadable(value: bytes) -> int:
    raise ValueError("binary value the detectors cannot read")


class CopyMasker:
    """Applies a plan to COPY OUT text-format rows (one CopyData per row from the server)."""

    __slots__ = ("plan",)

    def __init__(self, plan: MaskPlan) -> None:
        self.plan = plan

    def rewrite(self, body: memoryview) -> bytes | None:
        line = bytes(body)
        try:
            out = mask_copy_line(self.plan, line)
        except MaskFormatError:
            # A line we cannot split by columns is scanned as free text instead.
            text = line.decode("utf-8", "surrogateescape")
            masked = self.plan.apply_text(text)
            out = None if masked == text else masked.encode("utf-8", "surrogateescape")
        return None if out is None else codec.message(b"d", out)


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


def sample_row(body: memoryview, limit: int = 200) -> list[Any]:
    """A row for the recording (already masked), values shortened for readability."""
    out: list[Any] = []
    for v in codec.parse_data_row(body):
        if v is None:
            out.append(None)
        else:
            text = v.decode("utf-8", "replace")
            out.append(text if len(text) <= limit else text[:limit] + "…")
    return out
