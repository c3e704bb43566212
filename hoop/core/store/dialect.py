"""The few places where SQLite and PostgreSQL read the store's SQL differently.

The store's SQL is written once, in the form SQLite takes (`?` and `:name` placeholders), and
`Dialect.sql` rewrites it for psycopg (`%s`, `%(name)s`, a literal `%` doubled). Outside that,
both engines take the same statements: `ON CONFLICT ... DO UPDATE`, `RETURNING`, `coalesce`.

One column name is a reserved word in PostgreSQL: `user`, where a bare `user` is the
`CURRENT_USER` function and would silently read the role's name. The rewrite quotes it, so
no query can read the wrong thing, and SQLite accepts the quoted form as well.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

# A single-quoted literal (kept as it is), a placeholder, a bare `user`, or a percent sign.
_TOKEN = re.compile(r"'(?:[^']|'')*'|\?|(?<![\w:]):([A-Za-z_]\w*)|(?<![\w\".])\buser\b(?![\w\"])|%", re.IGNORECASE)


@dataclass(frozen=True)
class Dialect:
    name: str  # "sqlite" or "postgresql"

    def sql(self, text: str) -> str:
        return text if self.name == "sqlite" else _pyformat(text)

    def json_text(self, column: str, key: str) -> str:
        """The text of one top-level key of a JSON object stored as text."""
        if self.name == "sqlite":
            return f"json_extract({column}, '$.{key}')"
        return f"(({column})::jsonb ->> '{key}')"

    def local_minute(self, column: str) -> str:
        """A unix-seconds column as local `YYYY-MM-DD HH:MM` text (searches by date)."""
        if self.name == "sqlite":
            return f"strftime('%Y-%m-%d %H:%M', {column}, 'unixepoch', 'localtime')"
        return f"to_char(to_timestamp({column}), 'YYYY-MM-DD HH24:MI')"


SQLITE = Dialect("sqlite")
POSTGRESQL = Dialect("postgresql")


@lru_cache(maxsize=1024)
def _pyformat(text: str) -> str:
    def rewrite(match: re.Match[str]) -> str:
        token = match.group(0)
        if token.startswith("'"):
            return token.replace("%", "%%")
        if token == "?":
            return "%s"
        if token == "%":
            return "%%"
        if match.group(1):
            return f"%({match.group(1)})s"
        return '"user"'

    return _TOKEN.sub(rewrite, text)
