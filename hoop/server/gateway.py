"""`hoop serve`: start the listeners from the config and shut down gracefully.

The gateway is the single writer of live state. It opens the store, marks anything a
previous run left open as ended, starts one door per `[listen]` entry and the control
endpoint, and on SIGINT/SIGTERM stops accepting, closes sessions and flushes the journal.
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
from hoop.core.pipeline import Pipeline
from hoop.core.rulebook import RuleBook
from hoop.core.store.journal import Journal
from hoop.core.store.records import CloseStatus
from hoop.core.store.sqlite import Store
from hoop.core.tlscert import ensure_self_signed, server_context
from hoop.core.visible import inert_log_handler
from hoop.server.doors import DOORS, door
from hoop.server.notify import Notifier
from hoop.server.recording_guard import RecordingGuard
from hoop.server.services import Services
from hoop.server.session.seams import Listening

log = logging.getLogger("hoop.gateway")


def setup_logging(level: str) -> None:
    # Log lines quote user names, statements and servers' errors: they are written inert.
    handler = inert_log_handler(sys.stderr, "%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler], force=True)
    if level != "debug":  # asyncssh narrates every connection at INFO; our own log says what matters
        logging.getLogger("asyncssh").setLevel(logging.WARNING)


def install_event_loop() -> None:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported platform
        pass


class Gateway:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.servers: list[Listening] = []
        self.stopping = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> Services:
        config = self.config
        gw = config.gateway
        # Only the gateway's OS user may read its state: the store holds statement texts and token
        # hashes, recordings hold (masked) results, and data_dir holds the TLS and SSH keys. Who
        # can write data_dir can issue tokens (`hoop token issue`): it is the root of trust.
        for folder in (gw.data_dir, gw.recordings_dir):
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o700)
        store = Store(gw.db_path)
        self._close_leftovers(store)
        journal = Journal(gw.db_path, gw.recordings_dir, anchor=audit_anchor.prepare(gw))
        rulebook = RuleBook(Store(gw.db_path))
        pipeline = build_pipeline(config, store, rulebook, journal)
        self.services = services = Services(config, store, journal, pipeline)
        self.tasks.append(asyncio.create_task(watch_rules(services, rulebook)))
        if config.notify:  # [[notify]]: approval requests and decisions sent over HTTP
            notifier = Notifier(config.notify, store)
            services.approvals.listeners.append(notifier.announce)
            self.servers.append(notifier)
        RecordingGuard(services, asyncio.get_running_loop()).watch()
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
            self.servers.append(server)
            log.info("%s listening on %s:%s", name, *address)
        from hoop.server.control import ControlServer

        self.servers.append(await ControlServer(services, gw.control_path).start())
        for extra in EXTRA_STARTERS:
            started = await extra(self, services)
            if started is not None:
                self.servers.append(started)
        return services

    def _close_leftovers(self, store: Store) -> None:
        """Sessions and approvals a crashed or stopped run left open can never finish now."""
        now = time.time()
        with store.transaction() as conn:
            conn.execute(
                "UPDATE sessions SET status = ?, ended = ? WHERE ended IS NULL", (CloseStatus.INTERRUPTED.value, now)
            )
            conn.execute("UPDATE approvals SET status = 'expired', decided = ? WHERE status = 'pending'", (now,))

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for server in self.servers:
            server.close()
        self.services.approvals.expire_all()
        for live in list(self.services.live.values()):
            live.kill("the gateway is shutting down", CloseStatus.SHUTDOWN)
        self.services.pipeline.close()  # the parse workers, if any were started
        self.services.journal.audit("gateway", "gateway.stop")
        await asyncio.sleep(0)
        self.services.journal.close()


# Later subsystems (control endpoint, rule reloader) register coroutines here.
EXTRA_STARTERS: list[Any] = []


def build_pipeline(config: Config, store: Store, rulebook: RuleBook, journal: Journal) -> Pipeline:
    changes = rulebook.seed(list(config.rules), list(config.masking), config.gateway.builtin_rules)
    if changes:
        journal.audit("gateway", "rules.seed", str(config.path), changes=changes)
    guards, masks = rulebook.current()
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
            services.pipeline.set_rules(guards, masks)
            seen = marker
            services.journal.audit("gateway", "rules.reload", "", guard_rules=len(guards), mask_rules=len(masks))
            log.info("rules reloaded: %d guardrails, %d masking rules", len(guards), len(masks))
        except Exception:  # keep the current rules; try again on the next tick
            log.exception("reloading rules failed")


async def serve(config: Config) -> int:
    gateway = Gateway(config)
    try:
        await gateway.start()
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 1
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, gateway.stopping.set)
    print("hoop gateway ready", file=sys.stderr, flush=True)
    await gateway.stopping.wait()
    log.info("shutting down")
    await gateway.stop()
    return 0


def run(config: Config) -> int:
    setup_logging(config.gateway.log_level)
    install_event_loop()
    return asyncio.run(serve(config))
