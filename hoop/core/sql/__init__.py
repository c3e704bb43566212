"""Statement classification for guardrails: PostgreSQL (pglast), MySQL/MariaDB (sqlglot), shell lines.

`classify(sql, dialect)` is cached on the exact text: the extended protocol sends the same text
again and again, and a Classification is immutable.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from typing import Literal

from .model import PLANNED_ONLY, Classification, PreparedStatements, Statement
from .shell import classify_shell

Dialect = Literal["postgres", "mysql"]

__all__ = [
    "PLANNED_ONLY",
    "Classification",
    "Dialect",
    "PreparedStatements",
    "Statement",
    "classify",
    "classify_shell",
]


@lru_cache(maxsize=4096)
def _classify(sql: str, dialect: str) -> Classification:
    if dialect == "postgres":
        from .postgres import classify_postgres

        return replace(classify_postgres(sql), dialect="postgres")
    if dialect == "mysql":
        from .mysql import classify_mysql

        return replace(classify_mysql(sql), dialect="mysql")
    raise ValueError(f"unknown SQL dialect {dialect!r}")


def classify(sql: str, dialect: Dialect) -> Classification:
    """Classify every statement in `sql`. Never raises for bad SQL: see Classification.error."""
    return _classify(sql, dialect)
