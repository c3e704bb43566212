"""The filters of the listings (`sessions`, `audit`, `approvals`): `--since`, `--until`,
`--user`, `--connection`, `--decision`, turned into one SQL condition.

A time is a duration back from now (`90s`, `30m`, `1h`, `7d`) or an ISO 8601 date or time
(`2026-12-07`, `2026-12-07T09:30`, with an offset or in local time).
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hoop.core.durations import parse_duration_text
from hoop.core.errors import HoopError

WHEN_HELP = "a duration back from now (30m, 1h, 7d) or an ISO date or time (2026-12-07T09:30)"


def parse_when(text: str, flag: str, now: float | None = None) -> float:
    """`text` as a Unix time; a bad value names the flag and what was expected."""
    now = time.time() if now is None else now
    if text[-1:].isalpha():  # a unit ends a duration; a bare number is no time at all
        try:
            seconds = parse_duration_text(text)
            if math.isfinite(seconds) and seconds >= 0:
                return now - seconds
        except ValueError:
            pass
    try:
        return datetime.fromisoformat(text).timestamp()  # naive: local time, as the listings show
    except ValueError:
        raise HoopError(f"{flag}: expected {WHEN_HELP}, got {text!r}") from None


def add_filters(parser: argparse.ArgumentParser, *, decision: str | None = None) -> None:
    """The filters on a listing; `decision` is the help of `--decision` where one applies."""
    parser.add_argument("--since", metavar="WHEN", help=f"only from this time: {WHEN_HELP}")
    parser.add_argument("--until", metavar="WHEN", help="only up to this time (same forms as --since)")
    parser.add_argument("--user", metavar="NAME", help="only this user's")
    parser.add_argument("--connection", metavar="NAME", help="only on this connection")
    if decision:
        parser.add_argument("--decision", metavar="WORD", help=decision)


@dataclass
class Where:
    """An SQL condition built clause by clause, with its parameters."""

    clauses: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def add(self, clause: str, *params: Any) -> None:
        self.clauses.append(clause)
        self.params.extend(params)

    def condition(self) -> str:
        return " AND ".join(self.clauses)

    def sql(self) -> str:
        return " WHERE " + self.condition() if self.clauses else ""


def where_of(args: argparse.Namespace, *, time: str, user: str, connection: str, decision: str = "") -> Where:
    """The condition of the filters given on the command line, over these column expressions."""
    where = Where()
    if getattr(args, "since", None):
        where.add(f"{time} >= ?", parse_when(args.since, "--since"))
    if getattr(args, "until", None):
        where.add(f"{time} <= ?", parse_when(args.until, "--until"))
    if getattr(args, "user", None):
        where.add(f"{user} = ?", args.user)
    if getattr(args, "connection", None):
        where.add(f"{connection} = ?", args.connection)
    if decision and getattr(args, "decision", None):
        # `review` matches every way a hold ended (review:approved, review:denied, ...).
        # Compared exactly (no LIKE: `_` and `%` are no wildcards here, and PostgreSQL's LIKE minds
        # case where SQLite's does not); decisions are stored in lower case.
        word = args.decision.lower()
        where.add(f"({decision} = ? OR substr({decision}, 1, ?) = ?)", word, len(word) + 1, word + ":")
    return where


def shorten(text: str, width: int) -> str:
    """`text` (already shown inert) cut to `width` characters, ending with `…` when cut."""
    return text if len(text) <= width else text[: width - 1] + "…"
