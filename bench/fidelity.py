"""Protocol fidelity: run a client library's own test suite direct and through a gateway started
for it, and print the tests whose outcome differs.

Not a test of this project: it needs the library's sources (see bench/README.md, "Fidelity"),
takes minutes, and its answer is a list to read, not a pass/fail. Each suite runs in its own
virtual environment (created once under --venv-root with the library at the version this
interpreter has, and the suite's test requirements), so the project's environment is never
changed. Only loopback addresses are used; what the run creates is removed at its end.

    .venv/bin/python bench/fidelity.py --suite psycopg --source ~/src/psycopg tests/test_cursor.py
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import LOOPBACK, BenchError, Cleanup, Gateway, banner, print_table, run, temp_dir  # noqa: E402

USER = "fidelity"
CONNECTION = "fid"

# A pytest plugin that writes one JSON line per test phase: the outcome of every test by its
# node id, whatever the suite's own reporting options are.
REPORT_PLUGIN = """
import json, os
_out = open(os.environ["HOOP_FIDELITY_REPORT"], "a", buffering=1)
def pytest_unconfigure(config):
    _out.close()
def pytest_runtest_logreport(report):
    outcome = report.outcome
    if hasattr(report, "wasxfail"):
        outcome = "xfailed" if report.skipped else "xpassed"
    message = ""
    if report.failed and report.longrepr is not None:
        message = str(getattr(report.longrepr, "reprcrash", None) and report.longrepr.reprcrash.message
                      or report.longrepr).strip().splitlines()[:1]
        message = message[0][:300] if message else ""
    _out.write(json.dumps({"id": report.nodeid, "when": report.when, "outcome": outcome, "message": message}) + "\\n")
"""


@dataclass(frozen=True)
class Endpoint:
    """Where the suite connects: the server itself, or the gateway in front of it."""

    host: str
    port: int
    user: str
    password: str
    database: str


@dataclass(frozen=True)
class Prepared:
    """A suite ready to run: where it connects direct, the gateway that fronts the same target."""

    direct: Endpoint
    door: str  # the gateway's listener ("postgres" | "mysql")
    gateway_body: str  # [[users]] and [[connections]] of the gateway's hoop.toml
    env: Callable[[Endpoint], dict[str, str]]  # how the suite is told where to connect


@dataclass(frozen=True)
class Suite:
    """How one library's suite is set up and run."""

    packages: Sequence[str]  # pip requirements of the suite's own environment
    pytest_args: Sequence[str]  # always passed (before the selection)
    default_selection: Sequence[str]  # test paths when none are given
    prepare: Callable[[Cleanup], Prepared]  # creates the upstream target for this run


# -- psycopg -----------------------------------------------------------------------------------


