"""Moderated sessions: a session that runs only while a moderator watches it live.

A moderator is a member of the session's moderating groups (a connection's `shell_approvers`,
through its `shell:NAME` rule) other than the session's own user, watching the session in
`hoop tui`. Watching is a lease: the TUI's watch screen renews it every second through the
control operation `moderate`, and it lapses `LEASE` seconds after the last renewal (a TUI that
quits, crashes or loses its link stops counting within seconds), or at once when the watcher
leaves the screen.

The session waits for its first moderator (up to the rule's timeout), runs while any is
present, and is paused whenever the last one leaves: the door's `Gate` discards the user's
input and holds the target's output, and says so on the user's terminal; it resumes when a
moderator comes back. A moderator can kill the session like any approver. Joins, leaves,
pauses and resumes are audited and written into the session's recording.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from hoop.core.durations import format_span
from hoop.core.roles import NotAllowed

if TYPE_CHECKING:
    from hoop.core.guardrails import GuardRule
    from hoop.core.identity import Identity

LEASE = 3.0  # seconds a moderator counts without renewing (the TUI renews every second)
CHECK_EVERY = 0.5  # seconds between checks for lapsed leases


class Session(Protocol):
    """What moderation uses of the session it moderates (the session kit's Session)."""

    @property
    def id(self) -> int: ...
    @property
    def user(self) -> str: ...
    def audit(self, action: str, **detail: Any) -> None: ...
    def frame(self, kind: str, data: dict[str, Any]) -> None: ...


class Gate(Protocol):
    """What a door does to pause a moderated session (ssh/relay.py's Link)."""

    def suspend(self, message: str) -> None: ...
    def unsuspend(self, message: str) -> None: ...
    def notice(self, message: str) -> None: ...


class Moderated:
    """One moderated session: its moderators' leases and whether it may run now."""

    def __init__(
        self,
        session: Session,
        rule: GuardRule,
        gate: Gate,
        forget: Callable[[int], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session, self.rule, self.gate = session, rule, gate
        self.forget = forget
        self.clock = clock
        self.watchers: dict[str, float] = {}  # moderator -> when their lease lapses
        self.present = asyncio.Event()
        self.running = False  # the session is past its wait for a first moderator
        self.paused = False
        self.closed = False
        self._timer: asyncio.TimerHandle | None = None

    @property
    def groups(self) -> str:
        return ", ".join(self.rule.approvers)

    def refusal(self, who: Identity) -> str:
        """Why `who` may not moderate this session ("" when they may)."""
        if who.name == self.session.user:
            return "you cannot moderate your own session"
        if not set(self.rule.approvers).intersection(who.groups):
            return f"only members of {self.groups} moderate session {self.session.id}"
        return ""

    def state(self) -> dict[str, Any]:
        return {
            "id": self.session.id,
            "moderated": True,
            "moderators": sorted(self.watchers),
            "state": "paused" if self.paused else "running" if self.running else "waiting",
        }

    # -- the moderators' side (control operation `moderate`) ------------------------------------

    def renew(self, who: str) -> dict[str, Any]:
        if self.closed:
            return {**self.state(), "state": "ended"}
        joined = who not in self.watchers
        self.watchers[who] = self.clock() + LEASE
        if joined:
            self.session.audit("session.moderate.join", moderator=who)
            self.session.frame("e", {"event": "moderator joined", "moderator": who})
            if self.running and not self.paused:
                self.gate.notice(f"hoop: {who} is now moderating this session")
        self.present.set()
        if self.running and self.paused:
            self._resume(who)
        return self.state()

    def leave(self, who: str, why: str = "left") -> dict[str, Any]:
        if self.watchers.pop(who, None) is not None:
            self.session.audit("session.moderate.leave", moderator=who, why=why)
            self.session.frame("e", {"event": "moderator left", "moderator": who, "why": why})
            if not self.watchers:
                self.present.clear()
                if self.running and not self.paused:
                    self._pause()
        return self.state()

    # -- the session's side ---------------------------------------------------------------------

    async def first_moderator(self) -> bool:
        """Wait for a moderator, up to the rule's timeout; whether one came."""
        self._timer = asyncio.get_running_loop().call_later(CHECK_EVERY, self._check)
        try:
            await asyncio.wait_for(self.present.wait(), self.rule.timeout)
        except TimeoutError:
            self.session.audit("session.moderate.timeout", waited=self.rule.timeout)
            return False
        return True

    def waiting_message(self) -> str:
        return (
            f"hoop: this shell is moderated: it starts when one of {self.groups} watches session "
            f"{self.session.id} in hoop tui (waiting up to {format_span(self.rule.timeout)})"
        )

    def start(self) -> None:
        """The session runs from now on (its first moderator is here); the gate opens."""
        self.running = True
        names = ", ".join(sorted(self.watchers)) or "nobody"
        if self.watchers:
            self.gate.unsuspend(f"hoop: moderated by {names}")
        else:  # the moderator left while the target was being opened
            self._pause()

    def close(self) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
        self.forget(self.session.id)

    def _check(self) -> None:
        now = self.clock()
        for who, until in list(self.watchers.items()):
            if until <= now:
                self.leave(who, "stopped watching")
        if not self.closed:
            self._timer = asyncio.get_running_loop().call_later(CHECK_EVERY, self._check)

    def _pause(self) -> None:
        self.paused = True
        self.session.audit("session.moderate.pause")
        self.gate.suspend(
            f"hoop: paused: no moderator is watching; input is discarded until one of {self.groups} "
            "watches this session again"
        )

    def _resume(self, who: str) -> None:
        self.paused = False
        self.session.audit("session.moderate.resume", moderator=who)
        self.gate.unsuspend(f"hoop: resumed: {who} is moderating this session")


class Moderators:
    """The gateway's moderated sessions, by session id (`services.moderators`)."""

    def __init__(self) -> None:
        self.sessions: dict[int, Moderated] = {}

    def open(self, session: Session, rule: GuardRule, gate: Gate) -> Moderated:
        moderated = Moderated(session, rule, gate, self._forget)
        self.sessions[session.id] = moderated
        return moderated

    def moderate(self, session_id: int, who: Identity, leave: bool) -> dict[str, Any]:
        """`who` renews (or, leaving, drops) their lease on a session this gateway carries;
        a session that is not moderated answers `moderated: false`."""
        moderated = self.get(session_id)
        if moderated is None:
            return {"id": session_id, "moderated": False}
        if leave:
            return moderated.leave(who.name)
        why = moderated.refusal(who)
        if why:
            raise NotAllowed(why)
        return moderated.renew(who.name)

    def get(self, session_id: int) -> Moderated | None:
        return self.sessions.get(session_id)

    def _forget(self, session_id: int) -> None:
        self.sessions.pop(session_id, None)
