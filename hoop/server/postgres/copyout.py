"""COPY ... TO STDOUT under masking: which columns the rows carry, and how they are written.

The statement is read with pglast: `COPY table [(columns)]` names its columns directly;
`COPY (query)` is described upstream without running it (Parse + Describe on the catalog
connection), which gives each output column's table OID and attribute number just like a
RowDescription. The options (text or csv, delimiter, null string, header) decide how a row
is split and written back.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

import pglast
from pglast import ast
from pglast.stream import RawStream

from hoop.core.masking import ColumnRef, MaskFormatError, MaskPlan, mask_copy_line
from hoop.server.postgres import codec


@dataclass
class CopySpec:
    format: str = "text"
    delimiter: str = "\t"
    null: str = "\\N"
    header: bool = False
    quote: str = '"'
    table: str | None = None  # "schema.table" or "table"
    columns: list[str] | None = None  # an explicit column list
    query: str | None = None  # the inner query of COPY (query)


def read_copy(text: str) -> CopySpec | None:
    """The COPY statement's shape, or None when the text is not a single COPY TO."""
    try:
        statements = pglast.parse_sql(text)
    except pglast.parser.ParseError:
        return None
    if len(statements) != 1:
        return None
    stmt = statements[0].stmt
    if not isinstance(stmt, ast.CopyStmt) or stmt.is_from:
        return None
    spec = CopySpec()
    for option in stmt.options or ():
        value = getattr(option.arg, "sval", None) if option.arg is not None else None
        name = option.defname
        if name == "format" and value:
            spec.format = value.lower()
        elif name == "delimiter" and value:
            spec.delimiter = value
        elif name == "null" and value is not None:
            spec.null = value
        elif name == "quote" and value:
            spec.quote = value
        elif name == "header":
            spec.header = option.arg is None or getattr(option.arg, "boolval", True) is not False
    given = {o.defname for o in stmt.options or ()}
    if spec.format == "csv":
        spec.null = spec.null if "null" in given else ""
        spec.delimiter = spec.delimiter if "delimiter" in given else ","
    if stmt.relation is not None:
        rel = stmt.relation
        spec.table = f"{rel.schemaname}.{rel.relname}" if rel.schemaname else rel.relname
        spec.columns = [a.sval for a in stmt.attlist] if stmt.attlist else None
    elif stmt.query is not None:
        spec.query = RawStream()(stmt.query)
    return spec


def pick_columns(all_columns: list[ColumnRef], wanted: list[str] | None) -> list[ColumnRef | None]:
    if wanted is None:
        return list(all_columns)
    by_name = {c.column: c for c in all_columns}
    return [by_name.get(name.lower()) for name in wanted]


class CopyRowMasker:
    """Masks one CopyData row (the server sends one row per message) in text or csv format."""

    __slots__ = ("plan", "spec", "skip_header")

    def __init__(self, plan: MaskPlan, spec: CopySpec) -> None:
        self.plan = plan
        self.spec = spec
        self.skip_header = spec.header

    def rewrite(self, body: memoryview) -> bytes | None:
        if self.skip_header:
            self.skip_header = False
            return None  # the header line holds column names, not values
        line = bytes(body)
        if self.spec.format == "csv":
            out = self._csv(line)
        else:
            try:
                out = mask_copy_line(
                    self.plan, line, delimiter=self.spec.delimiter.encode(), null=self.spec.null.encode()
                )
            except MaskFormatError:
                out = self._as_text(line)
        return None if out is None else codec.message(b"d", out)

    def _csv(self, line: bytes) -> bytes | None:
        spec = self.spec
        text = line.decode("utf-8", "surrogateescape")
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=spec.delimiter, quotechar=spec.quote))
        if len(rows) != 1:
            return self._as_text(line)
        fields: list[Any] = rows[0]
        values = [None if f == spec.null else f.encode("utf-8", "surrogateescape") for f in fields]
        try:
            masked = self.plan.apply(values)
        except (IndexError, ValueError):
            return self._as_text(line)
        if masked is None:
            return None
        out = io.StringIO(newline="")
        csv.writer(out, delimiter=spec.delimiter, quotechar=spec.quote, lineterminator="\n").writerow(
            [spec.null if v is None else v.decode("utf-8", "surrogateescape") for v in masked]
        )
        return out.getvalue().encode("utf-8", "surrogateescape")

    def _as_text(self, line: bytes) -> bytes | None:
        """A row we could not split: scanned as free text, unless whole columns must be masked,
        in which case nothing of it may pass (the caller stops the statement)."""
        if self.plan.masked_columns:
            raise MaskFormatError("a COPY row could not be split into its columns for masking")
        text = line.decode("utf-8", "surrogateescape")
        masked = self.plan.apply_text(text)
        return None if masked == text else masked.encode("utf-8", "surrogateescape")
