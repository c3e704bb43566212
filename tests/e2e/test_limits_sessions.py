"""`[limits]` at the database doors of a real `hoop serve`: sessions per user and connection,
failed logins with back-off. One user flooding a connection gets a clear error past the limit
while another user is served as usual, and the upstream never sees more than the limit."""

from __future__ import annotations

import select
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pymysql
import pytest
from support.gateway import GatewayProcess, has_actions
from support.mariadb import mysql_connection_toml
from support.pgwire import RawClient
from support.postgres import on_server, pg_connection_toml
from support.rules import rule_toml
from support.servers import free_port

pytestmark = pytest.mark.needs_postgres

FLOOD = 200


def _connect(gw: GatewayProcess, user: str, token: str, **extra: Any) -> psycopg.Connection[Any]:
    return psycopg.connect(gw.dsn(user, token, **extra), autocommit=True, connect_timeout=10)


def test_two_hundred_sessions_of_one_user_stop_at_the_limit_while_another_is_served(
    make_gateway: Any, pg_target: dict[str, str]
) -> None:
    gw = make_gateway()
    alice, bob = gw.token("alice"), gw.token("bob")
    with _connect(gw, "bob", bob) as steady:
        steady.execute("SELECT 1")
        opened: list[psycopg.Connection[Any]] = []
        errors: list[str] = []
        latencies: list[float] = []

        def flood_one(_: int) -> None:
            try:
                opened.append(_connect(gw, "alice", alice, application_name="alice-flood"))
            except psycopg.OperationalError as exc:
                errors.append(str(exc))

        with ThreadPoolExecutor(16) as pool:
            flooding = pool.map(flood_one, range(FLOOD))
            deadline = time.monotonic() + 60
            while len(opened) + len(errors) < FLOOD and time.monotonic() < deadline:
                started = time.monotonic()
                assert steady.execute("SELECT 41 + 1").fetchone() == (42,)
                latencies.append(time.monotonic() - started)
                time.sleep(0.01)
            list(flooding)
        try:
            upstream = on_server(
                pg_target, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'alice-flood'"
            )[0][0]
            assert len(opened) == 20 and len(errors) == FLOOD - 20
            assert all("too many sessions for alice on pg (limit 20)" in e for e in errors), errors[:3]
            assert upstream == 20
            # bob was answered all along, at a normal pace, and can still open sessions
            assert latencies and max(latencies) < 1.0, max(latencies)
            with _connect(gw, "bob", bob) as fresh:
                assert fresh.execute("SELECT 1").fetchone() == (1,)
            # a session that ends gives its slot back
            opened.pop().close()
            with _connect(gw, "alice", alice) as again:
                assert again.execute("SELECT 1").fetchone() == (1,)
        finally:
            for conn in opened:
                conn.close()
    events = gw.audit("--action", "session.refused", until=lambda ev: len(ev) >= FLOOD - 20)
    assert {(e["actor"], e["target"], e["detail"]["reason"]) for e in events} == {("alice", "pg", "sessions_per_user")}


def test_the_mysql_door_refuses_sessions_past_the_limit_with_error_1203(
    make_gateway: Any, pg_target: dict[str, str]
) -> None:
    gw = make_gateway(
        "\n[limits]\nsessions_per_user = 2\n",
        connections=pg_connection_toml(pg_target) + mysql_connection_toml("test"),
        listen={"mysql": free_port()},
    )
    tokens = {u: gw.token(u) for u in ("alice", "bob")}

    def through(user: str) -> pymysql.Connection:
        return pymysql.connect(
            host="127.0.0.1",
            port=gw.ports["mysql"],
            user=user,
            password=tokens[user],
            database="my",
            ssl_disabled=True,
            connect_timeout=10,
        )

    first, second = through("alice"), through("alice")
    with pytest.raises(pymysql.err.OperationalError) as refused:
        through("alice")
    assert refused.value.args == (1203, "too many sessions for alice on my (limit 2)")
    other = through("bob")  # another user's sessions are their own
    with other.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    other.close()
    first.close()
    time.sleep(0.3)  # the gateway sees the client go
    third = through("alice")
    for conn in (second, third):
        conn.close()
    gw.audit("--action", "session.refused", until=has_actions("session.refused"))


