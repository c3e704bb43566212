"""Worker processes that classify big statements away from the event loop.

pglast and sqlglot hold the GIL while they parse, and their cost grows faster than the text:
a statement of a few hundred kilobytes, classified on the event loop, stops every other
session of the gateway for seconds. Big texts are therefore classified in a small pool of
processes, each with a time budget (CPU seconds of the worker): a worker that has not
answered within it is killed (it would otherwise keep burning a core) and replaced on the
next request.

The pool starts nothing until the first big statement arrives. A worker is a fresh
`python -m hoop.core.parsepool` (about a quarter of a second to import the classifiers),
so it shares none of the gateway's state (sockets, threads, the store) and a worker that is
killed takes nothing with it. Requests and replies are pickles over two pipes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

from hoop.core.sql import Classification, TextMode

log = logging.getLogger("hoop.parsepool")

# A worker whose resident memory grew past this after a statement is retired (a parse tree
# of a huge statement is not given back to the system by the allocator).
RECYCLE_RSS = 768 * 1024 * 1024
START_TIMEOUT = 30.0  # seconds for a new worker to import the classifiers
# The time budget counts the worker's CPU time, so a busy machine (where the niced workers
# wait for a core) does not refuse statements that are cheap; the wall clock still ends a
# request at WALL_FACTOR times the budget.
WALL_FACTOR = 4
POLL = 0.05


class ParseRefused(Exception):
    """The pool could not classify the text; the message says why, for the client."""


def _rss() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process from /proc, or -1 where that cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return -1.0


def _serve(requests: Connection, replies: Connection) -> None:
    """The worker's loop: (text, dialect, mode) in, ("ok", Classification, rss) out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C on the gateway's terminal: the gateway decides
    try:
        os.nice(10)  # the event loop's sessions come first on a busy machine
    except OSError:
        pass
    import hoop.core.sql.mysql
    import hoop.core.sql.postgres  # noqa: F401  (imported before "ready": the time budget is parsing only)
    from hoop.core.sql import _classify

    classify = _classify.__wrapped__  # no per-process cache: every text here is big
    replies.send(("ready", None, 0))
    while True:
        try:
            text, dialect, mode = requests.recv()
        except (EOFError, OSError):
            return  # the gateway is gone
        try:
            reply: tuple[Any, ...] = ("ok", classify(text, dialect, mode), _rss())
        except MemoryError:
            reply = ("error", "the statement needs more memory than the gateway allows", 0)
        except Exception as exc:  # a classifier bug: the pipeline refuses, as for any failure
            reply = ("error", f"the gateway could not classify this statement ({type(exc).__name__})", _rss())
        del text
        try:
            replies.send(reply)
        except OSError:
            return


class _Worker:
    def __init__(self) -> None:
        down_r, down_w = os.pipe()
        up_r, up_w = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hoop.core.parsepool", str(down_r), str(up_w)],
                pass_fds=(down_r, up_w),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )
        finally:
            os.close(down_r)
            os.close(up_w)
        self.requests = Connection(down_w, readable=False)
        self.replies = Connection(up_r, writable=False)
        self.retire = False
        if not self.replies.poll(START_TIMEOUT) or self.replies.recv()[0] != "ready":
            self.kill()
            raise ParseRefused("the gateway's parser did not start")

    def roundtrip(self, request: tuple[str, str, TextMode], timeout: float) -> tuple[Any, ...]:
        """Runs in a thread: send, wait while the worker has used less than `timeout` CPU
        seconds (and less than WALL_FACTOR times it on the clock), read. A late or dead worker
        is killed."""
        try:
            start, used_before = time.monotonic(), _cpu_seconds(self.process.pid)
            self.requests.send(request)
            while not self.replies.poll(POLL):
                wall = time.monotonic() - start
                used = _cpu_seconds(self.process.pid) - used_before if used_before >= 0 else wall
                if used >= timeout or wall >= timeout * WALL_FACTOR:
                    status = "timeout"
                    break
            else:
                reply: tuple[Any, ...] = self.replies.recv()
                self.retire = reply[2] > RECYCLE_RSS
                return reply
        except (EOFError, OSError):
            status = "died"
        self.kill()
        return (status, None, 0)

    def kill(self) -> None:
        self.retire = True
        self.process.kill()
        self.process.wait(5)
        self.requests.close()
        self.replies.close()


class ParsePool:
    """At most `size` worker processes, started on demand; requests beyond that wait in turn."""

    def __init__(self, size: int, timeout: float) -> None:
        self.size = size
        self.timeout = timeout
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._starting = 0
        self._waiters: deque[asyncio.Future[_Worker | None]] = deque()
        self._threads: ThreadPoolExecutor | None = None
        self._closed = False

    async def classify(self, text: str, dialect: str, mode: TextMode) -> Classification:
        """The classification of `text`, or ParseRefused naming the budget it broke."""
        loop = asyncio.get_running_loop()
        worker = await self._acquire(loop)
        if worker is None:
            raise ParseRefused("the gateway is shutting down")
        assert self._threads is not None
        job: Future[tuple[Any, ...]] = self._threads.submit(worker.roundtrip, (text, dialect, mode), self.timeout)
        # Released when the job ends, even if the waiting session is gone by then.
        job.add_done_callback(lambda _: loop.call_soon_threadsafe(self._release, worker))
        status, value, _ = await asyncio.wrap_future(job)
        if status == "ok":
            return value  # type: ignore[no-any-return]
        if status == "timeout":
            log.warning("classifying a %d-character statement took over %g s; worker replaced", len(text), self.timeout)
            raise ParseRefused(
                f"classifying this statement ({len(text)} characters) took longer than the gateway's "
                f"limit gateway.parse_timeout = {self.timeout:g} s (of processor time)"
            )
        if status == "died":
            log.warning("a parse worker died while classifying a %d-character statement", len(text))
            raise ParseRefused("the gateway's parser stopped while classifying this statement")
        raise ParseRefused(str(value))

    async def _acquire(self, loop: asyncio.AbstractEventLoop) -> _Worker | None:
        while not self.closed():
            if self._idle:
                return self._idle.pop()
            if len(self._all) + self._starting < self.size:
                self._starting += 1
                try:
                    worker = await loop.run_in_executor(self._executor(), _Worker)
                finally:
                    self._starting -= 1
                if self.closed():
                    worker.kill()
                    return None
                self._all.add(worker)
                return worker
            waiter: asyncio.Future[_Worker | None] = loop.create_future()
            self._waiters.append(waiter)
            got = await waiter
            if got is not None:
                return got
        return None

    def closed(self) -> bool:
        return self._closed

    def _release(self, worker: _Worker) -> None:
        handed: _Worker | None = worker
        if worker.retire or self._closed:
            self._all.discard(worker)
            if worker.process.poll() is None:  # retired for its memory
                worker.kill()
            handed = None
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(handed)  # None: the waiter starts a worker of its own
                return
        if handed is not None:
            self._idle.append(handed)

    def _executor(self) -> ThreadPoolExecutor:
        if self._threads is None:
            self._threads = ThreadPoolExecutor(max_workers=self.size + 1, thread_name_prefix="hoop-parse")
        return self._threads

    def close(self) -> None:
        """Stop every worker now; a statement still being classified is refused."""
        self._closed = True
        for worker in list(self._all):
            worker.process.kill()  # a thread waiting on it sees the pipe close
        for worker in list(self._all):
            try:
                worker.process.wait(2)
            except subprocess.TimeoutExpired:
                pass
        self._all.clear()
        self._idle.clear()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)


if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False))
