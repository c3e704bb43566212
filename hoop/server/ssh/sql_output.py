"""How the SQL shell prints a result set.

Values arrive as the server's text (the PostgreSQL shell loads every type as text, the MySQL
shell uses no converters), so numbers, booleans and dates look as they do in psql and mariadb.
None is SQL NULL.

- `aligned`: the interactive table, psql style, long cells cut.
- `expanded`: one `-[ RECORD n ]-` block per row (psql's `\\x`).
- `unaligned`: `psql -A` (header, `|`-separated rows, `(N rows)`; NULL empty), for exec.
- `batch`: `mariadb -B` (tab-separated, header row, NULL as `NULL`; tab, newline, NUL and
  backslash escaped as mariadb does), for exec.
"""

from __future__ import annotations

from typing import Any

MAX_CELL = 60
Row = tuple[Any, ...]


def text_of(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def rows_footer(count: int) -> str:
    return f"({count} row{'' if count == 1 else 's'})"


def aligned(columns: list[str], rows: list[Row]) -> str:
    cells = [["NULL" if v is None else _short(text_of(v)) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    out = [" | ".join(c.center(w) for c, w in zip(columns, widths)).rstrip(), "-+-".join("-" * w for w in widths)]
    out += [" | ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
    out.append(rows_footer(len(rows)))
    return "\n".join(out)


def expanded(columns: list[str], rows: list[Row]) -> str:
    if not rows:
        return "(0 rows)"
    cells = [["" if v is None else text_of(v) for v in row] for row in rows]
    width = max((len(c) for c in columns), default=0)
    total = width + 3 + max((len(v) for row in cells for v in row), default=0)
    out: list[str] = []
    for n, row in enumerate(cells, 1):
        header = f"-[ RECORD {n} ]"
        out.append(header + "-" * max(0, total - len(header)))
        out += [f"{name.ljust(width)} | {value}".rstrip() for name, value in zip(columns, row)]
    return "\n".join(out)


def unaligned(columns: list[str], rows: list[Row]) -> str:
    out = ["|".join(columns)]
    out += ["|".join("" if v is None else text_of(v) for v in row) for row in rows]
    out.append(rows_footer(len(rows)))
    return "\n".join(out)


def batch(columns: list[str], rows: list[Row]) -> str:
    out = ["\t".join(_batch_escape(c) for c in columns)]
    out += ["\t".join("NULL" if v is None else _batch_escape(text_of(v)) for v in row) for row in rows]
    return "\n".join(out)


def _batch_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\0", "\\0")


def _short(text: str) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"
