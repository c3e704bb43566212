"""PostgreSQL benchmark: direct vs through the Hoop gateway vs through PgBouncer, in one run.

    .venv/bin/python bench/pg_bench.py [--seconds 10] [--quick] [--rules] [--masking] [--detectors]

Needs the local PostgreSQL on 127.0.0.1:5432 with trust auth for `postgres`, and pgbench/psql.
Installs PgBouncer (Debian package) when missing. Creates a per-run role and database, fills it
with `pgbench -i`, runs `pgbench -S` (simple and extended protocol) and a 1M-row `psql` SELECT
against every path, prints TPS / rows per second and the ratios, and removes everything it
started or created at the end (also on Ctrl-C). See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    LOOPBACK,
    BenchError,
    Cleanup,
    Gateway,
    banner,
    cpu_seconds,
    fmt,
    free_port,
    median,
    print_table,
    ratio,
    run,
    shipped_masking,
    stop_process,
    temp_dir,
    timed,
    wait_listening,
)

PG_PORT = 5432
CONN = "bench"  # connection name on the gateway and database alias on PgBouncer
PLAIN_SSL = {"PGSSLMODE": "disable", "PGCONNECT_TIMEOUT": "10"}  # no TLS on any path: same work


@dataclass
class Target:
    """One way of reaching the benchmark database."""

    name: str
    port: int
    user: str
    dbname: str
    password: str = ""
    pid: int | None = None  # the proxy process whose CPU time we count
    log: Path | None = None  # the proxy's log, quoted when a run through it fails

    def log_tail(self) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return "\n  " + "\n  ".join(self.log.read_text(errors="replace").splitlines()[-15:])

    def env(self) -> dict[str, str]:
        return {**PLAIN_SSL, **({"PGPASSWORD": self.password} if self.password else {})}

    def conn_args(self) -> list[str]:
        return ["-h", LOOPBACK, "-p", str(self.port), "-U", self.user]


@dataclass
class Results:
    tps: dict[tuple[str, str], float] = field(default_factory=dict)  # (mode, target) -> TPS
    cpu_us: dict[tuple[str, str], float] = field(default_factory=dict)  # proxy CPU µs / txn
    bulk: dict[tuple[str, str], float] = field(default_factory=dict)  # (query, target) -> rows/s
    notes: list[str] = field(default_factory=list)


# -- PostgreSQL and PgBouncer setup ------------------------------------------------------------


def admin_sql(sql: str, db: str = "postgres") -> str:
    out = run(
        [
            "psql",
            "-X",
            "-q",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            LOOPBACK,
            "-p",
            str(PG_PORT),
            "-U",
            "postgres",
            "-d",
            db,
            "-c",
            sql,
        ],
        env=PLAIN_SSL,
    )
    return out.stdout


def create_database(cleanup: Cleanup, name: str, scale: int, bulk_rows: int, masking: bool) -> None:
    banner(f"creating role and database {name}, pgbench -i -s {scale}")
    admin_sql(f'CREATE ROLE "{name}" LOGIN')
    cleanup.push("bench role", lambda: admin_sql(f'DROP ROLE IF EXISTS "{name}"'))
    admin_sql(f'CREATE DATABASE "{name}" OWNER "{name}"')
    cleanup.push("bench database", lambda: admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    run(["pgbench", "-i", "-q", "-s", str(scale), "-h", LOOPBACK, "-p", str(PG_PORT), "-U", name, name], env=PLAIN_SSL)
    if masking:
        banner(f"creating bench_rows with {bulk_rows:,} fake e-mail addresses")
        run(
            [
                "psql",
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                LOOPBACK,
                "-U",
                name,
                "-d",
                name,
                "-c",
                "CREATE TABLE bench_rows(id int PRIMARY KEY, email text NOT NULL)",
                "-c",
                "INSERT INTO bench_rows SELECT g, 'user' || g || '.' || substr(md5(g::text), 1, 6) || "
                f"'@example.com' FROM generate_series(1, {bulk_rows}) g",
                "-c",
                "VACUUM ANALYZE bench_rows",
            ],
            env=PLAIN_SSL,
        )


def ensure_pgbouncer() -> str:
    path = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None)
    if path:
        return path
    banner("installing pgbouncer (apt-get install -y pgbouncer)")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    if run(["apt-get", "install", "-y", "pgbouncer"], env=env, check=False).returncode != 0:
        run(["apt-get", "update"], env=env)
        run(["apt-get", "install", "-y", "pgbouncer"], env=env)
    # The package enables a system service on 6432; we never use it, ours runs on a free port.
    return shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def start_pgbouncer(cleanup: Cleanup, db: str, role: str) -> Target:
    binary = ensure_pgbouncer()
    root = temp_dir(cleanup, "hoop-bench-pgbouncer-")
    port = free_port()
    (root / "userlist.txt").write_text(f'"{role}" ""\n')
    (root / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"{CONN} = host={LOOPBACK} port={PG_PORT} dbname={db} user={role}\n\n"
        "[pgbouncer]\n"
        f"listen_addr = {LOOPBACK}\nlisten_port = {port}\nunix_socket_dir =\n"
        "auth_type = trust\nauth_file = " + str(root / "userlist.txt") + "\n"
        "pool_mode = session\nmax_client_conn = 200\ndefault_pool_size = 40\n"
        "ignore_startup_parameters = extra_float_digits\nserver_tls_sslmode = disable\n"
        "client_tls_sslmode = disable\nlog_connections = 0\nlog_disconnections = 0\nsyslog = 0\n"
    )
    cmd = [binary, str(root / "pgbouncer.ini")]
    if os.geteuid() == 0:  # pgbouncer refuses to run as root: drop to the postgres account
        shutil.chown(root, "postgres")
        for f in root.iterdir():
            shutil.chown(f, "postgres")
        cmd[1:1] = ["-u", "postgres"]
    log = root / "pgbouncer.log"
    with log.open("ab") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
    cleanup.push("pgbouncer", lambda: stop_process(proc))
    wait_listening(proc, port, log, "pgbouncer")
    return Target("pgbouncer", port, role, CONN, pid=proc.pid, log=log)


# -- gateway configurations --------------------------------------------------------------------


def gateway_body(db: str, role: str, extra: str = "") -> str:
    def conn(name: str) -> str:
        return (
            f'[[connections]]\nname = "{name}"\ntype = "postgres"\nhost = "{LOOPBACK}"\nport = {PG_PORT}\n'
            f'database = "{db}"\nusername = "{role}"\nsslmode = "disable"\ngroups = ["dev"]\n\n'
        )

    return f'[[users]]\nname = "alice"\ngroups = ["dev"]\n\n{conn(CONN)}{conn(CONN + "_other")}{extra}'


# A realistic rule set: what an operator would turn on first.
RULES = """
[[rules]]
name = "no-drop-truncate"
action = "block"
statements = ["drop", "truncate"]

