"""`hoop serve`: start the listeners from the config and shut down gracefully.

The gateway is the single writer of live state. It opens the store (on a shared store it
claims its name and beats: hoop/server/heartbeat.py), marks anything a previous run left
open as ended, starts one door per `[listen]` entry and the control endpoint. SIGHUP reloads
hoop.toml (hoop/server/reload.py). SIGINT/SIGTERM stop it gracefully: every door stops
accepting, open sessions have `[gateway] shutdown_grace` to finish, what is left is ended
with a message in each protocol's words, and the journal is flushed; a second signal ends
the grace at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import sys
import time
from typing import Any

from hoop.core import audit_anchor
from hoop.core.bigtext import ParseLimits
from hoop.core.config import Config
from hoop.core.log_format import setup_logging
from hoop.core.masking import prepare_detectors
from hoop.core.pipeline import Pipeline
from hoop.core.rulebook import RuleBook
from hoop.core.store.base import Store, StoreUnavailable, open_store
from hoop.core.store.gateways import Me, NameTaken, claim
from hoop.core.store.journal import Journal
from hoop.core.store.records import BLOCK, CloseStatus
from hoop.core.tlscert import ensure_self_signed, server_context
from hoop.server.cluster import Peers, join
from hoop.server.doors import DOORS, door
from hoop.server.event_log import EventLog
from hoop.server.heartbeat import Heartbeat
from hoop.server.http_status import StatusServer
from hoop.server.notify import Notifier
from hoop.server.recording_guard import RecordingGuard
from hoop.server.reload import ReloadRefused, reload_config
from hoop.server.services import Services
from hoop.server.session.seams import Listening

log = logging.getLogger("hoop.gateway")


def install_event_loop() -> None:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported platform
        pass


class Gateway:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.doors: list[Listening] = []  # closed first when stopping
        self.servers: list[Listening] = []  # the control endpoint and extras: closed last
        self.stopping = asyncio.Event()
        self.hurry = asyncio.Event()  # a second stop signal: end the grace period now
        self.tasks: list[asyncio.Task[None]] = []
        self.peers: Peers | None = None
        self.heartbeat: Heartbeat | None = None  # on a shared store
        self.beating: asyncio.Task[None] | None = None

    async def start(self) -> Services:
        config = self.config
        gw = config.gateway
        # Only the gateway's OS user may read its state: the store holds statement texts and token
        # hashes, recordings hold (masked) results, and data_dir holds the TLS and SSH keys. Who
        # can write data_dir can issue tokens (`hoop token issue`): it is the root of trust.
        for folder in (gw.data_dir, gw.recordings_dir):
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o700)
        store = open_store(gw.store_target)
        me = Me.here(gw.name)
        if store.shared:  # before anything else: a name held by a running gateway is refused
            claim(store, me, gw.heartbeat_timeout)
        self._close_leftovers(store)
        journal = Journal(gw.store_target, gw.recordings_dir, anchor=audit_anchor.prepare(gw), gateway=gw.name)
        rulebook = RuleBook(store.reopen())
        pipeline = build_pipeline(config, store, rulebook, journal)
        self.services = services = Services(config, store, journal, pipeline)
        observe_journal(services)
        # Reloads seed the rule book through a store of their own: the rule watcher reads its
        # book from a worker thread.
        services.reload = lambda actor: reload_config(services, RuleBook(store.reopen()), actor)
        self.tasks.append(asyncio.create_task(watch_rules(services, rulebook)))
        if config.notify:  # [[notify]]: approval requests and decisions sent over HTTP
            notifier = Notifier(config.notify, store)
            services.approvals.listeners.append(notifier.announce)
            self.servers.append(notifier)
        guard = RecordingGuard(services, asyncio.get_running_loop())
        guard.watch()
        if store.shared:
            self.heartbeat = Heartbeat(services, store.reopen(), guard, me, self.stopping)
            # Not in self.tasks: it beats on while open sessions drain at stop, so that no
            # other gateway takes this one for lost meanwhile.
            self.beating = asyncio.create_task(self.heartbeat.run())
        journal.audit(
            "gateway",
            "config.load",
            str(config.path),
            connections=[c.name for c in config.connections],
            rules=len(config.rules),
            on_record_failure=gw.on_record_failure,
        )
        if gw.on_record_failure == "continue":
            log.warning(
                "on_record_failure = continue: if records cannot be stored, sessions go on unrecorded "
                "until the disk recovers"
            )
        cert, key = (gw.tls_cert, gw.tls_key) if gw.tls_cert else ensure_self_signed(gw.data_dir)
        tls = server_context(cert, key)  # type: ignore[arg-type]
        for name in DOORS:
            address = getattr(config.listen, name)
            if address is None:
                continue
            server = await door(name, services, tls).start(*address)
            self.doors.append(server)
            log.info("%s listening on %s:%s", name, *address)
        if config.listen.http is not None:
            status = await StatusServer(services.metrics, self.not_ready).start(*config.listen.http)
            self.servers.append(status)
            log.info("http (healthz, readyz, metrics) listening on %s:%s", *config.listen.http)
        from hoop.server.control import ControlServer

        self.servers.append(await ControlServer(services, gw.control_path).start())
        self.peers = join(services)  # the other gateways on a shared store (none on SQLite)
        for extra in EXTRA_STARTERS:
            started = await extra(self, services)
            if started is not None:
                self.servers.append(started)
        return services

    def not_ready(self) -> str:
        """Why the gateway cannot serve now (for /readyz), or "" when it can."""
        if self.stopping.is_set():
            return "the gateway is stopping"
        if any(not getattr(server, "is_serving", lambda: True)() for server in self.doors):
            return "a door is not listening"
        health = self.services.journal.health()
        if not health.healthy:
            return f"recording unavailable: {health.problem}"
        return self.services.refusing

    def _close_leftovers(self, store: Store) -> None:
        """Sessions and approvals an earlier run of this gateway left open can never finish now
        (on a shared store, only this gateway's: the others' are still running)."""
        now = time.time()
        mine = self.config.gateway.name if store.shared else None
        scope = "" if mine is None else " AND gateway = ?"
        args: tuple[str, ...] = () if mine is None else (mine,)
        with store.transaction() as conn:
            conn.execute(
                f"UPDATE sessions SET status = ?, ended = ? WHERE ended IS NULL{scope}",
                (CloseStatus.INTERRUPTED.value, now, *args),
            )
            conn.execute(
                f"UPDATE approvals SET status = 'expired', decided = ? WHERE status = 'pending'{scope}", (now, *args)
            )

    def signalled_stop(self) -> None:
        """SIGINT/SIGTERM: the first one stops gracefully, another one ends the grace period."""
        if self.stopping.is_set():
            log.warning("stop signalled again: ending the sessions left now")
            self.hurry.set()
        self.stopping.set()

    def signalled_reload(self) -> None:
        """SIGHUP: reload hoop.toml; a refusal is logged and audited by reload_config."""
        if self.stopping.is_set():
            return
        try:
            self.services.reload("gateway")
        except ReloadRefused:
            pass
        except Exception:  # the gateway keeps running with the configuration it has
            log.exception("config reload failed")

    async def stop(self) -> None:
        services = self.services
        for task in self.tasks:
            task.cancel()
        for server in self.doors:  # no new connection at any door
            server.close()
        # Connections accepted before that but still logging in are refused, naming why.
        services.refusing = "the gateway is shutting down"
        at_stop = len(services.live)
        grace = self.config.gateway.shutdown_grace
        if at_stop:
            log.info("stopped accepting; waiting up to %gs for %d open session(s) to finish", grace, at_stop)
        await self._drain(grace)
        left = list(services.live.values())
        if left:
            log.warning("ending %d session(s) still open after the grace period of %gs", len(left), grace)
        services.approvals.expire_all()
        for live in left:
            live.kill(f"the gateway is shutting down (shutdown_grace {grace:g}s ran out)", CloseStatus.SHUTDOWN)
        for server in self.servers:
            server.close()
        if self.peers is not None:  # after the grace period: holds there may be decided elsewhere
            await self.peers.stop()
        services.pipeline.close()  # the parse workers, if any were started
        services.journal.audit(
            "gateway",
            "gateway.stop",
            "",
            sessions_open=at_stop,
            finished_in_grace=at_stop - len(left),
            ended_by_shutdown=[live.id for live in left],
            shutdown_grace=grace,
        )
        await asyncio.sleep(0.05)  # let the doors write their last messages and records
        services.journal.close()
        if self.heartbeat is not None and self.beating is not None:
            self.beating.cancel()
            await asyncio.to_thread(self.heartbeat.leave)

    async def _drain(self, grace: float) -> None:
        """Until no session is open, the grace period ends or a second signal comes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self.services.live and not self.hurry.is_set():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            try:
                await asyncio.wait_for(self.hurry.wait(), min(0.05, remaining))
            except TimeoutError:
                pass


