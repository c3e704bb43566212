"""TUI benchmark (not a test): replay seeking and startup on a large store.

    .venv/bin/python bench/tui_bench.py            # 10,000 sessions, 1,000,000 statements
    .venv/bin/python bench/tui_bench.py --quick    # 1,000 sessions, 100,000 statements

1. Seeking: a 10,000-event terminal recording (asciicast + keyframes, written by the
   gateway's own CastWriter) and a 10,000-frame database recording; median and worst time to
   show the screen at 200 random frames (targets: < 100 ms).
2. Startup: a store with N sessions and M recorded statements; time from launching the app
   (headless) until the first snapshot of sessions and approvals is on screen (target < 1.5 s).

Everything is created in a temporary directory and removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hoop.core import recording  # noqa: E402
from hoop.core.store.sqlite import SqliteStore  # noqa: E402
from hoop.core.terminal import CastWriter  # noqa: E402


def make_cast(path: Path, events: int) -> None:
    start = 1_700_000_000.0
    writer = CastWriter(path, 120, 40, started=start)
    for i in range(events):
        writer.output(f"\x1b[32muser@host\x1b[0m:~$ echo line {i} {'x' * (i % 60)}\r\n".encode(), now=start + i * 0.05)
    writer.close()


def make_db_recording(path: Path, frames: int) -> None:
    head = recording.header(1, "postgres", "alice", "pg", 1_700_000_000.0)
    with path.open("w") as fh:
        fh.write(json.dumps(head) + "\n")
        for i in range(frames // 2):
            fh.write(
                recording.encode_frame(
                    i * 0.1, "q", {"text": f"select * from t where id = {i}", "decision": "allow", "rule": ""}
                )
                + "\n"
            )
            fh.write(
                recording.encode_frame(
                    i * 0.1 + 0.01, "r", {"tag": "SELECT 1", "rows": 1, "ms": 0.3, "error": "", "sample": [[i, "v"]]}
                )
                + "\n"
            )


def bench_seek(tmp: Path) -> None:
    from hoop.tui.timeline import CastTimeline, DbTimeline

    cast = tmp / "1.cast"
    make_cast(cast, 10_000)
    t0 = time.perf_counter()
    timeline = CastTimeline(cast)
    load = time.perf_counter() - t0
    rng = random.Random(7)
    picks = [rng.randrange(len(timeline)) for _ in range(200)]
    times = []
    for i in picks:
        t0 = time.perf_counter()
        timeline.view(i, 40)
        times.append(time.perf_counter() - t0)
    print(
        f"ssh recording: {len(timeline)} events, {len(timeline.reader.keyframes)} keyframes, "
        f"index built in {load * 1000:.0f} ms"
    )
    print(
        f"  seek to a random frame: median {statistics.median(times) * 1000:.1f} ms, "
        f"worst {max(times) * 1000:.1f} ms (target < 100 ms)"
    )

    db = tmp / "2.hoop.jsonl"
    make_db_recording(db, 10_000)
    t0 = time.perf_counter()
    dbt = DbTimeline(db)
    load = time.perf_counter() - t0
    times = []
    for i in picks:
        t0 = time.perf_counter()
        dbt.view(i, 40)
        times.append(time.perf_counter() - t0)
    print(f"db recording: {len(dbt)} frames loaded in {load * 1000:.0f} ms")
    print(
        f"  seek to a random frame: median {statistics.median(times) * 1000:.3f} ms, "
        f"worst {max(times) * 1000:.3f} ms (target < 100 ms)"
    )


def make_store(path: Path, sessions: int, statements: int) -> None:
    store = SqliteStore(path)
    now = time.time()
    per = max(1, statements // sessions)
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO sessions(id, user, connection, protocol, started, ended, status, statements) "
            "VALUES (?,?,?,?,?,?,?,?)",
            (
                (
                    i,
                    f"user{i % 50}",
                    f"conn{i % 7}",
                    "postgres",
                    now - (sessions - i) * 60,
                    None if i > sessions - 20 else now - (sessions - i) * 60 + 30,
                    "open" if i > sessions - 20 else "closed",
                    per,
                )
                for i in range(1, sessions + 1)
            ),
        )
        conn.executemany(
            "INSERT INTO statements(session_id, seq, started, duration_ms, text, decision, rows) "
            "VALUES (?,?,?,?,?,?,?)",
            (
                (
                    1 + n // per,
                    n % per + 1,
                    now - statements + n,
                    0.4,
                    f"select * from orders where id = {n}",
                    "allow",
                    1,
                )
                for n in range(statements)
            ),
        )
        conn.executemany(
            "INSERT INTO approvals(session_id, user, connection, statement, rule, status, created, expires) "
            "VALUES (?,?,?,?,?,?,?,?)",
            (
                (
                    sessions - i,
                    "user1",
                    "conn1",
                    "update t set a = 1 where id = 2",
                    "hold",
                    "pending",
                    now - i,
                    now + 300,
                )
                for i in range(5)
            ),
        )
    store.close()


async def _startup(db: Path, recordings: Path) -> None:
    """Child process: open the app headless, print READY when both lists are on screen."""
    from hoop.tui.app import HoopApp
    from hoop.tui.data import GatewayLink, History

    history = History.open(db, recordings)
    app = HoopApp(history, GatewayLink(None), poll=0, start="approvals")
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(2000):
            await pilot.pause(0.005)
            screen = app.screen
            if app.snapshot is not None and screen.query("#queue") and screen.query_one("#queue").row_count:
                break
        rows = len(app.snapshot.recent) + len(app.snapshot.live) if app.snapshot else 0
        print(f"READY {rows}", flush=True)


def bench_startup(tmp: Path, sessions: int, statements: int) -> None:
    import subprocess

    db = tmp / "data" / "hoop.db"
    t0 = time.perf_counter()
    make_store(db, sessions, statements)
    print(
        f"store: {sessions:,} sessions, {statements:,} statements "
        f"(built in {time.perf_counter() - t0:.1f} s, {db.stat().st_size / 1e6:.0f} MB)"
    )
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, __file__, "--child", str(db)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        line = proc.stdout.readline() if proc.stdout else ""
        elapsed = time.perf_counter() - t0  # until the lists are on screen, not until exit
        _, err = proc.communicate(timeout=60)
        if not line.startswith("READY"):
            print(f"  startup failed: {err[-1000:]}")
            return
        times.append(elapsed)
    print(
        f"  startup (new process, imports included) until sessions and approvals are on screen: "
        f"median {statistics.median(times) * 1000:.0f} ms of 3 runs (target < 1500 ms)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        db = Path(args.child)
        asyncio.run(_startup(db, db.parent.parent / "recordings"))
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="hoop-tui-bench-"))
    try:
        (tmp / "recordings").mkdir()
        bench_seek(tmp)
        sessions, statements = (1_000, 100_000) if args.quick else (10_000, 1_000_000)
        bench_startup(tmp, sessions, statements)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
