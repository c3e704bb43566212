"""Gateways sharing one store: who is alive, and what a lost one leaves behind.

Each gateway on a shared store keeps one row in `gateways` and renews its `heartbeat` every
second. A name is held by one live gateway at a time: another process claiming it while its
heartbeat is fresh is refused (two gateways of one name would end each other's sessions).

A gateway whose heartbeat is older than `[gateway] heartbeat_timeout` is lost. The first
survivor to notice ends it in one transaction: a conditional UPDATE of its row from 'up' to
'lost' (only one transaction can win it, however many survivors notice at once), then its
open sessions become `interrupted` and its pending approvals `expired`, so a held statement
can never run later. Heartbeats are written and judged by the store's clock, so gateways on
machines whose clocks differ still agree on who is silent.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

from hoop.core.errors import HoopError
from hoop.core.store.base import Row, Store
from hoop.core.store.records import CloseStatus


class NameTaken(HoopError):
    """Another live gateway holds this gateway's name on the shared store."""


@dataclass(frozen=True)
class Me:
    name: str
    host: str
    pid: int

    @classmethod
    def here(cls, name: str) -> Me:
        return cls(name, socket.gethostname(), os.getpid())


@dataclass(frozen=True)
class Lost:
    """A gateway this one declared lost, and what it ended of it."""

    name: str
    host: str
    pid: int
    silent_for: float  # seconds since its last heartbeat
    sessions: int
    approvals: int


def claim(store: Store, me: Me, timeout: float) -> None:
    """Take this gateway's row, or raise NameTaken naming the live gateway that holds it."""
    now = store_clock(store)
    row = store.one("SELECT host, pid, heartbeat, status FROM gateways WHERE name = ?", (me.name,))
    if row is not None and _held_elsewhere(row, me, timeout, now):
        raise _taken(me, row, now)
    if row is None:
        changed = store.execute(
            "INSERT INTO gateways(name, host, pid, started, heartbeat, status) VALUES (?,?,?,?,?,'up') "
            "ON CONFLICT(name) DO NOTHING",
            (me.name, me.host, me.pid, now, now),
        )
    else:  # only if nobody renewed or claimed it since it was read
        changed = store.execute(
            "UPDATE gateways SET host = ?, pid = ?, started = ?, heartbeat = ?, status = 'up' "
            "WHERE name = ? AND host = ? AND pid = ? AND heartbeat = ? AND status = ?",
            (me.host, me.pid, now, now, me.name, row["host"], row["pid"], row["heartbeat"], row["status"]),
        )
    if changed != 1:
        raise NameTaken(f"gateway name {me.name!r} was claimed by another gateway at the same moment")


def beat(store: Store, me: Me) -> str:
    """Renew the heartbeat: "up", or "lost" when the others had declared this gateway lost
    (it was cut off for longer than the timeout; its row is 'up' again now). Raises NameTaken
    when another gateway holds the name now."""
    now = store_clock(store)
    with store.transaction() as tx:
        row = tx.execute("SELECT host, pid, status FROM gateways WHERE name = ?", (me.name,)).fetchone()
        if row is None:  # the row was deleted: take it again
            tx.execute(
                "INSERT INTO gateways(name, host, pid, started, heartbeat, status) VALUES (?,?,?,?,?,'up')",
                (me.name, me.host, me.pid, now, now),
            )
            return "up"
        if (row["host"], row["pid"]) != (me.host, me.pid):
            raise NameTaken(
                f"gateway name {me.name!r} is now held by pid {row['pid']} on {row['host']}; "
                "this gateway stops using it"
            )
        tx.execute("UPDATE gateways SET heartbeat = ?, status = 'up' WHERE name = ?", (now, me.name))
        return "lost" if row["status"] == "lost" else "up"


def leave(store: Store, me: Me) -> None:
    """A clean stop: the others must not take this gateway for lost."""
    store.execute(
        "UPDATE gateways SET status = 'stopped', heartbeat = ? WHERE name = ? AND host = ? AND pid = ?",
        (store_clock(store), me.name, me.host, me.pid),
    )


def reap(store: Store, me: Me, timeout: float) -> list[Lost]:
    """Declare lost every other gateway silent for longer than `timeout`, ending its sessions
    and approvals; each one exactly once, whichever survivor gets there first."""
    now = store_clock(store)
    stale = store.query(
        "SELECT name, host, pid, heartbeat FROM gateways WHERE status = 'up' AND name != ? AND heartbeat < ?",
        (me.name, now - timeout),
    )
    lost: list[Lost] = []
    for row in stale:
        with store.transaction() as tx:
            won = tx.execute(
                "UPDATE gateways SET status = 'lost' WHERE name = ? AND status = 'up' AND heartbeat = ?",
                (row["name"], row["heartbeat"]),
            ).rowcount
            if won != 1:  # another survivor declared it first, or it beat again meanwhile
                continue
            silent = now - float(row["heartbeat"])
            sessions = tx.execute(
                "UPDATE sessions SET status = ?, ended = ? WHERE gateway = ? AND ended IS NULL",
                (CloseStatus.INTERRUPTED.value, now, row["name"]),
            ).rowcount
            approvals = tx.execute(
                "UPDATE approvals SET status = 'expired', decided = ?, reason = ? "
                "WHERE gateway = ? AND status = 'pending'",
                (now, f"gateway {row['name']} was lost (no heartbeat for {silent:.0f}s)", row["name"]),
            ).rowcount
        lost.append(Lost(row["name"], row["host"], int(row["pid"]), silent, sessions, approvals))
    return lost


def store_clock(store: Store) -> float:
    """Now, in unix seconds, by the clock of the store's server (one clock for every gateway)."""
    if store.dialect.name == "postgresql":
        row = store.one("SELECT extract(epoch FROM clock_timestamp())::float8 AS now")
        if row is not None:
            return float(row["now"])
    return time.time()


def _held_elsewhere(row: Row, me: Me, timeout: float, now: float) -> bool:
    if row["status"] != "up" or (row["host"], row["pid"]) == (me.host, me.pid):
        return False
    if now - float(row["heartbeat"]) >= timeout:
        return False
    # A crashed gateway restarted on the same machine need not wait out the timeout.
    return row["host"] != me.host or _running(int(row["pid"]))


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # somebody else's process: it exists
        return True
    return True


def _taken(me: Me, row: Row, now: float) -> NameTaken:
    return NameTaken(
        f"gateway name {me.name!r} is held by a running gateway (pid {row['pid']} on {row['host']}, "
        f"heartbeat {now - float(row['heartbeat']):.1f}s ago); give this gateway another [gateway] name, "
        "or stop that one first"
    )