def observe_journal(services: Services) -> None:
    """Every audit event and finished statement, as journaled, also becomes a log line
    (event_log.py) and moves the metrics (metrics.py)."""
    events, metrics = EventLog(), services.metrics
    audited_log, audited_metrics = events.audited, metrics.audited
    count, log_finished = metrics.finished, events.finished

    def audited(event: Any) -> None:
        try:
            audited_metrics(event)
            audited_log(event)
        except Exception:  # never break auditing for a log line or a counter
            log.exception("observing %s failed", event.action)

    def finished(session: Any, record: Any) -> None:
        count(session, record)
        if record.decision == BLOCK:
            log_finished(session, record)

    services.journal.on_audit = audited
    services.journal.on_statement = finished


# Later subsystems (control endpoint, rule reloader) register coroutines here.
EXTRA_STARTERS: list[Any] = []


def build_pipeline(config: Config, store: Store, rulebook: RuleBook, journal: Journal) -> Pipeline:
    changes = rulebook.seed(list(config.rules), list(config.masking), config.gateway.builtin_rules)
    if changes:
        journal.audit("gateway", "rules.seed", str(config.path), changes=changes)
    guards, masks = rulebook.current()
    engine = prepare_detectors(masks)
    if engine is not None:
        log.info("content detectors search with the %s engine", engine)
    gw = config.gateway
    limits = ParseLimits(gw.max_statement_size, gw.parse_timeout, gw.parse_workers)
    return Pipeline(guards, masks, hash_key=_mask_key(config), limits=limits)


