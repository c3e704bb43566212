"""Batched writes of sessions, statements, audit events and recording frames.

The data path only appends to in-memory lists (a lock-protected `list.append`, well under a
microsecond). Every `interval` seconds a thread of the gateway hands what accumulated to the
writer process (`journal_writer`), which formats, hashes and writes it in one SQLite
transaction per table and one write per recording file and confirms. So a crash of the
gateway loses at most the last interval, and no query ever waits for the disk or for the
formatting of its own record.

Overload: when sessions produce records faster than the writer stores them, the thread hands
over the next batch as soon as the last one is written (no pause), and once `max_pending`
records wait, whoever appends waits until the thread has taken them (at most `stall_limit`
seconds). The gateway then runs at the writer's speed: memory stays bounded and no record is
dropped, which an audit trail must not do.

Storage failure (disk full, read-only, I/O error): the writer answers that it could not write
a batch, and why. The journal keeps that batch, offers it again every interval, and reports
itself unhealthy (`health()`, the `on_health` callback, a log line every `REPORT_EVERY`
seconds) until it is written; the gateway decides what service goes on meanwhile
(`[gateway] on_record_failure`). Records keep queueing in memory: nothing is dropped.
"""

from __future__ import annotations

import logging
import os
import pickle
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from hoop.core import audit
from hoop.core.secrets import Secret
from hoop.core.store.base import open_store
from hoop.core.store.journal_writer import FAILED, LENGTH, WRITTEN
from hoop.core.store.records import CloseStatus, StatementRecord
from hoop.core.store.session_ids import first_session_ids, reserve_session_ids
from hoop.core.store.session_log import SessionLog

if TYPE_CHECKING:
    from hoop.core.audit_anchor import AnchorSettings

log = logging.getLogger("hoop.journal")
# About a second of the writer's work at ~15 us per record: far above any normal load.
MAX_PENDING = 50_000
# While recording fails: how often the log says so, and from how many waiting records on
# appending pauses anyway (a bound on memory far above what a refusing gateway queues).
REPORT_EVERY = 10.0
UNHEALTHY_BACKLOG = 20
_WRITER_ENV = {"PATH", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "HOME", "TMPDIR", "LANG", "TZ"}


@dataclass(frozen=True)
class Health:
    """Can the journal write? `waiting`: records not yet stored; `problem`: why it cannot."""

    healthy: bool
    waiting: int
    problem: str = ""
    since: float | None = None  # when writing started failing


