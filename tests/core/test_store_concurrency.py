"""Several writers on one store, as several gateways and CLI commands are: audit appends from
two processes and from threads inside each keep ONE chain that verifies, with ids in a row,
and session ids handed out in blocks never collide."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from support.stores import opened

from hoop.core import audit
from hoop.core.secrets import Secret
from hoop.core.store.session_ids import reserve_session_ids

EVENTS = 60  # per thread
THREADS = 3  # per process

_APPEND = f"""
import sys, threading
from pathlib import Path
from hoop.core import audit
from hoop.core.secrets import Secret
from hoop.core.store.base import open_store, is_postgres_dsn
target = sys.stdin.readline().strip()
store = open_store(Secret(target) if is_postgres_dsn(target) else Path(target))
sys.stdin.readline()  # every writer starts at once

failed = []

def write(n):
    try:
        for i in range({EVENTS}):
            pair = [audit.AuditEvent(sys.argv[1], "note", str(n), {{"i": i, "half": h}}) for h in (1, 2)]
            audit.append(store, pair)
    except BaseException as exc:
        failed.append(exc)
        raise

threads = [threading.Thread(target=write, args=(n,)) for n in range({THREADS})]
for t in threads: t.start()
for t in threads: t.join()
store.close()
sys.exit(1 if failed else 0)  # a thread's exception alone would not change the exit status
"""


def _target_text(target: Path | Secret) -> str:
    return target.reveal() if isinstance(target, Secret) else str(target)


def test_appends_from_two_processes_and_their_threads_make_one_chain(store_target: Path | Secret) -> None:
    with opened(store_target):
        pass  # the schema exists before the writers start
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _APPEND, name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("gw-a", "gw-b")
    ]
    for proc in procs:  # the DSN goes on stdin, never in argv
        assert proc.stdin is not None
        proc.stdin.write(_target_text(store_target) + "\n")
        proc.stdin.flush()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    errors = [proc.communicate(timeout=120)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], errors

    total = 2 * THREADS * EVENTS * 2
    with opened(store_target) as store:
        result = audit.verify(store)
        assert result.ok and result.checked == total, result.problem
        ids = [r["id"] for r in store.query("SELECT id FROM audit ORDER BY id")]
        assert ids == list(range(1, total + 1))  # no gap, no duplicate
        # The two events of one append stay side by side: an append is never split by another.
        rows = store.query("SELECT actor, target, detail FROM audit ORDER BY id")
        pairs = [
            (rows[k]["actor"], rows[k]["target"]) == (rows[k + 1]["actor"], rows[k + 1]["target"])
            for k in range(0, total, 2)
        ]
        assert all(pairs)
        assert {r["actor"] for r in rows} == {"gw-a", "gw-b"}


def test_threads_sharing_one_store_append_one_chain(store_target: Path | Secret) -> None:
    failed: list[BaseException] = []
    with opened(store_target) as store:

        def write(n: int) -> None:
            try:
                for i in range(EVENTS):
                    audit.record(store, "gw", "note", str(n), i=i)
            except BaseException as exc:
                failed.append(exc)

        threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert failed == []
        result = audit.verify(store)
        assert result.ok and result.checked == 4 * EVENTS
        assert audit.linked(store).ok


def test_session_id_blocks_reserved_at_once_never_overlap(store_target: Path | Secret) -> None:
    with opened(store_target):
        pass
    blocks: list[tuple[int, int]] = []

    def reserve() -> None:
        for _ in range(5):
            blocks.append(reserve_session_ids(store_target, count=10))

    threads = [threading.Thread(target=reserve) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    taken = [i for first, limit in blocks for i in range(first, limit)]
    assert len(blocks) == 20 and len(taken) == len(set(taken)) == 200
