"""Append-only, hash-chained audit events.

Each event's hash covers its own fields and the previous event's hash, so editing,
deleting or reordering any row breaks the chain from that row on; `verify()` names the
first bad one. Appends run under BEGIN IMMEDIATE, so the gateway and CLI commands that
write events (token issue/revoke) extend one chain without forking it.

A chain alone cannot show that its newest events were deleted: what is left still verifies.
Its `head()` (count and last hash) is therefore signed into checkpoints kept outside the store
(`audit_anchor`), and `verify(store, since=...)` checks that the chain still holds a head
recorded earlier and extends it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from hoop.core.store.base import Store, Tx
from hoop.core.store.dialect import Dialect
from hoop.core.store.wire_text import exact_bytes, is_storable, storable, storable_tree

GENESIS = "0" * 64


@dataclass(slots=True)
class AuditEvent:
    actor: str
    action: str
    target: str = ""
    detail: dict[str, Any] | None = None
    ts: float | None = None


# The hashed form is the standard library's compact JSON of
# [id, repr(ts), actor, action, target, detail], built here from its string encoder (the
# same C function `json.dumps(..., ensure_ascii=False, separators=(",", ":"))` uses, a quarter
# of the time). Details use orjson; the hash covers the stored detail text, so the chain only
# depends on this canonical form.
_string = json.encoder.encode_basestring


def _digest(prev: str, event_id: int, ts: float, actor: str, action: str, target: str, detail: str) -> str:
    canonical = (
        f"[{int(event_id)},{_string(repr(ts))},{_string(actor)},{_string(action)},{_string(target)},{_string(detail)}]"
    )
    return hashlib.sha256((prev + canonical).encode("utf-8")).hexdigest()


def _detail_json(detail: dict[str, Any] | None) -> str:
    return orjson.dumps(detail or {}, option=orjson.OPT_SORT_KEYS, default=str).decode()


def append(store: Store, events: Iterable[AuditEvent]) -> int:
    """Append events in order, in one transaction. Returns how many were written."""
    events = [storable_event(ev) for ev in events]
    if not events:
        return 0
    with store.transaction() as conn:
        return chain(conn, events)


def storable_event(ev: AuditEvent) -> AuditEvent:
    """The event with every text storable (wire_text: NUL and bytes that are not UTF-8 escaped,
    which no engine refuses); the exact bytes of what was escaped are kept in
    `detail["undecodable"]` (field -> hex) so that nothing is lost."""
    undecodable: dict[str, str] = {}
    if not is_storable(ev.actor):
        undecodable["actor"] = exact_bytes(ev.actor).hex()
        ev.actor = storable(ev.actor)
    if not is_storable(ev.target):
        undecodable["target"] = exact_bytes(ev.target).hex()
        ev.target = storable(ev.target)
    if ev.detail:
        for key, value in ev.detail.items():
            if isinstance(value, str) and not is_storable(value):
                undecodable[storable(str(key))] = exact_bytes(value).hex()
        ev.detail, _ = storable_tree(ev.detail)
    if undecodable:
        ev.detail = {**(ev.detail or {}), "undecodable": undecodable}
    return ev


def chain(conn: Tx, events: Iterable[AuditEvent]) -> int:
    """Append events to the chain inside the caller's transaction, so a writer can store them
    all or nothing together with other rows. Appends are serialised across every writer of
    the store (several gateways on one PostgreSQL store), so the chain stays one line."""
    conn.lock_audit()
    last = conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    prev, next_id = (last["hash"], last["id"] + 1) if last else (GENESIS, 1)
    rows = []
    for ev in events:
        ts = ev.ts if ev.ts is not None else time.time()
        detail = _detail_json(ev.detail)
        h = _digest(prev, next_id, ts, ev.actor, ev.action, ev.target, detail)
        rows.append((next_id, ts, ev.actor, ev.action, ev.target, detail, prev, h))
        prev, next_id = h, next_id + 1
    if rows:
        conn.executemany(
            "INSERT INTO audit(id, ts, actor, action, target, detail, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?)",
            rows,
        )
    return len(rows)


def record(store: Store, actor: str, action: str, target: str = "", **detail: Any) -> None:
    append(store, [AuditEvent(actor, action, target, detail)])


@dataclass(frozen=True)
class Head:
    """The chain up to event `count`, whose hash is `hash`; written `COUNT:HASH`."""

    count: int
    hash: str

    def __str__(self) -> str:
        return f"{self.count}:{self.hash}"

    @classmethod
    def parse(cls, text: str) -> Head:
        count, sep, digest = text.strip().partition(":")
        if not sep or not count.isdigit() or len(digest) != 64 or digest.strip("0123456789abcdef"):
            raise ValueError(f"expected COUNT:HASH (a number, a colon, 64 hex digits), got {text!r}")
        return cls(int(count), digest)


EMPTY = Head(0, GENESIS)


def head(store: Store) -> Head:
    """The newest event as stored (not verified: `verify` does that)."""
    row = store.one("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1")
    return Head(row["id"], row["hash"]) if row else EMPTY


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    bad_id: int | None = None
    problem: str = ""
    head: Head = EMPTY  # the last event verified


def _not_held(store: Store, start: Head) -> VerifyResult | None:
    """Why the store no longer holds the head `start` (None when it does)."""
    if not start.count:
        return None
    row = store.one("SELECT hash FROM audit WHERE id = ?", (start.count,))
    if row is None:
        return VerifyResult(False, 0, start.count, f"event {start.count} is gone (deleted)", start)
    if row["hash"] != start.hash:
        return VerifyResult(False, 0, start.count, f"event {start.count} no longer has its recorded hash", start)
    return None


def verify(store: Store, since: Head | None = None) -> VerifyResult:
    """Check the whole chain, or (with `since`) that the store still holds that head and that
    every later event extends it: the cheap check before signing the next checkpoint."""
    start = since or EMPTY
    if (gone := _not_held(store, start)) is not None:
        return gone
    prev, expected_id, checked = start.hash, start.count + 1, 0
    for row in store.stream(
        "SELECT id, ts, actor, action, target, detail, prev_hash, hash FROM audit WHERE id > ? ORDER BY id",
        (start.count,),
    ):
        last = Head(expected_id - 1, prev)
        if row["id"] != expected_id:
            return VerifyResult(
                False,
                checked,
                row["id"],
                f"expected event {expected_id}, found {row['id']} (deleted or reordered)",
                last,
            )
        if row["prev_hash"] != prev:
            return VerifyResult(
                False, checked, row["id"], "previous-hash link broken (an earlier event changed or was removed)", last
            )
        h = _digest(prev, row["id"], row["ts"], row["actor"], row["action"], row["target"], row["detail"])
        if h != row["hash"]:
            return VerifyResult(False, checked, row["id"], "content does not match its hash (event edited)", last)
        prev, expected_id, checked = h, expected_id + 1, checked + 1
    return VerifyResult(True, checked, head=Head(expected_id - 1, prev))


def linked(store: Store, since: Head | None = None) -> VerifyResult:
    """That the store still holds `since` and every later event links to the one before it
    (ids without gaps, each `prev_hash` the hash of its predecessor), checked inside SQLite.
    This is what a checkpoint vouches for: that the chain it signs extends the last one. It
    does not recompute hashes from content (`verify` does, a few microseconds per event in
    Python, which the journal writer would pay for every statement)."""
    start = since or EMPTY
    if (gone := _not_held(store, start)) is not None:
        return gone
    span = store.one(
        "SELECT count(*) AS n, coalesce(max(id), ?) AS top FROM audit WHERE id > ?", (start.count, start.count)
    )
    assert span is not None
    if span["top"] - start.count != span["n"]:
        return VerifyResult(False, 0, None, f"events after {start.count} have gaps (deleted or reordered)", start)
    top = span["top"]  # later appends (the writer goes on meanwhile) wait for the next check
    broken = store.one(
        "SELECT a.id FROM audit a LEFT JOIN audit p ON p.id = a.id - 1 WHERE a.id > ? AND a.id <= ? "
        "AND a.prev_hash IS DISTINCT FROM coalesce(p.hash, ?) ORDER BY a.id LIMIT 1",
        (start.count, top, GENESIS),
    )
    if broken is not None:
        return VerifyResult(False, 0, broken["id"], "previous-hash link broken", start)
    if not span["n"]:
        return VerifyResult(True, 0, head=start)
    newest = store.one("SELECT hash FROM audit WHERE id = ?", (top,))
    assert newest is not None
    return VerifyResult(True, span["n"], head=Head(top, newest["hash"]))


def event(store: Store, event_id: int) -> dict[str, Any] | None:
    return store.one("SELECT id, ts, actor, action, target FROM audit WHERE id = ?", (event_id,))


# Column expressions the listing filters apply to (hoop/commands/filters.py): an event names
# its connection in its detail, or as its target (a statement's target is its connection).
def event_connection(dialect: Dialect) -> str:
    return f"coalesce({dialect.json_text('detail', 'connection')}, target)"


def event_decision(dialect: Dialect) -> str:
    return dialect.json_text("detail", "decision")


def events(
    store: Store, limit: int = 1000, action: str | None = None, where: str = "", params: Sequence[Any] = ()
) -> list[dict[str, Any]]:
    """The newest `limit` events, oldest first; `where` is more SQL conditions joined by AND."""
    sql = "SELECT id, ts, actor, action, target, detail FROM audit"
    conditions = [where] if where else []
    params = list(params)
    if action:
        conditions.append("action = ?")
        params.append(action)
    if conditions:
        sql += " WHERE " + " AND ".join(conditions)
    sql += " ORDER BY id DESC LIMIT ?"
    params.append(limit)
    rows = store.query(sql, params)
    for row in rows:
        row["detail"] = json.loads(row["detail"])
    return list(reversed(rows))
