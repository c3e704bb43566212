"""`[limits]` in hoop.toml: what one user, or one source address, may take of the gateway.

Every limit acts when a connection, a login or a session starts (or, for recordings, as one
integer comparison per recorded item), so statements pay nothing for them. The defaults stop
a flood (a user opening sessions until the upstream has no connection slots left, a password
guesser, a client holding half-open logins) and stay out of the way of ordinary use.

`LoginThrottle` is the pure part of the login back-off; the gateway's doors ask it before a
credential is checked.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, fields
from typing import Any

from hoop.core.errors import ConfigError

GIB = 1 << 30


@dataclass(frozen=True)
class Limits:
    # Concurrent sessions one user may have open on one connection (every door counts).
    sessions_per_user: int = 20
    # Failed logins within `login_failure_window` seconds before further attempts are refused
    # without looking at the credential; each failure after that doubles the wait.
    login_failures_per_user: int = 10
    login_failures_per_source: int = 20
    login_failure_window: float = 60.0
    login_backoff_max: float = 300.0
    # Requests one user may have waiting for approvers at once; one more is refused, not queued.
    pending_approvals_per_user: int = 5
    # A session whose recording grows past this is ended (nothing is served unrecorded).
    recording_bytes_per_session: int = GIB
    # Largest terminal a client may ask for (pty-req); larger window changes are clamped.
    pty_max_cols: int = 1000
    pty_max_rows: int = 500
    # Connections from one address that have not finished logging in; more are closed at once.
    preauth_per_source: int = 64
    # Seconds a PostgreSQL or MySQL client has from connecting until it has logged in.
    preauth_timeout: float = 10.0
    # Seconds an SSH client has to log in (people type tokens at this prompt).
    ssh_login_timeout: float = 60.0


# key -> (lowest, highest) accepted
_RANGES: dict[str, tuple[float, float]] = {
    "sessions_per_user": (1, 100_000),
    "login_failures_per_user": (1, 100_000),
    "login_failures_per_source": (1, 100_000),
    "login_failure_window": (1, 86_400),
    "login_backoff_max": (1, 86_400),
    "pending_approvals_per_user": (1, 10_000),
    "recording_bytes_per_session": (4096, 1 << 50),
    "pty_max_cols": (20, 10_000),
    "pty_max_rows": (5, 10_000),
    "preauth_per_source": (1, 100_000),
    "preauth_timeout": (1, 3_600),
    "ssh_login_timeout": (5, 3_600),
}


def limits_from_mapping(data: Any, *, file: str, key: str = "limits") -> Limits:
    """The `[limits]` table; unknown keys, wrong types, non-finite numbers and values out of
    range are refused naming the dotted key."""
    if not isinstance(data, dict):
        raise ConfigError(file, key, f"expected a table, got {type(data).__name__}")
    values: dict[str, Any] = {}
    for f in fields(Limits):
        if f.name not in data:
            continue
        value = data[f.name]
        lo, hi = _RANGES[f.name]
        whole = f.type == "int"
        ok_type = isinstance(value, int) if whole else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type or not math.isfinite(value) or not lo <= value <= hi:
            kind = "an integer" if whole else "a number of seconds"
            raise ConfigError(file, f"{key}.{f.name}", f"expected {kind} between {lo:g} and {hi:g}, got {value!r}")
        values[f.name] = value if whole else float(value)
    unknown = sorted(set(data) - {f.name for f in fields(Limits)})
    if unknown:
        raise ConfigError(file, f"{key}.{unknown[0]}", f"unknown key(s): {', '.join(unknown)}")
    return Limits(**values)


class _Failures:
    """Recent failed logins of one user or one source, and its back-off state."""

    __slots__ = ("events", "level", "until")

    def __init__(self) -> None:
        self.events: deque[tuple[float, str]] = deque()  # (when, the other party: source or user)
        self.level = 0  # how many refusals in a row this episode has earned
        self.until = 0.0  # attempts are refused until then


SWEEP_FLOOR = 1024  # records a throttle table holds before expired ones are swept
KNOWN_FOR = 86400.0  # seconds an address a user logged in from stays theirs (see LoginThrottle)
KNOWN_KEPT = 65536  # such (user, address) pairs kept before those older than a day are dropped


class LoginThrottle:
    """Failed logins per user and per source within a sliding window, with exponential back-off.

    Once a user (or a source) has `limit` failures within the window, attempts are refused
    for one second without the credential being checked; every failure after that, within
    the same episode, doubles the wait (up to `backoff_max`). An episode ends after a window
    with no failure. A successful login forgets only the failures of that user from that
    source: it neither clears another source's record nor, by itself, a source's record of
    other users (a guesser cannot reset its count by logging in to its own account).

    A user's failures elsewhere do not hold back an address that user logged in from within
    the last day (`KNOWN_FOR`): otherwise anyone could lock a user out by failing logins in
    their name. That address stays bound by its own per-source count.
    """

    def __init__(self, limits: Limits) -> None:
        self.window = limits.login_failure_window
        self.backoff_max = limits.login_backoff_max
        self.per_user = limits.login_failures_per_user
        self.per_source = limits.login_failures_per_source
        self.users: dict[str, _Failures] = {}
        self.sources: dict[str, _Failures] = {}
        # Records expire when their key is seen again; names tried once are swept when a table
        # doubles, so guessing many user names cannot grow memory without bound.
        self._sweep_at = SWEEP_FLOOR
        self.known: dict[tuple[str, str], float] = {}  # (user, source) -> last successful login

    def wait(self, user: str, source: str, now: float) -> float:
        """Seconds until this user may try again from this source (0: try now)."""
        known = now - self.known.get((user, source), -KNOWN_FOR) < KNOWN_FOR
        user_wait = 0.0 if known else self._wait(self.users, user, now)
        return max(user_wait, self._wait(self.sources, source, now))

    def failed(self, user: str, source: str, now: float) -> None:
        self._failed(self.users, user, source, self.per_user, now)
        self._failed(self.sources, source, user, self.per_source, now)

    def succeeded(self, user: str, source: str, now: float) -> None:
        if len(self.known) >= KNOWN_KEPT:
            self.known = {k: t for k, t in self.known.items() if now - t < KNOWN_FOR}
        self.known[(user, source)] = now
        self._forget(self.users, user, source)
        self._forget(self.sources, source, user)

    def _wait(self, table: dict[str, _Failures], key: str, now: float) -> float:
        record = table.get(key)
        if record is None:
            return 0.0
        self._expire(table, key, record, now)
        return max(0.0, record.until - now)

    def _expire(self, table: dict[str, _Failures], key: str, record: _Failures, now: float) -> None:
        while record.events and record.events[0][0] <= now - self.window:
            record.events.popleft()
        if record.level and now >= record.until + self.window and not record.events:
            record.level = 0  # a quiet window after the last refusal ends the episode
        if not record.events and not record.level:
            table.pop(key, None)

    def _failed(self, table: dict[str, _Failures], key: str, other: str, limit: int, now: float) -> None:
        if len(table) >= self._sweep_at:
            for stale_key, stale in list(table.items()):
                self._expire(table, stale_key, stale, now)
            self._sweep_at = max(SWEEP_FLOOR, 2 * len(table))
        record = table.setdefault(key, _Failures())
        self._expire(table, key, record, now)
        table[key] = record
        record.events.append((now, other))
        if record.level or len(record.events) >= limit:
            record.level += 1
            # The exponent stops growing once the cap is reached (2.0 ** 1024 overflows).
            record.until = now + min(self.backoff_max, 2.0 ** min(record.level - 1, 62))

    def _forget(self, table: dict[str, _Failures], key: str, other: str) -> None:
        record = table.get(key)
        if record is not None:
            record.events = deque(e for e in record.events if e[1] != other)


def source_of(client: str) -> str:
    """The address part of "host:port" (the unit login failures and pre-auth slots count by)."""
    host, sep, port = client.rpartition(":")
    return host if sep and port.isdigit() else client