def test_failed_logins_earn_a_back_off_for_the_user_and_the_source(make_gateway: Any) -> None:
    gw = make_gateway("\n[limits]\nlogin_failures_per_user = 3\nlogin_failures_per_source = 6\n")
    alice, bob = gw.token("alice"), gw.token("bob")
    for _ in range(3):
        with pytest.raises(psycopg.OperationalError, match="authentication failed"):
            _connect(gw, "alice", "not-a-token")
    # the right token is not even looked at while the back-off lasts
    with pytest.raises(psycopg.OperationalError, match=r"too many failed logins, retry in 1s"):
        _connect(gw, "alice", alice)
    with _connect(gw, "bob", bob) as conn:  # another user from the same address: 3 of 6
        conn.execute("SELECT 1")
    time.sleep(1.1)
    with _connect(gw, "alice", alice) as conn:
        conn.execute("SELECT 1")
    events = gw.audit("--action", "login.throttled", until=has_actions("login.throttled"))
    assert events[0]["actor"] == "alice" and "too many failed logins" in events[0]["detail"]["reason"]


def test_a_flood_of_refused_logins_is_audited_in_a_few_counted_events(make_gateway: Any) -> None:
    gw = make_gateway("\n[limits]\nlogin_failures_per_user = 2\nlogin_backoff_max = 60\n")
    for _ in range(2):
        with pytest.raises(psycopg.OperationalError, match="authentication failed"):
            _connect(gw, "alice", "not-a-token")
    started, refused = time.monotonic(), 0
    while refused < 200:
        with pytest.raises(psycopg.OperationalError, match="too many failed logins"):
            _connect(gw, "alice", "not-a-token")
        refused += 1
    seconds = time.monotonic() - started
    events = gw.audit("--action", "login.throttled", until=lambda ev: sum(e["detail"]["attempts"] for e in ev) >= 1)
    time.sleep(0.5)  # the journal stores what it was given
    events = gw.audit("--action", "login.throttled", until=lambda ev: True)
    assert len(events) <= seconds + 2, f"{len(events)} events for {refused} refusals in {seconds:.1f}s"
    # Every refusal is counted by some event, except those after the last one was written.
    assert 0 < sum(e["detail"]["attempts"] for e in events) <= refused


def test_a_statement_held_past_the_pending_limit_is_refused_at_once(make_gateway: Any) -> None:
    held_rule = rule_toml("hold-deletes", "review", statements=["delete"], approvers=["dba"], timeout="60s")
    gw = make_gateway(held_rule + "\n[limits]\npending_approvals_per_user = 2\n")
    alice = gw.token("alice")
    with _connect(gw, "alice", alice) as setup:
        setup.execute("CREATE TABLE IF NOT EXISTS pending_t (id int)")
    waiting = [_connect(gw, "alice", alice) for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:
        holds = [pool.submit(conn.execute, "DELETE FROM pending_t WHERE id = 1") for conn in waiting]
        gw.audit("--action", "approval.request", until=lambda events: len(events) >= 2)
        with _connect(gw, "alice", alice) as third:
            started = time.monotonic()
            with pytest.raises(psycopg.Error, match=r"too many requests waiting for approval for alice \(limit 2\)"):
                third.execute("DELETE FROM pending_t WHERE id = 2")
            assert time.monotonic() - started < 2
            assert third.execute("SELECT 1").fetchone() == (1,)  # the session goes on
        for conn in waiting:
            conn.cancel()
        for hold in holds:
            with pytest.raises(psycopg.Error):
                hold.result(timeout=10)
    for conn in waiting:
        conn.close()
    refused = gw.audit("--action", "approval.request_refused", until=has_actions("approval.request_refused"))
    assert refused[0]["actor"] == "alice" and refused[0]["detail"]["reason"] == "pending_approvals_per_user"


def test_a_session_whose_recording_reaches_its_limit_is_ended(make_gateway: Any) -> None:
    gw = make_gateway("\n[limits]\nrecording_bytes_per_session = 65536\n")
    alice = gw.token("alice")
    raw = RawClient(gw.ports["postgres"], "alice", alice, "pg")
    ended: list[dict[str, str]] = []
    for _ in range(20):  # 10 kB of statement text each: the 7th passes 64 KiB
        assert not raw.run(f"SELECT '{'x' * 10_000}'".encode()).errors
        if select.select([raw.sock], [], [], 0.3)[0]:  # the gateway speaks first: it ends the session
            ended = raw.until_ready().errors
            break
    raw.close()
    assert ended and ended[0]["S"] == "FATAL", ended
    assert "recording reached its limit of 65536 bytes" in ended[0]["M"]
    with _connect(gw, "alice", alice) as fresh:  # a new session starts a new recording
        assert fresh.execute("SELECT 1").fetchone() == (1,)
    [event] = gw.audit("--action", "session.recording_limit", until=has_actions("session.recording_limit"))
    assert event["actor"] == "alice" and event["detail"]["limit"] == 65536
    sessions = gw.audit("--action", "session.end", until=lambda ev: any(e["detail"]["reason"] == "killed" for e in ev))
    assert any(
        e["detail"]["session"] == event["detail"]["session"] and e["detail"]["reason"] == "killed" for e in sessions
    )
