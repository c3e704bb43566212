"""Gateways sharing a store: names held by live gateways, heartbeats, and a lost gateway's
sessions and approvals ended exactly once however many survivors notice (both engines)."""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from support.servers import require

from hoop.core.config import load_config
from hoop.core.errors import ConfigError
from hoop.core.store.base import Store, open_store
from hoop.core.store.gateways import Me, NameTaken, beat, claim, leave, reap

_numbers = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "hoop.db")
        return
    require("127.0.0.1", 5432, "PostgreSQL")
    name = f"hoop_store_{os.getpid()}_{next(_numbers)}"
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=test", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect("host=127.0.0.1 user=postgres dbname=test", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def store(target: str) -> Iterator[Store]:
    handle = open_store(target)
    yield handle
    handle.close()


def _session(store: Store, sid: int, gateway: str) -> None:
    store.execute(
        "INSERT INTO sessions(id, user, connection, protocol, started, gateway) VALUES (?,?,?,?,?,?)",
        (sid, "alice", "pg", "postgres", time.time(), gateway),
    )


def _approval(store: Store, session_id: int, gateway: str) -> int:
    with store.transaction() as tx:
        row = tx.execute(
            "INSERT INTO approvals(session_id, user, connection, statement, rule, status, created, expires, gateway) "
            "VALUES (?,?,?,?,?,'pending',?,?,?) RETURNING id",
            (session_id, "alice", "pg", "update t set x = 1", "hold", time.time(), time.time() + 60, gateway),
        ).fetchone()
    return int(row["id"])


def test_a_name_held_by_a_live_gateway_elsewhere_is_refused(store: Store) -> None:
    claim(store, Me("gw-a", "host-1", 111), timeout=10)
    with pytest.raises(NameTaken, match="gw-a.*pid 111 on host-1"):
        claim(store, Me("gw-a", "host-2", 222), timeout=10)
    claim(store, Me("gw-b", "host-2", 222), timeout=10)  # another name is free


def test_a_silent_or_stopped_holder_gives_its_name_up(store: Store) -> None:
    first = Me("gw-a", "host-1", 111)
    claim(store, first, timeout=10)
    store.execute("UPDATE gateways SET heartbeat = heartbeat - 11 WHERE name = 'gw-a'")
    claim(store, Me("gw-a", "host-2", 222), timeout=10)  # silent for longer than the timeout
    leave(store, Me("gw-a", "host-2", 222))
    claim(store, first, timeout=10)  # stopped cleanly: free at once


def test_a_crashed_gateway_restarted_on_the_same_host_takes_its_name_back(store: Store) -> None:
    dead = 2**22 + 12345  # above the kernel's default pid_max: no such process
    claim(store, Me("gw-a", "this-host", dead), timeout=10)
    claim(store, Me("gw-a", "this-host", os.getpid()), timeout=10)
    with pytest.raises(NameTaken):  # a running process on the same host still holds it
        claim(store, Me("gw-a", "this-host", 1), timeout=10)


def test_a_lost_gateway_is_ended_once_however_many_survivors_notice(store: Store, target: str) -> None:
    lost, other = Me("gw-a", "host-1", 111), Me("gw-b", "host-2", 222)
    claim(store, lost, timeout=5)
    claim(store, other, timeout=5)
    for sid in (1, 2):
        _session(store, sid, "gw-a")
    _session(store, 3, "gw-b")
    store.execute("UPDATE sessions SET ended = ?, status = 'closed' WHERE id = 2", (time.time(),))
    held = _approval(store, 1, "gw-a")
    theirs = _approval(store, 3, "gw-b")
    assert reap(store, other, timeout=5) == []  # gw-a's heartbeat is fresh
    store.execute("UPDATE gateways SET heartbeat = heartbeat - 6 WHERE name = 'gw-a'")

    # Four survivors notice at the same moment, each with its own connection.
    handles = [open_store(target) for _ in range(4)]
    results: list[list[object]] = []
    start = threading.Barrier(len(handles))

    def survivor(handle: Store, n: int) -> None:
        start.wait()
        results.append(list(reap(handle, Me(f"gw-s{n}", "host-3", n), timeout=5)))

    threads = [threading.Thread(target=survivor, args=(h, n)) for n, h in enumerate(handles)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for h in handles:
        h.close()
    found = [gone for result in results for gone in result]
    assert len(found) == 1, found
    assert (found[0].name, found[0].sessions, found[0].approvals) == ("gw-a", 1, 1)  # type: ignore[attr-defined]
    statuses = {r["id"]: r["status"] for r in store.query("SELECT id, status, ended FROM sessions")}
    assert statuses == {1: "interrupted", 2: "closed", 3: "open"}
    assert store.one("SELECT ended FROM sessions WHERE id = 1")["ended"] is not None  # type: ignore[index]
    approvals = {r["id"]: r for r in store.query("SELECT id, status, decided, reason FROM approvals")}
    assert approvals[held]["status"] == "expired" and approvals[held]["decided"] is not None
    assert "gw-a was lost" in approvals[held]["reason"]
    assert approvals[theirs]["status"] == "pending"
    assert store.one("SELECT status FROM gateways WHERE name = 'gw-a'") == {"status": "lost"}
    # The lost gateway comes back: its beat says so (it must end what it still holds), and
    # nobody declares it lost a second time.
    assert beat(store, lost) == "lost"
    assert beat(store, lost) == "up"
    assert reap(store, other, timeout=5) == []


def test_a_beat_under_a_name_another_gateway_took_is_refused(store: Store) -> None:
    claim(store, Me("gw-a", "host-1", 111), timeout=5)
    store.execute("UPDATE gateways SET heartbeat = heartbeat - 6 WHERE name = 'gw-a'")
    claim(store, Me("gw-a", "host-2", 222), timeout=5)
    with pytest.raises(NameTaken, match="now held by pid 222 on host-2"):
        beat(store, Me("gw-a", "host-1", 111))


@pytest.mark.parametrize(
    ("value", "expect"),
    [('"2s"', "expected at least 3s, got 2s"), ('"soon"', "expected a duration"), ("-5", "expected a duration")],
)
def test_heartbeat_timeout_is_a_duration_of_at_least_three_beats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, expect: str
) -> None:
    monkeypatch.setenv("HOOP_T_PW", "x")
    path = tmp_path / "hoop.toml"
    path.write_text(f"{CONFIG}heartbeat_timeout = {value}\n")
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    assert str(excinfo.value).startswith(f"{path}: gateway.heartbeat_timeout: ") and expect in str(excinfo.value)
    path.write_text(f'{CONFIG}heartbeat_timeout = "45s"\n')
    assert load_config(path).gateway.heartbeat_timeout == 45.0
    path.write_text(CONFIG)
    assert load_config(path).gateway.heartbeat_timeout == 10.0


CONFIG = """
[listen]
postgres = "127.0.0.1:15432"
[gateway]
data_dir = "state"
"""
