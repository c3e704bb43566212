"""SSH throughput through the gateway vs direct: `cat` of a 200 MB file and scp of it.

Reuses the test fixtures' set-up (a throwaway sshd and `hoop serve` subprocess):

    .venv/bin/python bench/ssh_bench.py [--mb 200] [--rounds 3]

Prints the median seconds and MB/s of each path and the ratio gateway/direct (1.0 = as fast
as direct). Client, gateway and sshd share the machine's cores, so compare within one run.
Not a test.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "server" / "ssh"))

import conftest as fx  # noqa: E402  (the test fixtures, used here as plain functions)


class _Factory:
    def __init__(self, base: Path) -> None:
        self.base = base

    def mktemp(self, name: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=name, dir=self.base))
        return path


def direct_args(sshd: fx.Sshd) -> list[str]:
    return ["-F", "/dev/null", "-p", str(sshd.port), "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "IdentitiesOnly=yes",
            "-i", str(sshd.target_key)]


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        factory = _Factory(Path(tmp))
        sshd_gen = fx.sshd.__wrapped__(factory)  # type: ignore[attr-defined]
        sshd = next(sshd_gen)
        gw_gen = fx.gateway.__wrapped__(sshd, factory)  # type: ignore[attr-defined]
        gw = next(gw_gen)
        try:
            big = Path(tmp) / "big.bin"
            with big.open("wb") as fh:
                chunk = bytes(range(256)) * 4096
                for _ in range(opts.mb):
                    fh.write(chunk)
            d = direct_args(sshd)
            via = gw.ssh_args("alice+web1")[1:-1]
            scp_d = [o if o != "-p" else "-P" for o in d]
            scp_g = [o if o != "-p" else "-P" for o in via]
            cases = {
                "cat": (["ssh", *d, "root@127.0.0.1", f"cat {big}"],
                        ["ssh", *via, "alice+web1@127.0.0.1", f"cat {big}"]),
                "scp download": (["scp", *scp_d, f"root@127.0.0.1:{big}", "/dev/null"],
                                 ["scp", *scp_g, f"alice+web1@127.0.0.1:{big}", "/dev/null"]),
                "scp upload": (["scp", *scp_d, str(big), "root@127.0.0.1:/tmp/hoop-bench-up"],
                               ["scp", *scp_g, str(big), "alice+web1@127.0.0.1:/tmp/hoop-bench-up"]),
            }
            print(f"{opts.mb} MB, median of {opts.rounds} rounds (alternating direct / gateway)")
            for name, (direct, gateway) in cases.items():
                dt, gt = [], []
                for _ in range(opts.rounds):
                    dt.append(timed(direct))
                    gt.append(timed(gateway))
                d_med, g_med = statistics.median(dt), statistics.median(gt)
                print(f"{name:13} direct {d_med:6.2f}s {opts.mb / d_med:7.1f} MB/s   gateway {g_med:6.2f}s "
                      f"{opts.mb / g_med:7.1f} MB/s   ratio {d_med / g_med:.2f}x")
        finally:
            for gen in (gw_gen, sshd_gen):
                try:
                    next(gen)
                except StopIteration:
                    pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
