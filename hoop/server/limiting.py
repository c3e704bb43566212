"""The gateway's live side of `[limits]` (hoop/core/limits.py): who holds what right now.

- Session slots: a door claims one per (user, connection) before it contacts the upstream
  and releases it when the session ends; a claim over `sessions_per_user` is refused.
- Pre-auth slots: the accept loops count connections per source address until their login
  finishes; over `preauth_per_source` a new connection is closed at once.
- Login back-off: `Services.authenticate` asks before it checks a credential.

Everything here runs on the event loop, in O(1) per call.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from hoop.core.limits import Limits, LoginThrottle, source_of

log = logging.getLogger("hoop.limits")
THROTTLED = "too many failed logins"  # how a refusal by the login back-off begins
REPORT_EVERY = 1.0  # seconds between two audit events of refused logins from one address
REPORTS_KEPT = 4096  # addresses remembered for that before the stale ones are swept


class TooManySessions(Exception):
    """A session over `sessions_per_user`; the message is what the client is told."""


class SessionSlot:
    """One claimed session; `release()` may be called any number of times."""

    __slots__ = ("_limiter", "_key")

    def __init__(self, limiter: Limiter, key: tuple[str, str]) -> None:
        self._limiter: Limiter | None = limiter
        self._key = key

    def release(self) -> None:
        limiter, self._limiter = self._limiter, None
        if limiter is not None:
            limiter._release(self._key)


class Limiter:
    def __init__(self, limits: Limits, audit: Callable[..., None]) -> None:
        self.limits = limits
        self.audit = audit  # journal.audit(actor, action, target, **detail)
        self.sessions: dict[tuple[str, str], int] = {}
        self.preauth: dict[str, set[Any]] = {}  # source address -> peers still logging in
        self._preauth_refusing: set[str] = set()  # sources whose refusal has been logged this episode
        self.throttle = LoginThrottle(limits)
        self._refused: dict[str, list[float]] = {}  # source -> [last reported, refusals since]

    def reconfigure(self, limits: Limits) -> None:
        """New [limits] from a config reload: sessions and logins in progress stay counted;
        the new figures apply to the next claim, connection and login."""
        self.limits = limits
        throttle = self.throttle
        throttle.window = limits.login_failure_window
        throttle.backoff_max = limits.login_backoff_max
        throttle.per_user = limits.login_failures_per_user
        throttle.per_source = limits.login_failures_per_source

    # -- sessions per user and connection ------------------------------------------------------

    def claim_session(self, user: str, connection: str, door: str, client: str) -> SessionSlot:
        """A slot for one more session, or TooManySessions (audited) naming the limit."""
        key = (user, connection)
        held = self.sessions.get(key, 0)
        limit = self.limits.sessions_per_user
        if held >= limit:
            self.audit(
                user, "session.refused", connection, reason="sessions_per_user", limit=limit, door=door, client=client
            )
            raise TooManySessions(f"too many sessions for {user} on {connection} (limit {limit})")
        self.sessions[key] = held + 1
        return SessionSlot(self, key)

    def _release(self, key: tuple[str, str]) -> None:
        left = self.sessions.get(key, 0) - 1
        if left > 0:
            self.sessions[key] = left
        else:
            self.sessions.pop(key, None)

    # -- connections that have not logged in yet -----------------------------------------------

    def admit(self, peer: Any, door: str) -> bool:
        """Count a new connection from `peer` (host, port, ...) as logging in; False (logged
        once per episode) when its address already has `preauth_per_source` such connections."""
        host = str(peer[0]) if peer else "?"
        pending = self.preauth.setdefault(host, set())
        if len(pending) >= self.limits.preauth_per_source:
            if host not in self._preauth_refusing:
                self._preauth_refusing.add(host)
                log.warning(
                    "%s: closing new connections from %s: %d are still logging in (preauth_per_source)",
                    door,
                    host,
                    len(pending),
                )
                self.audit("-", "login.preauth_refused", door, client=host, limit=self.limits.preauth_per_source)
            return False
        pending.add(peer)
        return True

    def logged_in(self, peer: Any) -> None:
        """`peer` finished its login (or went away): it no longer counts. Idempotent."""
        host = str(peer[0]) if peer else "?"
        pending = self.preauth.get(host)
        if pending is None:
            return
        pending.discard(peer)
        if len(pending) < self.limits.preauth_per_source:
            self._preauth_refusing.discard(host)
        if not pending:
            del self.preauth[host]

    # -- failed logins --------------------------------------------------------------------------

    def login_refusal(self, user: str, client: str) -> str:
        """Why this login attempt is refused unchecked ("" when it may go ahead)."""
        wait = self.throttle.wait(user, source_of(client), time.monotonic())
        if not wait:
            return ""
        return f"{THROTTLED}, retry in {math.ceil(wait)}s"

    def throttled_report(self, client: str) -> int:
        """Count one refused attempt from `client`'s address; how many refusals to report in one
        audit event now (this one included), or 0 while the last report is under a second old."""
        now, source = time.monotonic(), source_of(client)
        entry = self._refused.get(source)
        if entry is not None and now - entry[0] < REPORT_EVERY:
            entry[1] += 1
            return 0
        if len(self._refused) >= REPORTS_KEPT:  # many addresses: forget those quiet for a while
            self._refused = {k: v for k, v in self._refused.items() if now - v[0] < 60}
        self._refused[source] = [now, 0]
        return 1 + int(entry[1]) if entry is not None and now - entry[0] < 60 else 1

    def login_failed(self, user: str, client: str) -> None:
        self.throttle.failed(user, source_of(client), time.monotonic())

    def login_succeeded(self, user: str, client: str) -> None:
        self.throttle.succeeded(user, source_of(client), time.monotonic())
