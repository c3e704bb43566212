"""The heartbeat of a gateway on a shared store (hoop/core/store/gateways.py), once a second.

Each beat, on a worker thread (never the event loop): renew this gateway's row, then declare
lost the gateways silent for longer than `[gateway] heartbeat_timeout` (their sessions
interrupted, their pending approvals expired) and audit each as `gateway.lost`.

The beat is also the gateway's probe of the store: one that fails tells the recording guard,
which refuses statements and logins naming the store until a beat succeeds again. After a
failed beat the heartbeat opens a new handle on the store at each beat, so it is back within
a beat of the store (a connection pool's own retries back off to many seconds). A gateway
only judges others once it has itself reached the store for the timeout plus the time one
connection attempt may take: after an outage every heartbeat is old, and the first gateway
back must not call the others lost while they reconnect.

A gateway whose own row was marked lost (cut off from the store, or frozen, for longer than
the timeout) finds its sessions already recorded as interrupted and its approvals expired: it
ends those sessions and denies the statements they held, rather than run them afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import time

from hoop.core.store.base import Store, StoreUnavailable, open_store
from hoop.core.store.gateways import Lost, Me, NameTaken, beat, leave, reap
from hoop.core.store.records import CloseStatus
from hoop.server.recording_guard import RecordingGuard
from hoop.server.services import LiveSession, Services

log = logging.getLogger("hoop.gateway")
INTERVAL = 1.0
# How much later than this gateway another may reach the store again after an outage: one
# connection attempt (the store's connect timeout).
RECONNECT_SLACK = 5.0
END_AFTER = 0.3  # seconds between denying a rejoining gateway's holds and ending its sessions


class Heartbeat:
    def __init__(
        self, services: Services, store: Store, guard: RecordingGuard, me: Me, stopping: asyncio.Event
    ) -> None:
        self.services = services
        self.store: Store | None = store  # its own handle: a beat never waits behind other store work
        self.target = store.target
        self.guard = guard
        self.me = me
        self.stopping = stopping  # set when another gateway has taken this one's name
        self.timeout = services.config.gateway.heartbeat_timeout
        self.reachable_since: float | None = time.monotonic()  # claimed at start: reachable
        self.name_taken = False  # another gateway took this one's name: it stopped (exit 1)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(INTERVAL)
            try:
                status, lost = await asyncio.to_thread(self._beat)
            except StoreUnavailable as exc:
                self.reachable_since = None
                await asyncio.to_thread(self._drop_store)
                self.guard.store_changed(str(exc))
                continue
            except NameTaken as exc:
                self.name_taken = True
                log.error("%s", exc)
                self.services.journal.audit("gateway", "gateway.name_taken", self.me.name, reason=str(exc))
                self.stopping.set()
                return
            except Exception:  # a bug must not end the heartbeat: the others would call this gateway lost
                log.exception("heartbeat failed")
                continue
            self.guard.store_changed("")
            if status == "lost":
                self._rejoined()
            for gone in lost:
                self._audit_lost(gone)

    def _beat(self) -> tuple[str, list[Lost]]:
        if self.store is None:
            self.store = open_store(self.target)  # StoreUnavailable while the store is down
        status = beat(self.store, self.me)
        now = time.monotonic()
        if self.reachable_since is None:
            self.reachable_since = now
        if now - self.reachable_since < self.timeout + RECONNECT_SLACK:
            return status, []
        return status, reap(self.store, self.me, self.timeout)

    def _drop_store(self) -> None:
        store, self.store = self.store, None
        if store is not None:
            store.close()

    def _audit_lost(self, gone: Lost) -> None:
        log.error(
            "gateway %s (pid %d on %s) is lost: no heartbeat for %.0fs; %d open session(s) marked interrupted, "
            "%d pending approval(s) expired",
            gone.name,
            gone.pid,
            gone.host,
            gone.silent_for,
            gone.sessions,
            gone.approvals,
        )
        self.services.journal.audit(
            "gateway",
            "gateway.lost",
            gone.name,
            host=gone.host,
            pid=gone.pid,
            silent_for=round(gone.silent_for, 1),
            heartbeat_timeout=self.timeout,
            sessions_interrupted=gone.sessions,
            approvals_expired=gone.approvals,
            by=self.me.name,
        )

    def _rejoined(self) -> None:
        services = self.services
        live = list(services.live.values())
        held = list(services.approvals.pending)
        log.error(
            "this gateway was declared lost by the others (no heartbeat for over %gs): ending its %d open "
            "session(s) and denying its %d held statement(s)",
            self.timeout,
            len(live),
            len(held),
        )
        services.journal.audit("gateway", "gateway.rejoin", self.me.name, sessions=len(live), held=len(held))
        # The store already says expired: closing them here resolves each hold with that.
        services.approvals.expire_all()
        # The sessions end a moment later, so that each client reads why its statement was
        # refused before its connection closes.
        reason = f"gateway {self.me.name} was declared lost by the gateways sharing its store"
        asyncio.get_running_loop().call_later(END_AFTER, _end, live, reason)

    def leave(self) -> None:
        """A clean stop: mark the row stopped so no survivor reports this gateway lost."""
        try:
            if self.store is None:
                self.store = open_store(self.target)
            leave(self.store, self.me)
        except StoreUnavailable as exc:
            log.warning("could not mark this gateway stopped in the store: %s", exc)
        finally:
            self._drop_store()


def _end(sessions: list[LiveSession], reason: str) -> None:
    for session in sessions:
        session.kill(reason, CloseStatus.INTERRUPTED)
