"""`hoop migrate`: a SQLite store of 10,000 sessions (with statements, approvals, tokens,
rules and a real audit chain, and recordings on disk) goes to PostgreSQL and back, table for
table and byte for byte, and its audit chain verifies on each copy."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from support.gateway import USERS_TOML, write_config
from support.pgstore import store_database

from hoop.core import audit
from hoop.core.store.base import Store, open_store
from hoop.core.store.migrate import tables
from hoop.core.store.sqlite import SqliteStore

SESSIONS = 10_000


@pytest.fixture
def dsn() -> Iterator[str]:
    with store_database() as dsn:
        yield dsn


def _build(store: SqliteStore, recordings: Path) -> None:
    t0 = 1_700_000_000.0
    with store.transaction() as tx:
        tx.executemany(
            "INSERT INTO sessions(id, user, connection, protocol, client_addr, started, ended, status, statements, "
            "recording, gateway) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [
                (i, f"user{i % 7}", "pg", "postgres", "127.0.0.1:5", t0 + i, t0 + i + 0.5, "closed", 2,
                 str(recordings / f"{i}.hoop.jsonl"), "gw1")
                for i in range(1, SESSIONS + 1)
            ],
        )  # fmt: skip
        tx.executemany(
            "INSERT INTO statements(session_id, seq, started, duration_ms, text, decision, rule, rows, error, "
            "text_bytes) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [
                (i, seq, t0 + i + seq / 10, 0.25, f"SELECT {i}, '50% off'", "allow", "", 1, "",
                 b"\xff\x00raw" if i == 3 else None)
                for i in range(1, SESSIONS + 1)
                for seq in (1, 2)
            ],
        )  # fmt: skip
        tx.executemany(
            "INSERT INTO approvals(session_id, user, connection, statement, rule, created, expires, status, gateway) "
            "VALUES (?,?,?,?,?,?,?,?,?)",
            [
                (i, "alice", "pg", "DELETE FROM t", "review-deletes", t0, t0 + 60, "approved", "gw1")
                for i in range(1, 40)
            ],
        )
        tx.execute(
            "INSERT INTO grants(user, connection, rule, granted_by, created, expires, approval_id) "
            "VALUES ('alice','pg','review-deletes','bob',?,?,3)",
            (t0, t0 + 3600),
        )
        tx.execute(
            "INSERT INTO rules(kind, name, version, body, author, created) VALUES ('guard','no-drop',1,'{}','ada',?)",
            (t0,),
        )
        tx.execute("INSERT INTO tokens(id, user, hash, created, expires) VALUES ('t1','alice','h',?,?)", (t0, t0 + 9))
        tx.execute("INSERT INTO host_keys VALUES ('box','127.0.0.1',22,'ssh-ed25519 AAAA',?)", (t0,))
        tx.execute("INSERT INTO gateways(name, host, pid, started, heartbeat) VALUES ('gw1','h',1,?,?)", (t0, t0))
        tx.execute("INSERT INTO id_blocks(name, next) VALUES ('sessions', ?)", (SESSIONS + 1,))
    store.upsert_user("alice", ["dev"], "oidc")
    events = [
        audit.AuditEvent(f"user{i % 7}", "statement", "pg", {"session": i, "text": f"SELECT {i}"}, t0 + i)
        for i in range(1, SESSIONS + 1)
    ]
    audit.append(store, events)
    recordings.mkdir(parents=True, exist_ok=True)
    for i in range(1, 51):
        (recordings / f"{i}.hoop.jsonl").write_text(json.dumps({"format": "hoop-recording", "session": i}) + "\n")
    (recordings / "7.cast").write_bytes(b'{"version": 2}\n' + b'[0.1, "o", "x"]\n' * 70_000)  # > 1 MiB
    (recordings / "7.keyframes.jsonl").write_text('{"format": "hoop-keyframes"}\n')


def _contents(store: Store) -> dict[str, list[tuple[object, ...]]]:
    out = {}
    for name, columns in tables(store).items():
        cols = ", ".join(f'"{c}"' for c in columns)
        rows = store.query(f'SELECT {cols} FROM "{name}" ORDER BY {cols}')
        out[name] = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r.values()) for r in rows]
    return out


def _hoop(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hoop.cli", "migrate", "-c", str(config), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_store_of_ten_thousand_sessions_round_trips_through_postgresql(tmp_path: Path, dsn: str) -> None:
    gw = write_config(tmp_path, USERS_TOML)
    source = SqliteStore(tmp_path / "data" / "hoop.db")
    _build(source, tmp_path / "recordings")
    original = _contents(source)
    source.close()

    started = time.monotonic()
    there = _hoop(gw.config, "--to", dsn)
    assert there.returncode == 0, there.stderr
    assert f"sessions: {SESSIONS}" in there.stdout and f"statements: {2 * SESSIONS}" in there.stdout
    assert f"audit chain verified on the target: {SESSIONS} events" in there.stdout
    assert "recordings: 52 files" in there.stdout
    pg = open_store(dsn)
    try:
        assert _contents(pg) == original
        assert pg.one("SELECT count(*) AS n FROM recording_chunks WHERE file = '7.cast'")["n"] == 2  # type: ignore[index]
    finally:
        pg.close()
    with psycopg.connect(dsn, autocommit=True) as conn:  # the next ids follow the copied ones
        new = conn.execute(
            "INSERT INTO statements(session_id, seq, started, text) VALUES (1, 3, 0, 'x') RETURNING id"
        ).fetchone()
        assert new is not None and new[0] == 2 * SESSIONS + 1
        conn.execute("DELETE FROM statements WHERE id = %s", (new[0],))

    refused = _hoop(gw.config, "--to", dsn)  # the target is no longer empty
    assert refused.returncode != 0 and "is not empty" in refused.stderr and "nothing was copied" in refused.stderr
    assert "127.0.0.1:5432" in refused.stderr
    again = _hoop(gw.config, "--to", dsn, "--replace")
    assert again.returncode == 0 and f"sessions: {SESSIONS}" in again.stdout, again.stderr

    back_db, back_rec = tmp_path / "back" / "hoop.db", tmp_path / "back" / "rec"
    back = _hoop(gw.config, "--from", dsn, "--to", str(back_db), "--to-recordings", str(back_rec))
    assert back.returncode == 0, back.stderr
    copy = SqliteStore(back_db)
    try:
        assert _contents(copy) == original
        assert audit.verify(copy).ok and audit.verify(copy).checked == SESSIONS
    finally:
        copy.close()
    for path in (tmp_path / "recordings").iterdir():
        assert (back_rec / path.name).read_bytes() == path.read_bytes()
    assert time.monotonic() - started < 120


def test_an_unreachable_target_is_named_without_its_password(tmp_path: Path) -> None:
    gw = write_config(tmp_path, USERS_TOML)
    result = subprocess.run(
        [sys.executable, "-m", "hoop.cli", "migrate", "-c", str(gw.config)]
        + ["--to", "postgresql://hoop:${STORE_PW}@127.0.0.1:1/hoop"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**gw.env, "STORE_PW": "CANARY-store-pw"},
    )
    assert result.returncode == 1
    assert "--to: the store at postgresql://127.0.0.1:1/hoop cannot be reached" in result.stderr
    assert "CANARY" not in result.stdout + result.stderr and "Traceback" not in result.stderr
