"""SSH throughput through the gateway vs direct: `cat` of a 200 MB file and scp of it.

Reuses the test fixtures' set-up (a throwaway sshd and `hoop serve` subprocess):

    .venv/bin/python bench/ssh_bench.py [--mb 200] [--rounds 3] [--baseline DIR]

Prints the median seconds and MB/s of each path and the ratio gateway/direct (1.0 = as fast
as direct). Client, gateway and sshd share the machine's cores, so compare within one run:
`--baseline DIR` starts a second gateway from another copy of the `hoop` package (for
example `git archive HEAD hoop | tar -x -C DIR`) and times it in the same rounds.
Not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the fixtures import `support`
sys.path.insert(0, str(ROOT / "tests" / "server" / "ssh"))

import conftest as fx  # noqa: E402  (the test fixtures, used here as plain functions)


class _Factory:
    def __init__(self, base: Path) -> None:
        self.base = base

    def mktemp(self, name: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=name, dir=self.base))
        return path


def direct_args(sshd: fx.Sshd) -> list[str]:
    return [
        "-F",
        "/dev/null",
        "-p",
        str(sshd.port),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "IdentitiesOnly=yes",
        "-i",
        str(sshd.target_key),
    ]


def timed(argv: list[str], logs: list[Path]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if done.returncode != 0:
        tails = "".join(f"\n--- {p}:\n{p.read_text(errors='replace')[-2000:]}" for p in logs if p.exists())
        raise SystemExit(f"{argv[0]} failed ({done.returncode}): {done.stderr.decode(errors='replace')}{tails}")
    return time.perf_counter() - start


def start_gateway(sshd: fx.Sshd, factory: _Factory, pythonpath: str | None) -> tuple[object, fx.Gateway]:
    """The test fixture's gateway, optionally importing `hoop` from another directory."""
    old = os.environ.get("PYTHONPATH")
    if pythonpath:
        os.environ["PYTHONPATH"] = pythonpath
    try:
        gen = fx.gateway.__wrapped__(sshd, factory)  # type: ignore[attr-defined]
        return gen, next(gen)
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline", help="a directory holding another copy of the hoop package")
    ap.add_argument("--only", nargs="*", help="cases to run (cat, 'scp download', 'scp upload')")
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        factory = _Factory(Path(tmp))
        # Run the gateways under a name of their own, so that clean-ups elsewhere on a shared
        # machine that stop "hoop serve" processes by name leave this run alone.
        alias = Path(tmp) / "ssh-bench-gateway"
        alias.symlink_to(fx.HOOP)
        fx.HOOP = alias
        sshd_gen = fx.sshd.__wrapped__(factory)  # type: ignore[attr-defined]
        sshd = next(sshd_gen)
        gw_gen, gw = start_gateway(sshd, factory, None)
        gens = [gw_gen, sshd_gen]
        paths = {"gateway": gw}
        if opts.baseline:
            base_gen, paths["baseline"] = start_gateway(sshd, factory, str(Path(opts.baseline).resolve()))
            gens.insert(0, base_gen)
        logs = [g.dir / "gateway.log" for g in paths.values()] + [sshd.dir / "sshd.log"]
        try:
            big = Path(tmp) / "big.bin"
            with big.open("wb") as fh:
                chunk = bytes(range(256)) * 4096
                for _ in range(opts.mb):
                    fh.write(chunk)
            d = direct_args(sshd)
            scp_d = [o if o != "-p" else "-P" for o in d]
            cases: dict[str, dict[str, list[str]]] = {
                # Login and exit alone: the part of each command below that is not streaming.
                "login": {"direct": ["ssh", *d, "root@127.0.0.1", "true"]},
                "cat": {"direct": ["ssh", *d, "root@127.0.0.1", f"cat {big}"]},
                "scp download": {"direct": ["scp", *scp_d, f"root@127.0.0.1:{big}", "/dev/null"]},
                "scp upload": {"direct": ["scp", *scp_d, str(big), "root@127.0.0.1:/tmp/hoop-bench-up"]},
            }
            for label, g in paths.items():
                via = g.ssh_args("alice+web1")[1:-1]
                scp_g = [o if o != "-p" else "-P" for o in via]
                cases["login"][label] = ["ssh", *via, "alice+web1@127.0.0.1", "true"]
                cases["cat"][label] = ["ssh", *via, "alice+web1@127.0.0.1", f"cat {big}"]
                cases["scp download"][label] = ["scp", *scp_g, f"alice+web1@127.0.0.1:{big}", "/dev/null"]
                cases["scp upload"][label] = ["scp", *scp_g, str(big), "alice+web1@127.0.0.1:/tmp/hoop-bench-up"]
            for label in paths:  # first contact records the target's host key, as any gateway in use has
                timed(cases["cat"][label][:-1] + ["true"], logs)
            print(f"{opts.mb} MB, median of {opts.rounds} rounds (the order of the paths reverses every round)")
            logins: dict[str, float] = {}
            for name, argvs in cases.items():
                if opts.only and name not in opts.only and name != "login":
                    continue
                times: dict[str, list[float]] = {label: [] for label in argvs}
                for round_ in range(opts.rounds):
                    order = list(argvs.items())
                    for label, argv in order if round_ % 2 == 0 else reversed(order):  # no fixed first path
                        times[label].append(timed(argv, logs))
                med = {label: statistics.median(t) for label, t in times.items()}
                if name == "login":
                    logins = med
                    line = f"{name:13} direct {med['direct']:6.2f}s"
                    line += "".join(f" | {label} {med[label]:6.2f}s" for label in paths)
                    print(line, flush=True)
                    continue
                line = f"{name:13} direct {med['direct']:6.2f}s {opts.mb / med['direct']:6.1f} MB/s"
                for label in paths:
                    line += (
                        f" | {label} {med[label]:6.2f}s {opts.mb / med[label]:6.1f} MB/s "
                        f"ratio {med['direct'] / med[label]:.2f}x"
                    )
                if logins:  # the transfer alone: the command's time less a login's
                    streamed = {k: max(med[k] - logins[k], 1e-3) for k in med}
                    line += " | without login: " + ", ".join(
                        f"{label} {streamed['direct'] / streamed[label]:.2f}x" for label in paths
                    )
                print(line, flush=True)
        finally:
            for gen in gens:
                try:
                    next(gen)
                except StopIteration:
                    pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
