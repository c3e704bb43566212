"""Scale-out benchmark: one gateway on SQLite vs one and two gateways sharing a PostgreSQL store.

    .venv/bin/python bench/scale_bench.py [--seconds 10] [--quick] [--records 20000]

Needs the local PostgreSQL on 127.0.0.1:5432 with trust auth for `postgres`, and pgbench/psql.
Creates a per-run role and database for pgbench plus a store database, then measures, in one
run:

- `pgbench -S` (8 clients) direct, through one gateway on its SQLite store, through one
  gateway on a PostgreSQL store, and through two gateways sharing that store (the clients
  split across both, as behind a TCP load balancer): TPS, gateway CPU µs per transaction and
  the ratio to direct;
- the journal's write rate on each store: finished statements appended to a `Journal` as
  fast as possible, timed until the writer has stored them all (rows, audit chain and
  recording lines or chunks), in records per second; on PostgreSQL also two journals at
  once (two gateways writing one store, one audit chain).

Everything it created is removed at the end (also on Ctrl-C). Both gateways and the client
share this machine's cores, so two gateways do not add capacity here: the figure shows what
sharing a store costs, not what a second machine adds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import (  # noqa: E402
    BenchError,
    Cleanup,
    Gateway,
    banner,
    cpu_seconds,
    fmt,
    print_table,
    ratio,
    temp_dir,
)
from pg_bench import PG_PORT, TPS_RE, TXNS_RE, Target, admin_sql, create_database, gateway_body  # noqa: E402

from hoop.core.secrets import Secret  # noqa: E402
from hoop.core.store.journal import Journal  # noqa: E402
from hoop.core.store.records import StatementRecord  # noqa: E402


def start_gateway(cleanup: Cleanup, name: str, db: str, store: str = "") -> Target:
    extra = "builtin_rules = false\n" + (f'store = "{store}"\nname = "{name}"\n' if store else "")
    gw = Gateway(cleanup, gateway_body(db, db), name=name, gateway_extra=extra).start()
    return Target(name, gw.port, "alice", "bench", password=gw.token("alice"), pid=gw.pid, log=gw.log)


def pgbench(targets: list[Target], args: argparse.Namespace) -> tuple[float, float | None]:
    """Summed TPS of `pgbench -S` with the clients split across `targets` (run at once), and
    the gateways' CPU µs per transaction (None for direct)."""
    share = args.clients // len(targets)
    before = [cpu_seconds(t.pid) if t.pid else 0.0 for t in targets]
    procs = [
        subprocess.Popen(
            ["pgbench", "-n", "-S", "-c", str(share), "-j", str(max(1, args.jobs // len(targets)))]
            + ["-T", str(args.seconds), *t.conn_args(), t.dbname],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **t.env()},
        )
        for t in targets
    ]
    tps = txns = 0.0
    for t, proc in zip(targets, procs):
        out, err = proc.communicate(timeout=args.seconds * 4 + 120)
        m, n = TPS_RE.search(out), TXNS_RE.search(out)
        if proc.returncode != 0 or not m or not n:
            raise BenchError(f"pgbench via {t.name} failed:\n{out[-1500:]}\n{err[-1500:]}{t.log_tail()}")
        tps, txns = tps + float(m.group(1)), txns + int(n.group(1))
    if not targets[0].pid:
        return tps, None
    cpu = sum(cpu_seconds(t.pid) - b for t, b in zip(targets, before) if t.pid)
    return tps, cpu * 1e6 / txns if txns else None


def journal_rate(target: Path | Secret, recordings: Path, records: int, writers: int = 1) -> float:
    """Records per second the journal stores: `writers` journals (gateways) appending
    `records` finished statements each over 20 sessions, until every one is stored."""
    journals = [Journal(target, recordings / str(i), interval=0.2, gateway=f"bench{i}") for i in range(writers)]

    def fill(journal: Journal) -> None:
        sessions = [journal.open_session("alice", "bench", "postgres", "127.0.0.1:1") for _ in range(20)]
        now = time.time()
        for i in range(records):
            sessions[i % 20].finished(StatementRecord(f"SELECT abalance FROM pgbench_accounts WHERE aid = {i}",
                                                      "allow", "", now, 0.1, 1, tag="SELECT 1"))  # fmt: skip
        for s in sessions:
            s.close()
        journal.flush()  # returns once the writer has stored everything appended

    # The writers are started before the clock: what is timed is storing, not starting Python.
    try:
        started = time.perf_counter()
        threads = [threading.Thread(target=fill, args=(j,)) for j in journals]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return records * writers / (time.perf_counter() - started)
    finally:
        for j in journals:
            j.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=int, default=None, help="length of each pgbench run (default 10, 3 with --quick)")
    p.add_argument("--quick", action="store_true", help="3 s runs, 10,000 journal records")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--records", type=int, default=None, help="journal records per writer (default 20,000)")
    args = p.parse_args(argv)
    args.seconds = args.seconds or (3 if args.quick else 10)
    args.records = args.records or (10_000 if args.quick else 20_000)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for tool in ("psql", "pgbench"):
        if not shutil.which(tool):
            raise BenchError(f"{tool} not found: apt-get install -y postgresql-client")
    db, store_db = f"hoop_bench_{os.getpid()}", f"hoop_bench_store_{os.getpid()}"
    tps: dict[str, tuple[float, float | None]] = {}
    rates: dict[str, float] = {}
    with Cleanup() as cleanup:
        create_database(cleanup, db, 1, 0, False)
        admin_sql(f'CREATE DATABASE "{store_db}"')
        cleanup.push("store database", lambda: admin_sql(f'DROP DATABASE IF EXISTS "{store_db}" WITH (FORCE)'))
        dsn = f"postgresql://postgres@127.0.0.1:{PG_PORT}/{store_db}"
        direct = Target("direct", PG_PORT, db, db)
        on_sqlite = start_gateway(cleanup, "gw-sqlite", db)
        pg_a = start_gateway(cleanup, "gw-pg-a", db, dsn)
        pg_b = start_gateway(cleanup, "gw-pg-b", db, dsn)
        runs = {
            "direct": [direct],
            "1 gateway, SQLite store": [on_sqlite],
            "1 gateway, PostgreSQL store": [pg_a],
            "2 gateways, one PostgreSQL store": [pg_a, pg_b],
        }
        for label, targets in runs.items():
            banner(f"pgbench -S -c {args.clients} -T {args.seconds}: {label}")
            tps[label] = pgbench(targets, args)
        tmp = temp_dir(cleanup, "hoop-bench-journal-")
        banner(f"journal write rate, {args.records:,} records per writer")
        rates["SQLite store"] = journal_rate(tmp / "hoop.db", tmp / "rec-sqlite", args.records)
        rates["PostgreSQL store"] = journal_rate(Secret(dsn), tmp / "rec-pg", args.records)
        rates["PostgreSQL store, 2 writers"] = journal_rate(Secret(dsn), tmp / "rec-pg2", args.records, writers=2)

    base = tps["direct"][0]
    print_table(
        ["pgbench -S", "TPS", "gateway CPU µs/txn", "vs direct", "vs 1 gw SQLite"],
        [
            [label, fmt(t), fmt(cpu, 1), ratio(t, base), ratio(t, tps["1 gateway, SQLite store"][0])]
            for label, (t, cpu) in tps.items()
        ],
        f"pgbench -S, {args.clients} clients in all, {args.seconds}s each",
    )
    print_table(
        ["journal", "records/s", "vs SQLite"],
        [[label, fmt(r), ratio(r, rates["SQLite store"])] for label, r in rates.items()],
        "journal write rate (statement rows + audit chain + recordings, until stored)",
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        sys.exit(1)