def _mask_key(config: Config) -> bytes:
    """A per-installation secret so `hash` masking is stable here but useless elsewhere."""
    path = config.gateway.data_dir / "mask.key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(32))
    return path.read_bytes()


async def watch_rules(services: Services, rulebook: RuleBook, interval: float = 0.5) -> None:
    """Apply rule changes made by the CLI, the TUI or another process within a second."""
    seen = await asyncio.to_thread(rulebook.marker)
    while True:
        await asyncio.sleep(interval)
        try:
            marker = await asyncio.to_thread(rulebook.marker)
            if marker == seen:
                continue
            guards, masks = await asyncio.to_thread(rulebook.current)
            await asyncio.to_thread(prepare_detectors, masks)  # compiled off the event loop
            services.pipeline.set_rules(guards, masks)
            seen = marker
            services.journal.audit("gateway", "rules.reload", "", guard_rules=len(guards), mask_rules=len(masks))
            log.info("rules reloaded: %d guardrails, %d masking rules", len(guards), len(masks))
        except StoreUnavailable:  # the heartbeat reports the outage; the rules in force stay
            continue
        except Exception:  # keep the current rules; try again on the next tick
            log.exception("reloading rules failed")


async def serve(config: Config) -> int:
    gateway = Gateway(config)
    try:
        await gateway.start()
    except (OSError, StoreUnavailable, NameTaken) as exc:
        log.error("cannot start: %s", exc)
        return 1
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, gateway.signalled_stop)
    loop.add_signal_handler(signal.SIGHUP, gateway.signalled_reload)
    print("hoop gateway ready", file=sys.stderr, flush=True)
    await gateway.stopping.wait()
    log.info("shutting down")
    await gateway.stop()
    return 1 if gateway.heartbeat is not None and gateway.heartbeat.name_taken else 0


def run(config: Config) -> int:
    setup_logging(config.gateway.log_level, config.gateway.log_format)
    install_event_loop()
    return asyncio.run(serve(config))
