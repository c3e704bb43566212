"""Through the real gateway: odd bytes from one client cost no other session's records, and a
full disk stops service (clearly) instead of serving statements that are never recorded."""

from __future__ import annotations

import json
import socket
import sqlite3
import struct
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from support.disk import fill, small_disk
from support.gateway import GatewayProcess
from support.pgwire import RawClient
from support.waiting import eventually

pytestmark = pytest.mark.needs_postgres

ODD = b"select 1 /* \xff\xfe */"
UNAVAILABLE = "recording unavailable"


def _stored(gw: GatewayProcess, sql: str, *params: Any) -> list[sqlite3.Row]:
    conn = sqlite3.connect(gw.root / "data" / "hoop.db")
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _login_as(port: int, user: bytes) -> bytes:
    """A startup message with a user name that is not UTF-8, then a password; the answer."""
    body = struct.pack("!I", 196608) + b"user\0" + user + b"\0database\0pg\0\0"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(struct.pack("!I", len(body) + 4) + body)
        first = sock.recv(65536)
        if first[:1] == b"R":
            password = b"not-a-token\0"
            sock.sendall(b"p" + struct.pack("!I", len(password) + 4) + password)
            return sock.recv(65536)
        return first


def test_odd_bytes_in_a_statement_and_a_login_name_lose_no_other_record(
    make_gateway: Any, pg_target: dict[str, str]
) -> None:
    gw: GatewayProcess = make_gateway("\n[limits]\nsessions_per_user = 64\n")  # 41 sessions of alice at once
    token = gw.token("alice")
    go = threading.Barrier(41)
    errors: list[BaseException] = []

    def session(i: int) -> None:
        try:
            with psycopg.connect(gw.dsn("alice", token), autocommit=True) as conn:
                go.wait(10)
                for n in range(5):  # spread over several of the journal's batches
                    conn.execute(f"select {i * 10 + n} as marker")
                    time.sleep(0.05)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=session, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    odd = RawClient(gw.ports["postgres"], "alice", token, "pg")
    go.wait(10)
    time.sleep(0.1)
    refused = _login_as(gw.ports["postgres"], b"\xffroot\xfe")
    reply = odd.run(ODD)
    odd.close()
    for t in threads:
        t.join(30)
    assert not errors
    assert refused[:1] == b"E"
    assert reply.errors  # the server rejects the bytes; the gateway records them

    def all_there() -> None:
        texts = {r["text"] for r in _stored(gw, "SELECT text FROM statements")}
        assert {f"select {m} as marker" for m in range(400) if m % 10 < 5} <= texts
        assert len(_stored(gw, "SELECT id FROM sessions WHERE status = 'closed'")) >= 41

    eventually(all_there)
    [row] = _stored(gw, "SELECT text, text_bytes FROM statements WHERE text_bytes IS NOT NULL")
    assert row["text_bytes"] == ODD and row["text"] == r"select 1 /* \xff\xfe */"
    [failure] = _stored(gw, "SELECT detail FROM audit WHERE action = 'login.failure'")
    detail = json.loads(failure["detail"])
    assert detail["user"] == r"\xffroot\xfe" and detail["reason"] == "the user name is not valid UTF-8"
    assert bytes.fromhex(detail["undecodable"]["user"]) == b"\xffroot\xfe"  # the name exactly as sent
    verdict = gw.cli("audit", "verify")
    assert "intact" in verdict.stdout
    assert "lost" not in gw.log()


def test_a_full_disk_refuses_service_records_everything_served_and_recovers(make_gateway: Any, tmp_path: Path) -> None:
    gw: GatewayProcess = make_gateway(start=False)
    with small_disk(tmp_path / "disk", "16m") as disk:
        (gw.root / "data").symlink_to(disk)
        gw.start()
        token = gw.token("alice")
        conn = psycopg.connect(gw.dsn("alice", token), autocommit=True)
        conn.execute("select 'warm' as marker")
        filler = fill(disk)
        served, refusal = [], ""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            marker = f"select {len(served)} as {'x' * 200}"
            try:
                conn.execute(marker)
            except psycopg.Error as exc:
                refusal = str(exc)
                break
            served.append(marker)
        assert UNAVAILABLE in refusal, refusal
        with pytest.raises(psycopg.OperationalError, match=UNAVAILABLE):
            psycopg.connect(gw.dsn("alice", token), connect_timeout=10)
        assert "recording unavailable" in gw.log()
        down = gw.cli("health", "--token", token, check=False)
        assert down.returncode == 1 and "recording: unavailable" in down.stdout, down.stdout + down.stderr

        filler.unlink()

        def serving_again() -> None:
            try:
                conn.execute("select 'after' as marker")
            except psycopg.Error as exc:
                raise AssertionError(str(exc)) from exc

        eventually(serving_again, timeout=15)
        conn.close()
        with psycopg.connect(gw.dsn("alice", token), autocommit=True) as again:
            again.execute("select 'new login' as marker")

        def recorded() -> None:
            texts = [r["text"] for r in _stored(gw, "SELECT text FROM statements ORDER BY id")]
            assert set(served) <= set(texts)
            assert "select 'new login' as marker" in texts

        eventually(recorded)
        up = gw.cli("health", "--token", token)
        assert "recording: healthy  waiting: 0" in up.stdout
        assert "intact" in gw.cli("audit", "verify").stdout
        gw.stop()


def test_on_record_failure_continue_keeps_serving_and_stores_everything_once_it_can(
    make_gateway: Any, tmp_path: Path
) -> None:
    gw: GatewayProcess = make_gateway(start=False)
    gw.config.write_text(gw.config.read_text().replace("[gateway]\n", '[gateway]\non_record_failure = "continue"\n'))
    with small_disk(tmp_path / "disk", "16m") as disk:
        (gw.root / "data").symlink_to(disk)
        gw.start()
        assert "on_record_failure = continue" in gw.log()
        token = gw.token("alice")
        with psycopg.connect(gw.dsn("alice", token), autocommit=True) as conn:
            filler = fill(disk)
            served = [f"select {n} as {'y' * 200}" for n in range(300)]
            for text in served:
                conn.execute(text)  # never refused
            eventually(lambda: _says(gw.log(), "continue: the gateway keeps serving"))
            filler.unlink()

            def recorded() -> None:
                texts = {r["text"] for r in _stored(gw, "SELECT text FROM statements")}
                assert set(served) <= texts

            eventually(recorded, timeout=15)

        def outage_audited() -> None:
            events = [r["action"] for r in _stored(gw, "SELECT action FROM audit ORDER BY id")]
            assert "recording.recovered" in events[events.index("recording.unavailable") :]

        eventually(outage_audited)
        gw.stop()


def _says(log: str, part: str) -> None:
    assert part in log, log[-2000:]
