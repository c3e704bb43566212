"""Content detection engines side by side, in process: µs per row of the shipped detector list.

    .venv/bin/python bench/detect_engines.py [--rows 50000]

Rows are those of the bulk read in bench/pg_bench.py --detectors (a number, an md5 digest, a
code, a timestamp as text) plus one row in 200 holding an e-mail address. Measured:
  per value    the detectors' own gates and regexes on every value (what ran before prefilters)
  per row      one prefilter call on the row's values joined, exact detectors on a hit
  per buffer   one prefilter call on 64 KiB of DataRow-like bytes, spots mapped back to rows
for the pure-Python engine (one combined `re`) and hyperscan.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from hoop.core import detect_engine  # noqa: E402
from hoop.core.masking import ColumnRef, MaskPolicy, MaskRule  # noqa: E402

SHIPPED = ("email", "credit_card", "us_ssn", "phone", "iban", "aws_access_key", "github_token", "jwt", "private_key")


def rows(n: int) -> list[list[bytes | None]]:
    out: list[list[bytes | None]] = []
    for g in range(1, n + 1):
        code = f"mail user{g}@example.com" if g % 200 == 0 else f"order-{g}"
        out.append([str(g).encode(), hashlib.md5(str(g).encode()).hexdigest().encode(), code.encode(),
                    b"2026-12-07 10:00:33.123456+00"])  # fmt: skip
    return out


def data_row(values: list[bytes | None]) -> bytes:
    body = struct.pack("!h", len(values)) + b"".join(struct.pack("!i", len(v)) + v for v in values if v is not None)
    return b"D" + struct.pack("!i", len(body) + 4) + body


def measure(engine: str, data: list[list[bytes | None]]) -> tuple[float, float, float]:
    os.environ["HOOP_DETECTOR_ENGINE"] = engine
    detect_engine.prefilter.cache_clear()
    policy = MaskPolicy.build([MaskRule("pii", detectors=SHIPPED)], connection="c", groups=frozenset())
    plan = policy.plan([ColumnRef("s", "t", c) for c in "abcd"], ["int4", "text", "text", "text"])
    assert plan is not None and plan.engine == engine
    t = time.perf_counter()
    for row in data:
        for v in row[1:]:
            assert v is not None
            policy.apply_text(v.decode())
    per_value = time.perf_counter() - t
    t = time.perf_counter()
    for row in data:
        plan.apply(row)
    per_row = time.perf_counter() - t
    msgs = [data_row(r) for r in data]
    t = time.perf_counter()
    i = 0
    while i < len(msgs):  # ~64 KiB reads, as the relay gets them
        chunk, size, starts = [], 0, []
        while i < len(msgs) and size < 65536:
            starts.append((size, size + len(msgs[i]), i))
            chunk.append(msgs[i])
            size += len(msgs[i])
            i += 1
        spots = plan.spots(b"".join(chunk)) or []
        k = 0
        for start, end, j in starts:
            while k < len(spots) and spots[k][1] <= start:
                k += 1
            if k < len(spots) and spots[k][0] < end:
                plan.apply(data[j])
    per_buffer = time.perf_counter() - t
    n = len(data) / 1e6
    return per_value / n, per_row / n, per_buffer / n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=50_000)
    args = ap.parse_args()
    data = rows(args.rows)
    print(f"{args.rows:,} rows, µs per row      per value    per row  per buffer")
    for engine in ("python", "hyperscan"):
        if engine == "hyperscan" and detect_engine.engine_name() != "hyperscan" and "hyperscan" not in sys.modules:
            try:
                import hyperscan  # type: ignore[import-not-found,unused-ignore]  # noqa: F401
            except ImportError:
                print("hyperscan: not installed")
                continue
        a, b, c = measure(engine, data)
        print(f"{engine:<28}{a:>10.2f}{b:>11.2f}{c:>12.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