def psycopg_suite() -> Suite:
    """psycopg's suite (its git checkout: tests/ with fix_db.py), told where to connect by
    PSYCOPG_TEST_DSN. Each run gets its own database on the local server (trust, superuser
    `postgres`), reached direct and through connection `fid` of the gateway."""
    pg_port = int(os.environ.get("PGPORT_UPSTREAM", "5432"))

    def admin(sql: str) -> None:
        run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", LOOPBACK, "-p", str(pg_port), "-U", "postgres"]
            + ["-d", "postgres", "-c", sql], env={"PGSSLMODE": "disable"})  # fmt: skip

    def prepare(cleanup: Cleanup) -> Prepared:
        db = f"hoop_fidelity_{secrets.token_hex(4)}"
        admin(f'CREATE DATABASE "{db}"')
        cleanup.push("fidelity database", lambda: admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        body = (
            f'[[users]]\nname = "{USER}"\ngroups = ["fidelity"]\n\n'
            f'[[connections]]\nname = "{CONNECTION}"\ntype = "postgres"\nhost = "{LOOPBACK}"\nport = {pg_port}\n'
            f'database = "{db}"\nusername = "postgres"\nsslmode = "disable"\ngroups = ["fidelity"]\n'
        )

        def env(e: Endpoint) -> dict[str, str]:
            dsn = f"host={e.host} port={e.port} user={e.user} dbname={e.database} sslmode=disable"
            return {"PSYCOPG_TEST_DSN": dsn + (f" password={e.password}" if e.password else "")}

        return Prepared(Endpoint(LOOPBACK, pg_port, "postgres", "", db), "postgres", body, env)

    try:
        version = "==" + importlib.metadata.version("psycopg")
    except importlib.metadata.PackageNotFoundError:
        version = ""
    return Suite(
        packages=[f"psycopg[binary,pool]{version}", "pytest", "anyio>=4", "pproxy>=2.7"],
        # timing-based and known-flaky tests answer for the machine, not the protocol; the
        # typing tests run mypy over code samples and never connect
        pytest_args=["-p", "no:randomly", "-m", "not timing and not flakey"]
        + ["--ignore=tests/test_typing.py", "--ignore=tests/crdb/test_typing.py"],
        default_selection=["tests"],
        prepare=prepare,
    )


# The MySQL suite (PyMySQL) is added beside this one with the same shape.
SUITES: dict[str, Callable[[], Suite]] = {"psycopg": psycopg_suite}


# -- running -----------------------------------------------------------------------------------


def suite_python(venv_root: Path, name: str, suite: Suite) -> str:
    """The interpreter of the suite's environment, created (and its packages installed) once."""
    venv = venv_root / name
    python = venv / "bin" / "python"
    stamp = venv / "hoop-fidelity-packages.json"
    wanted = json.dumps(sorted(suite.packages))
    if not python.exists():
        banner(f"creating {venv}")
        run([sys.executable, "-m", "venv", str(venv)])
    if not stamp.exists() or stamp.read_text() != wanted:
        banner(f"installing {', '.join(suite.packages)}")
        run([str(python), "-m", "pip", "install", "-q", *suite.packages])
        stamp.write_text(wanted)
    return str(python)


def run_suite(
    python: str, source: Path, suite: Suite, env: dict[str, str], selection: Sequence[str], extra: Sequence[str],
    work: Path, label: str,
) -> dict[str, tuple[str, str]]:  # fmt: skip
    """Run the selection; returns node id -> (outcome, message of its first failure)."""
    report = work / f"{label}.jsonl"
    report.unlink(missing_ok=True)
    (work / "hoop_fidelity_report.py").write_text(REPORT_PLUGIN)
    log = work / f"{label}.log"
    banner(f"{label}: pytest {' '.join(selection)} (log {log})")
    with log.open("w") as out:
        subprocess.run(
            # a cache of its own: suites keep run state there (psycopg: "the last run crashed")
            [python, "-m", "pytest", "-q", "-p", "hoop_fidelity_report", "-o", f"cache_dir={work / label}-cache"]
            + [*suite.pytest_args, *extra, *selection],
            cwd=source,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env, "HOOP_FIDELITY_REPORT": str(report), "PYTHONPATH": str(work)},
            timeout=6 * 3600,
        )
    results = read_report(report)
    if not results:
        raise BenchError(f"{label}: the suite ran no test:\n{log.read_text(errors='replace')[-3000:]}")
    return results


def read_report(report: Path) -> dict[str, tuple[str, str]]:
    """Node id -> (outcome, message of its first failure), from the plugin's lines."""
    results: dict[str, tuple[str, str]] = {}
    for line in report.read_text().splitlines() if report.exists() else []:
        r = json.loads(line)
        outcome = r["outcome"] if r["when"] == "call" or r["outcome"] != "passed" else "passed"
        if r["outcome"] == "failed" and r["when"] != "call":
            outcome = "error"
        old = results.get(r["id"])
        if old is None or old[0] == "passed":  # a failing phase outranks a passing one
            results[r["id"]] = (outcome, r["message"])
    return results


def differences(direct: dict[str, tuple[str, str]], gateway: dict[str, tuple[str, str]]) -> list[list[str]]:
    rows = []
    for test in sorted(direct.keys() | gateway.keys()):
        a, b = direct.get(test, ("absent", "")), gateway.get(test, ("absent", ""))
        if a[0] != b[0]:
            rows.append([test, a[0], b[0], (b[1] or a[1])[:120]])
    return rows


