"""Statement classification for guardrails: PostgreSQL (pglast), MySQL/MariaDB (sqlglot), shell lines.

`classify(sql, dialect, mode)` is cached on the exact text and the session's `TextMode` (the
settings that decide how the server splits text): the extended protocol sends the same text
again and again, and a Classification is immutable.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from typing import Literal

from .model import PLANNED_ONLY, Classification, PreparedStatements, Statement
from .shell import classify_shell
from .textmode import UTF8, TextMode, TextModeError

Dialect = Literal["postgres", "mysql"]

__all__ = [
    "PLANNED_ONLY",
    "Classification",
    "Dialect",
    "PreparedStatements",
    "Statement",
    "TextMode",
    "TextModeError",
    "classify",
    "classify_shell",
]


@lru_cache(maxsize=4096)
def _classify(sql: str, dialect: str, mode: TextMode) -> Classification:
    if dialect == "postgres":
        from .postgres import classify_postgres

        return replace(classify_postgres(sql, mode), dialect="postgres")
    if dialect == "mysql":
        from .mysql import classify_mysql

        return replace(classify_mysql(sql, mode), dialect="mysql")
    raise ValueError(f"unknown SQL dialect {dialect!r}")


def classify(sql: str, dialect: Dialect, mode: TextMode = UTF8) -> Classification:
    """Classify every statement in `sql` as the server reads it under `mode` (the session's
    string modes; `sql` is already decoded with its character set). Never raises for bad SQL:
    see Classification.error."""
    return _classify(sql, dialect, mode)
