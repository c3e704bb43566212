"""The few places where SQLite and PostgreSQL read the store's SQL differently.

The store's SQL is written once, in the form SQLite takes (`?` and `:name` placeholders), and
`Dialect.sql` rewrites it for psycopg (`%s`, `%(name)s`, a literal `%` doubled). Outside that,
both engines take the same statements: `ON CONFLICT ... DO UPDATE`, `RETURNING`, `coalesce`.

One column name is a reserved word in PostgreSQL: `user`, where a bare `user` is the
`CURRENT_USER` function and would silently read the role's name. The rewrite quotes it, so
no query can read the wrong thing, and SQLite accepts the quoted form as well.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from functools import lru_cache

# A single-quoted literal or a comment (kept as it is), a placeholder, a bare `user`, or a
# percent sign.
_TOKEN = re.compile(
    r"'(?:[^']|'')*'|--[^\n]*|/\*.*?\*/|\?|(?<![\w:]):([A-Za-z_]\w*)|(?<![\w\".])\buser\b(?![\w\"])|%",
    re.IGNORECASE | re.DOTALL,
)


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
        """A unix-seconds column as `YYYY-MM-DD HH:MM` text in this process's local time, as the
        listings show times (searches by date). PostgreSQL would use the server's time zone,
        which need not be ours: the zone is named."""
        if self.name == "sqlite":
            return f"strftime('%Y-%m-%d %H:%M', {column}, 'unixepoch', 'localtime')"
        return f"to_char(to_timestamp({column}) AT TIME ZONE {local_zone()}, 'YYYY-MM-DD HH24:MI')"

    def like(self) -> str:
        """A case-insensitive LIKE (SQLite's LIKE is one; PostgreSQL's is case-sensitive)."""
        return "LIKE" if self.name == "sqlite" else "ILIKE"


SQLITE = Dialect("sqlite")
POSTGRESQL = Dialect("postgresql")


def local_zone() -> str:
    """This process's time zone as a PostgreSQL literal: the zone named by TZ or /etc/localtime
    (daylight saving included), else today's fixed offset from UTC."""
    name = os.environ.get("TZ", "").lstrip(":") or "/etc/localtime"
    if name.startswith("/"):  # a zone file: its name is its path under zoneinfo/
        name = os.path.realpath(name).partition("zoneinfo/")[2]
    if name and re.fullmatch(r"[A-Za-z0-9_+\-/]{1,64}", name):
        return f"'{name}'"
    offset = -(time.altzone if time.localtime().tm_isdst > 0 else time.timezone)
    return f"INTERVAL '{offset} seconds'"


@lru_cache(maxsize=1024)
def _pyformat(text: str) -> str:
    def rewrite(match: re.Match[str]) -> str:
        token = match.group(0)
        if token.startswith(("'", "--", "/*")):  # psycopg reads % everywhere, even in these
            return token.replace("%", "%%")
        if token == "?":
            return "%s"
        if token == "%":
            return "%%"
        if match.group(1):
            return f"%({match.group(1)})s"
        return '"user"'

    return _TOKEN.sub(rewrite, text)
