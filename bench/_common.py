"""Helpers shared by the benchmarks in bench/: processes, ports, timing and tables.

Everything a benchmark starts is registered with a `Cleanup` so that it is stopped at the end
of the run, on an exception and on Ctrl-C (SIGINT) or SIGTERM alike. Only loopback addresses
are ever used.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
HOOP = [sys.executable, "-m", "hoop.cli"]
LOOPBACK = "127.0.0.1"


def shipped_masking() -> str:
    """The repository's own `[[masking]]` tables (hoop.toml: column rules and the content
    detector list), as users run them; exemptions and connection scopes left out so they apply."""
    rules = tomllib.loads((REPO / "hoop.toml").read_text())["masking"]
    out = []
    for rule in rules:
        body = "".join(
            f"{key} = {json.dumps(value)}\n"
            for key, value in rule.items()
            if key not in ("exempt", "connections", "enabled")
        )
        out.append(f"[[masking]]\n{body}")
    return "\n" + "\n".join(out)


class BenchError(Exception):
    """A benchmark step failed (a tool is missing, a process did not start, a command failed)."""


# -- processes and ports -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def port_open(port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout):
            return True
    except OSError:
        return False


def run(
    cmd: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = 1800,
    quiet: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing output; raise BenchError with its stderr when it fails."""
    result = subprocess.run(
        list(cmd), capture_output=quiet, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )
    if check and result.returncode != 0:
        raise BenchError(f"{' '.join(cmd[:3])}... exited {result.returncode}: {(result.stderr or '')[-2000:]}")
    return result


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) and of its live children (the
    gateway's journal writer, for one), from /proc, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    own = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14 and 15)
    children = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children.update(int(c) for c in (task / "children").read_text().split())
        except OSError:
            pass  # the thread ended meanwhile
    for child in children:
        try:
            own += cpu_seconds(child)
        except OSError:
            pass  # exited meanwhile
    return own


class Cleanup:
    """A LIFO of undo actions, run once; SIGINT/SIGTERM turn into KeyboardInterrupt."""

    def __init__(self) -> None:
        self._actions: list[tuple[str, Callable[[], None]]] = []

    def __enter__(self) -> Cleanup:
        def interrupt(signum: int, _frame: Any) -> None:
            raise KeyboardInterrupt(f"signal {signum}")

        signal.signal(signal.SIGTERM, interrupt)
        return self

    def push(self, what: str, action: Callable[[], None]) -> None:
        self._actions.append((what, action))

    def __exit__(self, *exc: object) -> None:
        # Ctrl-C while cleaning up must not leave half the things running.
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            while self._actions:
                what, action = self._actions.pop()
                try:
                    action()
                except Exception as err:  # keep cleaning the rest
                    print(f"cleanup of {what} failed: {err}", file=sys.stderr)
        finally:
            signal.signal(signal.SIGINT, old)


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def temp_dir(cleanup: Cleanup, prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    cleanup.push(f"temp dir {path}", lambda: shutil.rmtree(path, ignore_errors=True))
    return path


def wait_listening(
    proc: subprocess.Popen[Any],
    port: int,
    log: Path,
    what: str,
    ready: Callable[[], bool] = lambda: True,
    timeout: float = 30,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        if port_open(port) and ready():
            return
        time.sleep(0.05)
    raise BenchError(f"{what} did not start in {timeout}s:\n{log.read_text(errors='replace')[-3000:]}")


# -- the gateway -------------------------------------------------------------------------------


class Gateway:
    """`hoop serve` on a free loopback port with a throwaway hoop.toml (body = everything after
    [gateway] and [listen]), stopped by `cleanup`."""

    def __init__(
        self, cleanup: Cleanup, body: str, *, name: str = "gateway", gateway_extra: str = "", door: str = "postgres"
    ) -> None:
        self.name = name
        self.root = temp_dir(cleanup, f"hoop-bench-{name}-")
        self.port = free_port()
        self.config = self.root / "hoop.toml"
        self.config.write_text(
            f'[gateway]\ndata_dir = "data"\nrecordings_dir = "recordings"\n{gateway_extra}\n'
            f'[listen]\n{door} = "{LOOPBACK}:{self.port}"\n\n{body}\n'
        )
        # HOOP_DETECTOR_ENGINE=python measures the pure-Python detector engine
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HOOP_") or k == "HOOP_DETECTOR_ENGINE"}
        self.env["PYTHONUNBUFFERED"] = "1"
        self.log = self.root / "gateway.log"
        self.proc: subprocess.Popen[bytes] | None = None
        cleanup.push(f"{name} process", self.stop)

    def start(self) -> Gateway:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                HOOP + ["serve", "-c", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.root,
            )
        wait_listening(
            self.proc, self.port, self.log, self.name, ready=lambda: "ready" in self.log.read_text(errors="replace")
        )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def token(self, user: str) -> str:
        out = subprocess.run(
            HOOP + ["token", "issue", user, "--ttl", "4h", "-c", str(self.config)],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.root,
            timeout=60,
        )
        if out.returncode != 0:
            raise BenchError(f"hoop token issue failed: {out.stderr[-2000:]}")
        return out.stdout.strip().splitlines()[-1]

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


# -- timing and output -------------------------------------------------------------------------


def timed(cmd: Sequence[str], *, env: dict[str, str] | None = None, stdout: Any = subprocess.DEVNULL) -> float:
    """Wall-clock seconds of one command (output discarded); raises BenchError on failure."""
    start = time.perf_counter()
    result = subprocess.run(
        list(cmd), stdout=stdout, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}, timeout=1800
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise BenchError(f"{' '.join(cmd[:2])}... exited {result.returncode}: {result.stderr[-2000:]}")
    return elapsed


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]], title: str = "") -> None:
    """A plain-text table, first column left-aligned and the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    if title:
        print(f"\n{title}")
    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(line(r))
    sys.stdout.flush()


def banner(text: str) -> None:
    print(f"-- {text}", file=sys.stderr, flush=True)