class Journal:
    def __init__(
        self,
        target: Path | Secret,
        recordings_dir: Path,
        interval: float = 0.2,
        max_pending: int = MAX_PENDING,
        stall_limit: float = 10.0,
        anchor: AnchorSettings | None = None,
        gateway: str = "",
    ) -> None:
        store = open_store(target)  # creates or migrates the schema before the writer opens it
        self.target = target
        self.gateway = gateway  # the name its sessions carry on a store several gateways share
        self.shared = store.shared  # recordings then go to the store's chunks, not recordings_dir
        try:
            self._next_id, self._id_limit = first_session_ids(store)
        finally:
            store.close()
        self.recordings_dir = recordings_dir
        recordings_dir.mkdir(parents=True, exist_ok=True)
        self.interval = interval
        self.max_pending = max_pending
        self.stall_limit = stall_limit
        self.anchor = anchor  # where the writer signs audit checkpoints; None: it does not
        self._lock = threading.Lock()
        self._taken = threading.Condition(self._lock)  # notified when the thread takes the pending records
        self._flush_lock = threading.Lock()  # the thread and close() both flush
        # Frames, audit events and statements in the order they happened.
        self._pending: dict[str, list[Any]] = {"ordered": [], "closed": []}
        self._open: dict[int, SessionLog] = {}
        self._closing = False
        self._batches = 0  # numbers each batch, so a writer can resume one it stored in part
        self._unsent: tuple[bytes, int] | None = None  # a batch the writer could not store yet
        self._problem = ""  # why not, while it cannot
        self._failing_since: float | None = None
        self._reported = 0.0
        self.on_health: Callable[[Health], None] | None = None  # called by the journal thread on a change
        # Who else sees each audit event and finished statement as it is journaled (the gateway's
        # log lines and metrics): called on the caller's thread; must be cheap and never raise.
        self.on_audit: Callable[[audit.AuditEvent], None] | None = None
        self.on_statement: Callable[[SessionLog, StatementRecord], None] | None = None
        self.write_failures = 0  # batches the writer could not store (each retry counts)
        self._writer = self._start_writer()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hoop-journal", daemon=True)
        self._thread.start()

    def _start_writer(self) -> subprocess.Popen[bytes]:
        # Only what Python needs to start: the gateway's variables may hold credentials.
        env = {k: v for k, v in os.environ.items() if k in _WRITER_ENV or k.startswith("LC_")}
        proc = subprocess.Popen(
            # A DSN (it may carry a password) goes on the writer's stdin, never in its argv.
            [sys.executable, "-m", "hoop.core.store.journal_writer", _writer_target(self.target)]
            + (self.anchor.argv() if self.anchor else []),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        if isinstance(self.target, Secret):
            assert proc.stdin is not None
            dsn = self.target.reveal().encode()
            proc.stdin.write(LENGTH.pack(len(dsn)) + dsn)
            proc.stdin.flush()
        return proc

    # -- called from the event loop ---------------------------------------------------------

    def open_session(self, user: str, connection: str, protocol: str, client_addr: str) -> SessionLog:
        with self._lock:
            if self._next_id >= self._id_limit:  # a shared store: the next block of ids
                self._next_id, self._id_limit = reserve_session_ids(self.target)
            session_id = self._next_id
            self._next_id += 1
            log = SessionLog(self, session_id, user, connection, protocol, client_addr)
            self._open[session_id] = log
        log.frame("e", {"event": "start"})
        return log

    def open_sessions(self) -> list[SessionLog]:
        with self._lock:
            return list(self._open.values())

    def audit(self, actor: str, action: str, target: str = "", **detail: Any) -> None:
        event = audit.AuditEvent(actor, action, target, detail, time.time())
        self._append("ordered", ("a", None, event))
        if (observe := self.on_audit) is not None:
            observe(event)

    def health(self) -> Health:
        with self._lock:
            waiting = len(self._pending["ordered"]) + (self._unsent[1] if self._unsent else 0)
        if self._failing_since is None:
            return Health(True, waiting)
        return Health(False, waiting, self._problem, self._failing_since)

    def _append(self, kind: str, item: Any) -> None:
        with self._lock:
            pending = self._pending[kind]
            if len(pending) >= self.max_pending and (
                # A writer that cannot store would stall every session for nothing: records queue
                # in memory until it can again (the gateway refuses service meanwhile).
                self._failing_since is None or len(pending) >= UNHEALTHY_BACKLOG * self.max_pending
            ):
                pending = self._wait_for_writer(kind)
            pending.append(item)

    def _wait_for_writer(self, kind: str) -> list[Any]:
        """Back-pressure (called holding the lock): block until the thread takes the backlog.
        This stalls the event loop on purpose; the gateway slows to the writer's pace rather
        than growing without bound or dropping records."""
        started = time.monotonic()
        if self._taken.wait_for(lambda: len(self._pending[kind]) < self.max_pending, timeout=self.stall_limit):
            log.warning(
                "journal: %d records were waiting for the writer; sessions paused %.2f s for it",
                self.max_pending,
                time.monotonic() - started,
            )
        else:
            log.error("journal: the writer took nothing for %.1f s; appending anyway", self.stall_limit)
        return self._pending[kind]

    # -- journal thread --------------------------------------------------------------------

    def _run(self) -> None:
        wait = self.interval
        while not self._stop.wait(wait):
            started = time.monotonic()
            self._flush_logged()
            # A batch that took longer than the interval means the writer is behind: the next
            # one goes at once instead of leaving the writer idle while records pile up.
            wait = 0.0 if time.monotonic() - started >= self.interval else self.interval
        self._flush_logged()

    def _flush_logged(self) -> None:
        try:
            self.flush()
        except Exception:  # the thread must outlive one bad batch
            log.exception("journal flush failed")

    def flush(self) -> None:
        """Hand everything pending to the writer and wait until it is written. A batch the
        writer could not store is offered again first; newer records wait behind it."""
        with self._flush_lock:
            if self._unsent is not None:
                if not self._deliver(*self._unsent):
                    return
                self._unsent = None
            batch = self._take()
            if batch is None:
                return
            try:
                data = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # an audit detail holding an object pickle refuses: keep its text
                for item in batch["ordered"]:
                    if item[0] == "a":
                        item[1].detail = orjson.loads(orjson.dumps(item[1].detail or {}, default=str))
                data = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
            if not self._deliver(data, len(batch["ordered"])):
                self._unsent = (data, len(batch["ordered"]))

    def _take(self) -> dict[str, Any] | None:
        with self._lock:
            pending = self._pending
            self._pending = {k: [] for k in pending}
            self._taken.notify_all()
            dirty = [s for s in self._open.values() if s._dirty]
            for s in dirty:
                s._dirty = False
            for s in pending["closed"]:
                self._open.pop(s.id, None)
        closed: list[SessionLog] = pending["closed"]
        if not (pending["ordered"] or dirty or closed):
            return None
        recordings: dict[int, tuple[str, str, str, str, float]] = {}
        ordered: list[tuple[Any, ...]] = []
        # Pending entries are flat (kind, session, ...): every tuple on the data path is one
        # more object for the garbage collector to walk while the batch waits.
        for kind, s, *rest in pending["ordered"]:
            if kind == "a":
                ordered.append(("a", rest[0]))
                continue
            if s.id not in recordings:  # each batch names its recordings: a restarted writer needs no state
                recordings[s.id] = (str(s.recording_path), s.protocol, s.user, s.connection, s.started)
            if kind in ("f", "c"):
                ordered.append((kind, s.id, *rest))
            else:  # "d": a finished statement, expanded by the writer; a NamedTuple pickles
                # about 5x slower than its plain tuple, and this thread shares the GIL with the loop
                ordered.append(("d", s.id, s.user, s.connection, s.started, rest[0], tuple(rest[1])))
        self._batches += 1
        return {
            "number": self._batches,
            "recordings": recordings,
            "ordered": ordered,
            "sessions": [s.row() for s in dirty + closed],
            "closed": [s.id for s in closed],
        }

    def _deliver(self, data: bytes, items: int) -> bool:
        """Send one batch; True once it is stored."""
        answer = self._exchange(data)
        if answer == b"" and self._closing:  # close() gave up waiting and ended the writer
            log.error("the gateway stopped before the journal writer confirmed its last %d records", items)
            return False
        if answer == b"":  # the writer is gone (killed, crashed): a new one gets this batch
            log.error("journal writer exited; starting a new one")
            _stop_writer(self._writer)
            self._writer = self._start_writer()
            answer = self._exchange(data)
        if answer == WRITTEN:
            if self._failing_since is not None:
                self._recovered()
            return True
        self._failed(answer[1:].decode("utf-8", "replace") or "the journal writer stopped answering", items)
        return False

    def _failed(self, problem: str, items: int) -> None:
        now = time.time()
        first = self._failing_since is None
        self.write_failures += 1
        self._problem = problem
        if first:
            self._failing_since = now
        if first or now - self._reported >= REPORT_EVERY:
            self._reported = now
            log.error(
                "recording unavailable: the journal cannot store records (%s); %d waiting, kept in memory "
                "and offered again every %.1f s",
                problem,
                self.health().waiting or items,
                self.interval,
            )
        if first and self.on_health is not None:
            self.on_health(self.health())

    def _recovered(self) -> None:
        down = time.time() - (self._failing_since or time.time())
        self._failing_since, self._problem = None, ""
        log.warning("recording works again after %.1f s; the records kept meanwhile are stored", down)
        if self.on_health is not None:
            self.on_health(self.health())

    def _exchange(self, data: bytes) -> bytes:
        """The writer's answer: WRITTEN, FAILED + its reason, or b"" when it is gone."""
        stdin, stdout = self._writer.stdin, self._writer.stdout
        assert stdin is not None and stdout is not None
        try:
            stdin.write(LENGTH.pack(len(data)) + data)
            stdin.flush()
            answer = stdout.read(1)
            if answer != FAILED:
                return answer
            head = stdout.read(LENGTH.size)
            (size,) = LENGTH.unpack(head)
            return answer + stdout.read(size)
        except (OSError, ValueError, struct.error):
            return b""

    def close(self) -> None:
        for log_ in self.open_sessions():
            log_.close(CloseStatus.SHUTDOWN)
        self._stop.set()
        self._thread.join(timeout=10)
        # Still writing after that: the writer is ended below, and must not be replaced by a
        # new one that nobody would stop (it would outlive the gateway, busy with the batch).
        self._closing = True
        if self._unsent is not None or self._failing_since is not None:
            log.error(
                "recording unavailable at shutdown (%s): %d records could not be stored",
                self._problem,
                self.health().waiting,
            )
        _stop_writer(self._writer)


def _writer_target(target: Path | Secret) -> str:
    return "-" if isinstance(target, Secret) else str(target)


def _stop_writer(proc: subprocess.Popen[bytes]) -> None:
    """End of input tells the writer to finish what it has and exit."""
    _close_pipes(proc)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        log.error("journal writer did not finish in 10 s; stopping it")
        proc.kill()
        proc.wait()


def _close_pipes(proc: subprocess.Popen[bytes]) -> None:
    for pipe in (proc.stdin, proc.stdout):
        pipe_: IO[bytes] | None = pipe
        if pipe_ is not None:
            try:
                pipe_.close()
            except OSError:
                pass