[[rules]]
name = "no-unbounded-writes"
action = "block"
statements = ["delete", "update"]
where = "missing-or-trivial"

[[rules]]
name = "review-inserts-on-other"
action = "review"
statements = ["insert"]
connections = ["bench_other"]
approvers = ["dba"]

[[rules]]
name = "no-password-hashes"
action = "block"
flags = ["password_hash_read", "server_file", "program"]
"""

MASKING = """
[[masking]]
name = "m"
columns = ["*.email"]
"""


# The read of the detector measurement: a number, a digest, a code and a timestamp as text;
# no value can hold a detected pattern, so every row must come back as the server sent it.
DETECTOR_ROWS = 200_000
DETECTOR_SQL = f"SELECT g, md5(g::text), 'order-'||g, now()::text FROM generate_series(1,{DETECTOR_ROWS}) g"


def start_gateway(cleanup: Cleanup, name: str, db: str, role: str, *, extra: str = "", builtin: bool) -> Target:
    gw = Gateway(
        cleanup,
        gateway_body(db, role, extra),
        name=name,
        gateway_extra=f"builtin_rules = {'true' if builtin else 'false'}\n",
    )
    gw.start()
    return Target(name, gw.port, "alice", CONN, password=gw.token("alice"), pid=gw.pid, log=gw.log)


# -- measurements ------------------------------------------------------------------------------

TPS_RE = re.compile(r"^tps = ([0-9.]+)", re.M)
TXNS_RE = re.compile(r"number of transactions actually processed: (\d+)")


def pgbench(t: Target, mode: str, args: argparse.Namespace) -> tuple[float, float | None]:
    """TPS of `pgbench -S` and the proxy's CPU µs per transaction (None for direct)."""
    before = cpu_seconds(t.pid) if t.pid else 0.0
    out = run(
        [
            "pgbench",
            "-n",
            "-S",
            "-c",
            str(args.clients),
            "-j",
            str(args.jobs),
            "-T",
            str(args.seconds),
            "-M",
            mode,
            *t.conn_args(),
            t.dbname,
        ],
        env=t.env(),
        timeout=args.seconds * 4 + 120,
    )
    cpu = cpu_seconds(t.pid) - before if t.pid else None
    tps, txns = TPS_RE.search(out.stdout), TXNS_RE.search(out.stdout)
    if not tps or not txns:
        raise BenchError(f"cannot read pgbench output for {t.name}:\n{out.stdout}\n{out.stderr}")
    n = int(txns.group(1))
    return float(tps.group(1)), (cpu * 1e6 / n if cpu is not None and n else None)


