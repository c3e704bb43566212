"""Latency probe: does one session's huge statement stall everybody else?

A probe session sends `SELECT 1` every few milliseconds and times each answer, first on its
own, then while a second session keeps sending statements of about 2 MB (a long IN list:
cheap for the server, expensive to classify). Both doors, each direct and through one real
`hoop serve`. It prints the probe's p50/p99/max per path and phase, and the ratios
gateway/direct. Client, servers and gateway share the machine's cores: quote ratios.

    .venv/bin/python bench/parse_latency.py [--seconds 8] [--size 2000000] [--only postgres,mysql]

Requirements: PostgreSQL on 127.0.0.1:5432 with trust auth for `postgres`, MariaDB on
127.0.0.1:3306 (root, no password), psycopg and PyMySQL. Nothing is created on the servers.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Cleanup, Gateway, banner, free_port, print_table, ratio  # noqa: E402

PROBE_GAP = 0.01  # seconds between two probes

BODY = """
[[users]]
name = "bench"
groups = ["dev"]

[[connections]]
name = "pg"
type = "postgres"
host = "127.0.0.1"
port = 5432
username = "postgres"
database = "test"
sslmode = "disable"
groups = ["dev"]

[[connections]]
name = "my"
type = "mysql"
host = "127.0.0.1"
port = 3306
username = "root"
database = "test"
sslmode = "disable"
groups = ["dev"]
"""


def big_statement(size: int, n: int = 0) -> str:
    """`SELECT 'x<n>' IN ('v0000001', ...)` of about `size` characters, valid in both dialects;
    a new `n` makes a new text (a repeated text would be decided from the gateway's cache)."""
    items = ",".join(f"'v{i:07d}'" for i in range(size // 11))
    return f"SELECT 'x{n}' IN ({items})"


def connect(door: str, target: dict[str, Any]) -> Any:
    if door == "postgres":
        import psycopg

        return psycopg.connect(**target, autocommit=True, connect_timeout=30)
    import pymysql

    return pymysql.connect(**target, autocommit=True, connect_timeout=30, read_timeout=600)


def load(door: str, target: dict[str, Any], size: int, stop: Any, sent: Any) -> None:
    """The second session: the big statement again and again until told to stop."""
    conn = connect(door, target)
    cur = conn.cursor()
    while not stop.is_set():
        try:
            cur.execute(big_statement(size, sent.value))
            cur.fetchall()
        except Exception as exc:  # refused by the gateway's limits: sent all the same
            if "refused by Hoop" not in str(exc):
                raise
        with sent.get_lock():
            sent.value += 1
    conn.close()


def probe(door: str, target: dict[str, Any], seconds: float) -> list[float]:
    conn = connect(door, target)
    cur = conn.cursor()
    latencies = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        start = time.perf_counter()
        cur.execute("SELECT 1")
        cur.fetchall()
        latencies.append(time.perf_counter() - start)
        time.sleep(PROBE_GAP)
    conn.close()
    return latencies


def measure(door: str, target: dict[str, Any], seconds: float, size: int, loaded: bool) -> dict[str, float]:
    ctx = mp.get_context("fork")
    stop, sent = ctx.Event(), ctx.Value("i", 0)
    loader = None
    if loaded:
        loader = ctx.Process(target=load, args=(door, target, size, stop, sent), daemon=True)
        loader.start()
        time.sleep(0.5)  # the first big statement is on its way
    try:
        got = probe(door, target, seconds)
    finally:
        stop.set()
        if loader is not None:
            loader.join(60)
            if loader.is_alive():
                loader.kill()
    got.sort()
    return {
        "p50": statistics.median(got) * 1000,
        "p99": got[min(len(got) - 1, int(len(got) * 0.99))] * 1000,
        "max": got[-1] * 1000,
        "n": len(got),
        "big": sent.value,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="probe time per path and phase")
    parser.add_argument("--size", type=int, default=2_000_000, help="characters of each big statement")
    parser.add_argument("--only", default="postgres,mysql", help="doors to measure")
    args = parser.parse_args()
    doors = args.only.split(",")
    with Cleanup() as cleanup:
        mysql_port = free_port()
        gw = Gateway(cleanup, f'mysql = "127.0.0.1:{mysql_port}"\n{BODY}', name="parse-latency")
        gw.start()
        token = gw.token("bench")
        targets = {
            ("postgres", "direct"): {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "test"},
            ("postgres", "gateway"): {
                "host": "127.0.0.1",
                "port": gw.port,
                "user": "bench",
                "password": token,
                "dbname": "pg",
                "sslmode": "disable",
            },
            ("mysql", "direct"): {"host": "127.0.0.1", "port": 3306, "user": "root", "database": "test"},
            ("mysql", "gateway"): {
                "host": "127.0.0.1",
                "port": mysql_port,
                "user": "bench",
                "password": token,
                "database": "my",
                "ssl_disabled": True,
            },
        }
        rows = []
        results: dict[tuple[str, str, str], dict[str, float]] = {}
        for door in doors:
            for path in ("direct", "gateway"):
                for phase in ("idle", "loaded"):
                    banner(f"{door} {path} {phase}")
                    r = measure(door, targets[(door, path)], args.seconds, args.size, phase == "loaded")
                    results[(door, path, phase)] = r
                    rows.append(
                        [
                            f"{door} {path} {phase}",
                            f"{r['p50']:.2f}",
                            f"{r['p99']:.2f}",
                            f"{r['max']:.1f}",
                            str(int(r["n"])),
                            str(int(r["big"])) if phase == "loaded" else "-",
                        ]
                    )
        print_table(
            ["path", "p50 ms", "p99 ms", "max ms", "probes", "big sent"],
            rows,
            f"SELECT 1 latency of a probe session; loaded = another session sends {args.size:,}-character statements",
        )
        ratios = []
        for door in doors:
            for phase in ("idle", "loaded"):
                g, d = results[(door, "gateway", phase)], results[(door, "direct", phase)]
                ratios.append([f"{door} {phase}", ratio(g["p50"], d["p50"]), ratio(g["p99"], d["p99"])])
        print_table(["gateway/direct", "p50", "p99"], ratios)


if __name__ == "__main__":
    main()
