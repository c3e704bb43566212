"""Protocol fidelity of the MySQL door: PyMySQL's own test suite, run direct against the local
MariaDB and through a gateway started for it, and the tests whose outcome differs.

Not a test of this project: the suite is PyMySQL's, from a checkout of its repository (the
sdist does not ship it; see bench/README.md). Usage:

    .venv/bin/python bench/fidelity_mysql.py --source /path/to/PyMySQL [--pytest-args "-k connection"]

The gateway runs with no rules (`builtin_rules = false`), no masking, no TLS, on loopback. Its
two connections are named after the two throwaway databases they open, so the suite's
`databases.json` names the same databases on both paths and `select_db(other)` means the same.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pymysql

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import HOOP, LOOPBACK, BenchError, Cleanup, free_port, stop_process, temp_dir, wait_listening  # noqa: E402

ROOT = {"host": LOOPBACK, "port": 3306, "user": "root", "password": ""}
Outcomes = dict[str, tuple[str, str]]  # test id -> (outcome, first line of its message)


def _databases(cleanup: Cleanup) -> list[str]:
    """Two throwaway databases on the server, dropped at the end."""
    names = [f"hoop_fid_{os.getpid()}_{i}" for i in (1, 2)]
    root = pymysql.connect(**ROOT, autocommit=True)  # type: ignore[arg-type]
    with root.cursor() as cur:
        for name in names:
            cur.execute(f"CREATE DATABASE `{name}` DEFAULT CHARACTER SET utf8mb4")
    root.close()

    def drop() -> None:
        conn = pymysql.connect(**ROOT, autocommit=True)  # type: ignore[arg-type]
        with conn.cursor() as cur:
            for name in names:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()

    cleanup.push("fidelity databases", drop)
    return names


def _gateway(cleanup: Cleanup, databases: list[str]) -> tuple[int, str]:
    """`hoop serve` with a MySQL door in front of both databases; returns its port and a token."""
    root = temp_dir(cleanup, "hoop-fidelity-")
    port = free_port()
    conns = "".join(
        f'\n[[connections]]\nname = "{db}"\ntype = "mysql"\nhost = "{LOOPBACK}"\nport = 3306\nusername = "root"\n'
        f'database = "{db}"\nsslmode = "disable"\nallow_local_infile = true\ngroups = ["dev"]\n'
        for db in databases
    )
    config = root / "hoop.toml"
    config.write_text(
        '[gateway]\ndata_dir = "data"\nrecordings_dir = "recordings"\nbuiltin_rules = false\n\n'
        f'[listen]\nmysql = "{LOOPBACK}:{port}"\n\n[[users]]\nname = "alice"\ngroups = ["dev"]\n{conns}'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOP_")}
    log = root / "gateway.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            HOOP + ["serve", "-c", str(config)], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root
        )
    cleanup.push("gateway", lambda: stop_process(proc))
    wait_listening(proc, port, log, "gateway", ready=lambda: "ready" in log.read_text(errors="replace"))
    issued = subprocess.run(
        HOOP + ["token", "issue", "alice", "--ttl", "4h", "-c", str(config)],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        timeout=60,
    )
    if issued.returncode != 0:
        raise BenchError(f"hoop token issue failed: {issued.stderr[-2000:]}")
    return port, issued.stdout.strip().splitlines()[-1]


def _run_suite(copy: Path, entries: list[dict[str, object]], report: Path, pytest_args: list[str]) -> Outcomes:
    """PyMySQL's tests in `copy` with `entries` as its databases.json; the outcome of each test."""
    settings = copy / "pymysql" / "tests" / "databases.json"
    settings.write_text(json.dumps(entries))
    settings.chmod(0o600)  # holds the gateway token for the gateway run
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"]
    subprocess.run([*cmd, *pytest_args, "pymysql/tests"], cwd=copy, capture_output=True, text=True, timeout=3600)
    settings.unlink()
    if not report.exists():
        raise BenchError(f"the suite wrote no report ({report})")
    outcomes: Outcomes = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        test = f"{case.get('classname')}::{case.get('name')}"
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed"}.get(child.tag, child.tag)
                message = (child.get("message") or "").splitlines()[0][:160] if child.get("message") else ""
                break
        outcomes[test] = (outcome, message)
    return outcomes


def run_pymysql(source: Path, pytest_args: list[str] | None = None) -> int:
    """Runs the suite both ways and prints the tests that differ; returns how many differ."""
    if not (source / "pymysql" / "tests" / "base.py").exists():
        raise BenchError(f"{source} is not a PyMySQL checkout (no pymysql/tests/base.py; the sdist has no tests)")
    with Cleanup() as cleanup:
        work = temp_dir(cleanup, "hoop-fidelity-src-")
        copy = work / "PyMySQL"
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns(".git", "__pycache__", "databases.json"))
        databases = _databases(cleanup)
        port, token = _gateway(cleanup, databases)
        direct = [{**ROOT, "database": db, "use_unicode": True, "local_infile": True} for db in databases]
        through = [
            {"host": LOOPBACK, "port": port, "user": "alice", "password": token, "database": db, "local_infile": True}
            for db in databases
        ]
        results = {}
        for path, entries in (("direct", direct), ("gateway", through)):
            print(f"running PyMySQL's suite {path} ...", flush=True)
            results[path] = _run_suite(copy, entries, work / f"{path}.xml", pytest_args or [])
    _print(results["direct"], results["gateway"])
    return sum(1 for t in results["direct"] if results["direct"][t][0] != results["gateway"].get(t, ("missing", ""))[0])


def _print(direct: Outcomes, gateway: Outcomes) -> None:
    for path, outcomes in (("direct", direct), ("gateway", gateway)):
        counts: dict[str, int] = {}
        for outcome, _ in outcomes.values():
            counts[outcome] = counts.get(outcome, 0) + 1
        print(f"{path:8} " + ", ".join(f"{n} {what}" for what, n in sorted(counts.items())))
    passed_direct = [t for t, (o, _) in direct.items() if o == "passed"]
    kept = sum(1 for t in passed_direct if gateway.get(t, ("missing", ""))[0] == "passed")
    print(f"through the gateway, {kept} of the {len(passed_direct)} tests that pass direct pass")
    differ = sorted(
        t for t in set(direct) | set(gateway) if direct.get(t, ("missing",))[0] != gateway.get(t, ("missing",))[0]
    )
    if not differ:
        print("no test differs")
        return
    print("\ntests that differ (direct -> gateway: gateway's message):")
    for test in differ:
        d = direct.get(test, ("missing", ""))
        g = gateway.get(test, ("missing", ""))
        print(f"  {test}\n      {d[0]} -> {g[0]}: {g[1] or d[1]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, required=True, help="a checkout of github.com/PyMySQL/PyMySQL")
    parser.add_argument("--pytest-args", default="", help="more pytest arguments, e.g. \"-k 'not load_local'\"")
    args = parser.parse_args()
    try:
        run_pymysql(args.source.resolve(), shlex.split(args.pytest_args))
    except BenchError as err:
        print(f"fidelity run failed: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