def bulk(t: Target, sql: str, rows: int, repeat: int) -> float:
    """Rows per second of a whole `psql -c SELECT ... > /dev/null` (median of `repeat`)."""
    cmd = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", *t.conn_args(), "-d", t.dbname, "-c", sql]
    return rows / median(timed(cmd, env=t.env()) for _ in range(repeat))


def settle(targets: list[Target], limit: float = 20.0) -> None:
    """Wait until every gateway (and its journal writer) is idle: a writer still storing the
    last run's records would otherwise take CPU from the next path's run."""
    pids = [t.pid for t in targets if t.pid]
    deadline = time.monotonic() + limit
    last = sum(cpu_seconds(p) for p in pids)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = sum(cpu_seconds(p) for p in pids)
        if now - last < 0.02:  # under 4% of a core
            return
        last = now


def run_pgbench(targets: list[Target], args: argparse.Namespace, res: Results) -> None:
    for mode in ("simple", "extended"):
        for t in targets:
            settle(targets)
            banner(f"pgbench -S -M {mode} -c {args.clients} -j {args.jobs} -T {args.seconds}: {t.name}")
            try:
                res.tps[mode, t.name], res.cpu_us[mode, t.name] = pgbench(t, mode, args)
            except BenchError as exc:
                res.notes.append(f"pgbench -M {mode} via {t.name} failed: {exc}{t.log_tail()}")


def run_bulk(targets: list[Target], label: str, sql: str, rows: int, args: argparse.Namespace, res: Results) -> None:
    if targets:  # warm-up, untimed: the first path must not pay for a cold cache
        timed(["psql", "-X", "-q", *targets[0].conn_args(), "-d", targets[0].dbname, "-c", sql], env=targets[0].env())
    for t in targets:
        banner(f"bulk {label} ({rows:,} rows, median of {args.repeat}): {t.name}")
        try:
            res.bulk[label, t.name] = bulk(t, sql, rows, args.repeat)
        except BenchError as exc:
            res.notes.append(f"bulk {label} via {t.name} failed: {exc}{t.log_tail()}")


# -- report ------------------------------------------------------------------------------------


def report(res: Results, args: argparse.Namespace) -> None:
    names = list(dict.fromkeys(n for _, n in [*res.tps, *res.bulk]))
    tps_rows = []
    for mode in ("simple", "extended"):
        for n in names:
            if (mode, n) in res.tps:
                tps_rows.append(
                    [
                        f"-M {mode}",
                        n,
                        fmt(res.tps[mode, n]),
                        fmt(res.cpu_us.get((mode, n)), 1),
                        ratio(res.tps[mode, n], res.tps.get((mode, "direct"))),
                        ratio(res.tps[mode, n], res.tps.get((mode, "pgbouncer"))),
                    ]
                )
    if tps_rows:
        print_table(
            ["pgbench -S", "path", "TPS", "proxy CPU µs/txn", "vs direct", "vs pgbouncer"],
            tps_rows,
            f"pgbench -S, {args.clients} clients, {args.jobs} threads, {args.seconds}s each",
        )
    bulk_rows = [
        [label, n, fmt(v), ratio(v, res.bulk.get((label, "direct"))), ratio(v, res.bulk.get((label, "pgbouncer")))]
        for (label, n), v in res.bulk.items()
    ]
    if bulk_rows:
        print_table(
            ["bulk SELECT via psql", "path", "rows/s", "vs direct", "vs pgbouncer"],
            bulk_rows,
            f"bulk SELECT, whole psql command, median of {args.repeat}",
        )
    summary = []
    for mode in ("simple", "extended"):
        g, d, b = (res.tps.get((mode, n)) for n in ("gateway", "direct", "pgbouncer"))
        summary.append([f"TPS -M {mode}", ratio(g, d), ratio(g, b), ratio(b, d)])
        if (mode, "gateway-rules") in res.tps:
            summary.append([f"TPS -M {mode} rules on/off", ratio(res.tps[mode, "gateway-rules"], g), "", ""])
        if (mode, "gateway-detectors") in res.tps:
            summary.append([f"TPS -M {mode} detectors on/off", ratio(res.tps[mode, "gateway-detectors"], g), "", ""])
    for label in dict.fromkeys(lbl for lbl, _ in res.bulk):
        g, d, b = (res.bulk.get((label, n)) for n in ("gateway", "direct", "pgbouncer"))
        summary.append([f"bulk {label}", ratio(g, d), ratio(g, b), ratio(b, d)])
        if (label, "gateway-masking") in res.bulk:
            summary.append([f"bulk {label} masked/direct", ratio(res.bulk[label, "gateway-masking"], d), "", ""])
        if (label, "gateway-detectors") in res.bulk:
            summary.append([f"bulk {label} detectors/direct", ratio(res.bulk[label, "gateway-detectors"], d), "", ""])
    print_table(
        ["ratio", "gateway/direct", "gateway/pgbouncer", "pgbouncer/direct"],
        summary,
        "ratios (targets: gateway >= 1.0x pgbouncer TPS; bulk >= 0.7x direct; rules on >= 0.8x off; "
        "masked bulk >= 0.5x direct; detectors bulk >= 0.7x direct; detectors on >= 0.9x off)",
    )
    for note in res.notes:
        print(f"note: {note}")


