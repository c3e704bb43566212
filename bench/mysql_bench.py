"""MySQL door benchmark: a `SELECT 1` loop and a bulk select, direct vs through the gateway.

Starts a real `hoop serve` with a MySQL door in front of the local MariaDB (root, no
password), creates a per-run database with a bulk table, and prints medians and ratios.
The loop runs once with one client (each query waits for the previous answer: the latency a
proxy adds) and once with several client processes (PyMySQL) that keep the machine's cores
busy (the CPU a proxy adds). Client, server and gateway share the cores, so the ratio is the
figure to quote, not the absolute rate.

    .venv/bin/python bench/mysql_bench.py [--clients 1,4] [--seconds 3] [--rows 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pymysql

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import HOOP, REPO, free_port, port_open, shipped_masking  # noqa: E402

DIRECT = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}


MASKING = """
[[masking]]
name = "names"
columns = ["*.name"]
"""


# The read of the detector measurement: a number, a digest, a code and a timestamp as text;
# no value can hold a detected pattern, so every row must come back as the server sent it.
# A base table, not MariaDB's seq_1_to_N: the catalog does not list those, so under the
# shipped column rules their columns' lineage is unknown and they are masked whole.
DETECTOR_ROWS = 200_000
DETECTOR_FILL = (
    "CREATE TABLE detrows AS SELECT seq AS g, MD5(seq) AS h, CONCAT('order-', seq) AS code, "
    f"CAST(NOW(6) AS CHAR) AS ts FROM seq_1_to_{DETECTOR_ROWS}"
)
DETECTOR_SQL = "SELECT g, h, code, ts FROM detrows"


def start_gateway(root: Path, db: str, extra: str = "") -> tuple[subprocess.Popen[bytes], int, str]:
    root.mkdir(exist_ok=True)
    port = free_port()
    (root / "hoop.toml").write_text(f'''[gateway]
data_dir = "data"
recordings_dir = "recordings"

[listen]
mysql = "127.0.0.1:{port}"

[[users]]
name = "bench"
groups = ["dev"]

[[connections]]
name = "my"
type = "mysql"
host = "127.0.0.1"
port = 3306
username = "root"
database = "{db}"
sslmode = "disable"
groups = ["dev"]
{extra}''')
    # HOOP_DETECTOR_ENGINE=python measures the pure-Python detector engine
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOP_") or k == "HOOP_DETECTOR_ENGINE"}
    log = (root / "gateway.log").open("ab")
    proc = subprocess.Popen(
        HOOP + ["serve", "-c", str(root / "hoop.toml")],
        cwd=root,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**env, "PYTHONPATH": str(REPO)},
    )
    deadline = time.monotonic() + 20
    while not port_open(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"gateway did not start:\n{(root / 'gateway.log').read_text()}")
        time.sleep(0.05)
    token = (
        subprocess.run(
            HOOP + ["token", "issue", "bench", "-c", str(root / "hoop.toml")],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    return proc, port, token


def _loop_worker(args: tuple[dict[str, Any], float, Any]) -> int:
    kw, seconds, barrier = args
    conn = pymysql.connect(**kw)
    cur = conn.cursor()
    cur.execute("SELECT 1")
    barrier.wait()
    n = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        cur.execute("SELECT 1")
        cur.fetchall()
        n += 1
    conn.close()
    return n


def select1_qps(kw: dict[str, Any], clients: int, seconds: float) -> float:
    with mp.Manager() as manager:
        barrier = manager.Barrier(clients)
        with mp.Pool(clients) as pool:
            counts = pool.map(_loop_worker, [(kw, seconds, barrier)] * clients)
    return sum(counts) / seconds


def bulk_seconds(kw: dict[str, Any], sql: str = "SELECT * FROM bulk") -> float:
    with pymysql.connect(**kw) as conn, conn.cursor() as cur:
        t = time.perf_counter()
        cur.execute(sql)
        rows = cur.fetchall()
        elapsed = time.perf_counter() - t
    assert rows
    return elapsed


def print_targets(qps: dict[tuple[str, int], float], bulk: dict[str, float]) -> None:
    """The targets of the README's Performance table, read off this run. The loop target is
    the one-client loop, the latency a user's session feels; with several clients on two cores
    the figure is the CPU any second hop takes from the clients and the server (compare the
    relay rows), so it is printed for information."""
    for name in ("gateway-plain", "gateway-tls"):
        loop = qps[name, 1] / qps["direct", 1]
        rows = bulk["direct"] / bulk[name]
        print(
            f"{name}: SELECT 1 loop, 1 client {loop:.2f}x (target 0.6x: {'met' if loop >= 0.6 else 'NOT met'}); "
            f"bulk {rows:.2f}x (target 0.7x: {'met' if rows >= 0.7 else 'NOT met'})"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", default="1,4", help="comma-separated client counts for the loop")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--masking",
        action="store_true",
        help="add gateway-masked: a masking rule on the bulk table's name column (every row rewritten)",
    )
    ap.add_argument(
        "--detectors",
        action="store_true",
        help="add gateway-detectors: the repository's masking configuration (content detectors on), "
        f"and a {DETECTOR_ROWS:,}-row read of numbers, digests, codes and timestamps as text",
    )
    args = ap.parse_args()
    db = f"hoop_bench_{secrets.token_hex(4)}"
    root_conn = pymysql.connect(**DIRECT, database="test", autocommit=True)
    with root_conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{db}`")
        cur.execute(f"CREATE TABLE `{db}`.bulk (id INT PRIMARY KEY, name VARCHAR(40), note VARCHAR(80), n DOUBLE)")
        cur.execute(
            f"INSERT INTO `{db}`.bulk SELECT seq, CONCAT('name-', seq), REPEAT('x', 40), seq / 7 "
            f"FROM seq_1_to_{args.rows}"
        )
        if args.detectors:
            cur.execute(f"USE `{db}`")
            cur.execute(DETECTOR_FILL)
    tmp = Path(tempfile.mkdtemp(prefix="hoop-mybench-"))
    proc = relay = c_relay = masked = detecting = None
    try:
        proc, port, token = start_gateway(tmp, db)
        relay_port = free_port()
        bare = Path(__file__).with_name("bare_relay.py")
        relay = subprocess.Popen([sys.executable, str(bare), str(relay_port), "3306"])
        while not port_open(relay_port):
            time.sleep(0.05)
        ca = str(tmp / "data" / "tls.crt")
        targets: dict[str, dict[str, Any]] = {
            "direct": {**DIRECT, "database": db},
            # Reference: a second hop that does nothing (bench/bare_relay.py), the floor of any Python proxy.
            "bare-relay": {**DIRECT, "port": relay_port, "database": db},
        }
        if shutil.which("socat"):  # the same do-nothing hop in C: what the hop itself costs
            c_port = free_port()
            c_relay = subprocess.Popen(
                ["socat", f"TCP-LISTEN:{c_port},bind=127.0.0.1,reuseaddr,fork", "TCP:127.0.0.1:3306"]
            )
            while not port_open(c_port):
                time.sleep(0.05)
            targets["socat-relay"] = {**DIRECT, "port": c_port, "database": db}
        targets |= {
            "gateway-tls": {
                "host": "127.0.0.1",
                "port": port,
                "user": "bench",
                "password": token,
                "database": "my",
                "ssl": {"ca": ca, "check_hostname": False},
            },
            # PyMySQL negotiates TLS whenever the server offers it unless told not to.
            "gateway-plain": {
                "host": "127.0.0.1",
                "port": port,
                "user": "bench",
                "password": token,
                "database": "my",
                "ssl_disabled": True,
            },
        }
        if args.masking:  # every row's name rewritten: the cost of masking in the relay
            masked, m_port, m_token = start_gateway(tmp / "masked", db, MASKING)
            targets["gateway-masked"] = {**targets["gateway-plain"], "port": m_port, "password": m_token}
            with pymysql.connect(**targets["gateway-masked"]) as conn, conn.cursor() as cur:
                cur.execute("SELECT name FROM bulk LIMIT 1")
                if "name-" in str(cur.fetchall()):
                    raise SystemExit("gateway-masked returned an unmasked name: masking not applied")
        if args.detectors:
            detecting, d_port, d_token = start_gateway(tmp / "detectors", db, shipped_masking())
            targets["gateway-detectors"] = {**targets["gateway-plain"], "port": d_port, "password": d_token}
            first = "SELECT g, h, code, ts FROM detrows ORDER BY g LIMIT 3"
            with pymysql.connect(**targets["gateway-detectors"]) as conn, conn.cursor() as cur:
                cur.execute(first)
                seen = cur.fetchall()
            with pymysql.connect(**targets["direct"]) as conn, conn.cursor() as cur:
                cur.execute(first)
                if cur.fetchall() != seen:
                    raise SystemExit(f"gateway-detectors changed rows no detector should match: {seen}")
        counts = [int(n) for n in args.clients.split(",")]
        runs: dict[tuple[str, int], list[float]] = {(name, n): [] for name in targets for n in counts}
        bulk_runs: dict[str, list[float]] = {name: [] for name in targets}
        detector_paths = ("direct", "gateway-plain", "gateway-detectors") if args.detectors else ()
        detector_runs: dict[str, list[float]] = {name: [] for name in detector_paths}
        for _ in range(args.repeat):  # paths alternate within each round, so drift hits them alike
            for n in counts:
                for name, kw in targets.items():
                    runs[name, n].append(select1_qps(kw, n, args.seconds))
            for name, kw in targets.items():
                bulk_runs[name].append(bulk_seconds(kw))
            for name in detector_paths:
                detector_runs[name].append(bulk_seconds(targets[name], DETECTOR_SQL))
        qps = {key: statistics.median(values) for key, values in runs.items()}
        bulk = {name: statistics.median(values) for name, values in bulk_runs.items()}
        print(
            f"SELECT 1 loop: median of {args.repeat} runs of {args.seconds:g}s; "
            f"bulk: {args.rows} rows, median of {args.repeat}; paths alternate in each round"
        )
        head = "".join(f"{f'{n} client(s) q/s':>20}{'ratio':>7}" for n in counts)
        print(f"{'path':<15}{head}{'bulk s':>10}{'ratio':>7}")
        for name in targets:
            cells = "".join(f"{qps[name, n]:>20.0f}{qps[name, n] / qps['direct', n]:>7.2f}" for n in counts)
            print(f"{name:<15}{cells}{bulk[name]:>10.3f}{bulk['direct'] / bulk[name]:>7.2f}")
        if 1 in counts:
            print_targets(qps, bulk)
        if detector_paths:
            secs = {name: statistics.median(values) for name, values in detector_runs.items()}
            print(f"detector read ({DETECTOR_ROWS:,} rows, {DETECTOR_SQL}), median of {args.repeat}:")
            for name in detector_paths:
                print(f"{name:<20}{secs[name]:>10.3f} s{secs['direct'] / secs[name]:>7.2f}x direct")
            got = secs["direct"] / secs["gateway-detectors"]
            verdict = "met" if got >= 0.7 else "NOT met"
            print(f"gateway-detectors: detector read {got:.2f}x direct (target 0.7x: {verdict})")
    finally:
        for p in (proc, relay, c_relay, masked, detecting):
            if p is not None:
                p.terminate()
                p.wait(15)
        with root_conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