def report(direct: dict[str, tuple[str, str]], gateway: dict[str, tuple[str, str]], steady: list[str]) -> None:
    """The differing tests (with "again": did a second run differ too, when there was one) and
    how many of the tests that pass direct pass through the gateway."""
    rows = differences(direct, gateway)
    for r in rows if steady else []:
        r.append("yes" if r[0] in steady else "no (flaky)")
    headers = ["test", "direct", "gateway", "message"] + (["again"] if steady else [])
    print_table(headers, rows, f"{len(rows)} tests differ")
    passed = [t for t, (o, _) in direct.items() if o == "passed"]
    kept = sum(1 for t in passed if gateway.get(t, ("",))[0] == "passed")
    print(f"\n{kept} of the {len(passed)} tests that pass direct pass through the gateway")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=sorted(SUITES), default="psycopg")
    parser.add_argument("--source", type=Path, help="the library's checkout (holds tests/)")
    parser.add_argument("--venv-root", type=Path, default=Path.home() / ".cache" / "hoop-fidelity")
    parser.add_argument("-k", dest="keyword", help="pytest -k expression (a subset of the suite)")
    parser.add_argument("--only", choices=["direct", "gateway"], help="run one side only (its failures are listed)")
    parser.add_argument("--logs", type=Path, help="keep each side's pytest output in this directory")
    parser.add_argument("--no-recheck", action="store_true", help="do not run differing tests again")
    parser.add_argument(
        "--compare",
        type=Path,
        metavar="DIR",
        help="only compare DIR/direct.jsonl and DIR/gateway.jsonl (from --only runs)",
    )
    parser.add_argument("selection", nargs="*", help="test paths or node ids, relative to --source")
    args = parser.parse_args(argv)
    if args.compare:
        report(read_report(args.compare / "direct.jsonl"), read_report(args.compare / "gateway.jsonl"), [])
        return 0
    if args.source is None:
        parser.error("--source is needed to run a suite")
    args.source = args.source.resolve()
    suite = SUITES[args.suite]()
    selection = args.selection or list(suite.default_selection)
    extra = ["-k", args.keyword] if args.keyword else []
    if not (args.source / "tests").is_dir():
        raise BenchError(f"{args.source} holds no tests/ directory: pass the library's checkout as --source")
    python = suite_python(args.venv_root, args.suite, suite)
    with Cleanup() as cleanup:
        work = temp_dir(cleanup, "hoop-fidelity-")
        if args.logs:
            args.logs.mkdir(parents=True, exist_ok=True)
            work = args.logs.resolve()
        prepared = suite.prepare(cleanup)
        sides: dict[str, Endpoint] = {}
        if args.only != "gateway":
            sides["direct"] = prepared.direct
        if args.only != "direct":
            gw = Gateway(cleanup, prepared.gateway_body, name="fidelity", door=prepared.door).start()
            sides["gateway"] = Endpoint(LOOPBACK, gw.port, USER, gw.token(USER), CONNECTION)
        results = {
            side: run_suite(python, args.source, suite, prepared.env(e), selection, extra, work, side)
            for side, e in sides.items()
        }
        if args.only:
            side = results[args.only]
            bad = [[t, o, m[:120]] for t, (o, m) in sorted(side.items()) if o in ("failed", "error")]
            print_table(["test", args.only, "first failure"], bad, f"{len(bad)} of {len(side)} tests fail")
            return 0
        rows = differences(results["direct"], results["gateway"])
        steady: list[str] = []
        if rows and not args.no_recheck:  # a second run of just those tells a difference from a flake
            ids = [r[0] for r in rows]
            again = {side: run_suite(python, args.source, suite, prepared.env(e), ids, [], work, f"{side}-again")
                     for side, e in sides.items()}  # fmt: skip
            steady = [r[0] for r in differences(again["direct"], again["gateway"])] or ["-"]
        report(results["direct"], results["gateway"], steady)
        if args.logs:
            print(f"pytest output of each side: {work}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"fidelity: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