# -- main --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=int, default=None, help="length of each pgbench run (default 10, 3 with --quick)")
    p.add_argument("--quick", action="store_true", help="3 s runs, scale 1, 200k bulk rows, 1 repeat")
    p.add_argument("--rules", action="store_true", help="also a gateway with a realistic rule set on")
    p.add_argument("--masking", action="store_true", help="also bulk rows with one masked column")
    p.add_argument(
        "--detectors",
        action="store_true",
        help="also a gateway with the repository's masking configuration (content detectors on)",
    )
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument(
        "--only",
        default="direct,gateway,pgbouncer",
        help="comma-separated paths among direct,gateway,pgbouncer (default all)",
    )
    p.add_argument("--no-bulk", action="store_true", help="skip the bulk SELECTs")
    p.add_argument("--no-pgbench", action="store_true", help="skip the pgbench runs")
    args = p.parse_args(argv)
    args.scale, args.rows, args.repeat = (1, 200_000, 1) if args.quick else (10, 1_000_000, 3)
    if args.seconds is None:
        args.seconds = 3 if args.quick else 10
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for tool in ("psql", "pgbench"):
        if not shutil.which(tool):
            raise BenchError(f"{tool} not found: apt-get install -y postgresql-client")
    only = set(args.only.split(","))
    db = f"hoop_bench_{os.getpid()}"
    res = Results()
    with Cleanup() as cleanup:
        create_database(cleanup, db, args.scale, args.rows, args.masking)
        targets = [Target("direct", PG_PORT, db, db)] if "direct" in only else []
        if "gateway" in only:
            targets.append(start_gateway(cleanup, "gateway", db, db, builtin=False))
        if "pgbouncer" in only:
            targets.append(start_pgbouncer(cleanup, db, db))
        extra: list[Target] = []
        if args.rules:
            try:
                extra.append(start_gateway(cleanup, "gateway-rules", db, db, extra=RULES, builtin=True))
            except BenchError as exc:
                res.notes.append(f"rule-set gateway did not start (config keys not accepted yet?): {exc}")
        masked: list[Target] = []
        if args.masking:
            try:
                masked.append(start_gateway(cleanup, "gateway-masking", db, db, extra=MASKING, builtin=False))
            except BenchError as exc:
                res.notes.append(f"masking gateway did not start (config keys not accepted yet?): {exc}")
        detecting: list[Target] = []
        if args.detectors:
            shipped = shipped_masking()
            detecting.append(start_gateway(cleanup, "gateway-detectors", db, db, extra=shipped, builtin=False))
        if not args.no_pgbench:
            run_pgbench(targets + extra + detecting, args, res)
        if not args.no_bulk:
            gen = f"SELECT g, md5(g::text) FROM generate_series(1,{args.rows}) g"
            run_bulk(targets, "generate_series+md5", gen, args.rows, args, res)
            if args.detectors:
                run_bulk(targets + detecting, "g,md5,code,now()::text", DETECTOR_SQL, DETECTOR_ROWS, args, res)
            if args.masking:
                run_bulk(
                    targets + masked, "bench_rows(id,email)", "SELECT id, email FROM bench_rows", args.rows, args, res
                )
                if masked:
                    check = run(
                        [
                            "psql",
                            "-X",
                            "-At",
                            *masked[0].conn_args(),
                            "-d",
                            CONN,
                            "-c",
                            "SELECT email FROM bench_rows LIMIT 1",
                        ],
                        env=masked[0].env(),
                        check=False,
                    )
                    if "@example.com" in check.stdout:
                        res.notes.append("masking gateway returned an unmasked e-mail: masking not applied yet")
        if args.rules:
            res.notes.append("rule-set gateway: builtin_rules on + 4 [[rules]] (see RULES in pg_bench.py)")
        banner("cleaning up")
    report(res, args)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", file=sys.stderr)
        sys.exit(130)
    except BenchError as exc:
        print(f"pg_bench: {exc}", file=sys.stderr)
        sys.exit(1)
