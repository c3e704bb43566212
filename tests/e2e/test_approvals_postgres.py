"""Statements held for approval inside live psql sessions, decided from other processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import psycopg
import pytest
from support.postgres import connect_target, on_server

pytestmark = pytest.mark.needs_postgres

RULES = """
[[rules]]
name = "hold-updates"
action = "review"
statements = ["update"]
tables = ["accounts"]
approvers = ["dba"]
timeout = "30s"

[[rules]]
name = "two-man-delete"
action = "review"
statements = ["delete"]
tables = ["accounts"]
approvers = ["dba"]
approvals = 2
timeout = "30s"

[[rules]]
name = "quick-insert"
action = "review"
statements = ["insert"]
tables = ["accounts"]
approvers = ["dba"]
timeout = "2s"
"""


@pytest.fixture
def gw(make_gateway, pg_target):  # type: ignore[no-untyped-def]
    with connect_target(pg_target) as conn:
        conn.execute("DROP TABLE IF EXISTS accounts")
        conn.execute("CREATE TABLE accounts (id int PRIMARY KEY, balance int, updated_at timestamptz)")
        conn.execute("INSERT INTO accounts VALUES (1, 0, NULL), (2, 0, NULL), (3, 0, NULL)")
    gateway = make_gateway(RULES)
    gateway.direct = lambda sql: on_server(pg_target, sql)  # type: ignore[attr-defined]
    return gateway


def _psql(gw, user: str, token: str, sql: str) -> subprocess.Popen[str]:  # type: ignore[no-untyped-def]
    return subprocess.Popen(
        ["psql", f"host=127.0.0.1 port={gw.ports['postgres']} user={user} dbname=pg sslmode=disable", "-X", "-c", sql],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PGPASSWORD": token},
    )


def _wait_pending(gw, count: int = 1, timeout: float = 10.0) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = json.loads(gw.cli("approvals", "--json").stdout)
        if len(pending) >= count:
            return pending
        time.sleep(0.1)
    raise AssertionError("no approval request appeared")


def _status(gw, approval_id: object) -> str:  # type: ignore[no-untyped-def]
    rows = json.loads(gw.cli("approvals", "--json", "--all").stdout)
    return next(r["status"] for r in rows if r["id"] == approval_id)


def test_approve_runs_the_statement_within_a_second(gw) -> None:  # type: ignore[no-untyped-def]
    alice, bob = gw.token("alice"), gw.token("bob")
    held = _psql(gw, "alice", alice, "UPDATE accounts SET balance = 10, updated_at = clock_timestamp() WHERE id = 1")
    [request] = _wait_pending(gw)
    assert (
        request["user"] == "alice" and request["rule"] == "hold-updates" and "UPDATE accounts" in request["statement"]
    )
    assert gw.direct("SELECT balance FROM accounts WHERE id = 1") == [(0,)]  # not sent upstream while held
    gw.cli("approve", str(request["id"]), "--token", bob, "--reason", "ticket 42")
    out, err = held.communicate(timeout=10)
    assert "UPDATE 1" in out
    assert f"held for approval #{request['id']} by rule hold-updates; waiting up to 30s" in err
    decided = next(r for r in json.loads(gw.cli("approvals", "--json", "--all").stdout) if r["id"] == request["id"])
    assert decided["status"] == "approved" and decided["decisions"] == ["bob"]
    [(updated_at,)] = gw.direct("SELECT extract(epoch FROM updated_at)::float8 FROM accounts WHERE id = 1")
    assert 0 <= updated_at - decided["decided"] < 1.0


def test_deny_shows_reason_and_self_approval_is_refused(gw) -> None:  # type: ignore[no-untyped-def]
    bob, carol = gw.token("bob"), gw.token("carol")
    held = _psql(gw, "bob", bob, "UPDATE accounts SET balance = 99 WHERE id = 2")
    [request] = _wait_pending(gw)
    own = gw.cli("approve", str(request["id"]), "--token", bob, check=False)
    assert own.returncode == 1 and "cannot decide on your own request" in own.stderr
    alice = gw.token("alice")
    outsider = gw.cli("approve", str(request["id"]), "--token", alice, check=False)
    assert outsider.returncode == 1 and "only members of dba may decide" in outsider.stderr
    gw.cli("deny", str(request["id"]), "--token", carol, "--reason", "not during the freeze")
    _, err = held.communicate(timeout=10)
    assert "denied: not during the freeze" in err
    assert gw.direct("SELECT balance FROM accounts WHERE id = 2") == [(0,)]


def test_timeout_denies_with_57014(gw) -> None:  # type: ignore[no-untyped-def]
    token = gw.token("alice")
    with psycopg.connect(gw.dsn("alice", token), autocommit=True) as conn:
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled, match="not approved in time"):
            conn.execute("INSERT INTO accounts VALUES (10, 1, NULL)")
        assert 1.9 < time.monotonic() - started < 5
        assert conn.execute("SELECT count(*) FROM accounts").fetchone() == (3,)


def test_cancel_withdraws_and_disconnect_abandons(gw) -> None:  # type: ignore[no-untyped-def]
    token = gw.token("alice")
    held = _psql(gw, "alice", token, "UPDATE accounts SET balance = 5 WHERE id = 3")
    [request] = _wait_pending(gw)
    held.send_signal(signal.SIGINT)  # psql sends a CancelRequest
    _, err = held.communicate(timeout=10)
    assert "cancelled while held" in err
    assert _status(gw, request["id"]) == "cancelled"

    held = _psql(gw, "alice", token, "UPDATE accounts SET balance = 6 WHERE id = 3")
    [request] = _wait_pending(gw)
    held.kill()  # the client vanishes without a word
    held.communicate()
    deadline = time.monotonic() + 5
    while _status(gw, request["id"]) != "abandoned":
        assert time.monotonic() < deadline, "request not marked abandoned"
        time.sleep(0.1)
    later = gw.cli("approve", str(request["id"]), "--token", gw.token("bob"), check=False)
    assert later.returncode == 1 and "no longer pending" in later.stderr
    assert gw.direct("SELECT balance FROM accounts WHERE id = 3") == [(0,)]


def test_two_of_two_approvals(gw) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol = gw.token("alice"), gw.token("bob"), gw.token("carol")
    held = _psql(gw, "alice", alice, "DELETE FROM accounts WHERE id = 2")
    [request] = _wait_pending(gw)
    first = gw.cli("approve", str(request["id"]), "--token", bob).stdout
    assert "1 of 2 approvals" in first
    again = gw.cli("approve", str(request["id"]), "--token", bob, check=False)
    assert again.returncode == 1 and "needs another approver" in again.stderr
    time.sleep(0.3)
    assert held.poll() is None and gw.direct("SELECT count(*) FROM accounts") == [(3,)]
    gw.cli("approve", str(request["id"]), "--token", carol)
    out, _ = held.communicate(timeout=10)
    assert "DELETE 1" in out
    assert gw.direct("SELECT count(*) FROM accounts") == [(2,)]


def test_time_boxed_grant_lets_later_statements_through(gw) -> None:  # type: ignore[no-untyped-def]
    alice, bob = gw.token("alice"), gw.token("bob")
    held = _psql(gw, "alice", alice, "UPDATE accounts SET balance = 1 WHERE id = 1")
    [request] = _wait_pending(gw)
    gw.cli("approve", str(request["id"]), "--token", bob, "--grant", "30m")
    assert "UPDATE 1" in held.communicate(timeout=10)[0]
    with psycopg.connect(gw.dsn("alice", alice), autocommit=True) as conn:
        started = time.monotonic()
        for balance in (2, 3):
            assert conn.execute("UPDATE accounts SET balance = %s WHERE id = 1", (balance,)).rowcount == 1
        assert time.monotonic() - started < 1.0
    assert gw.direct("SELECT balance FROM accounts WHERE id = 1") == [(3,)]
    # the grant is alice's alone: bob's update is still held
    other = _psql(gw, "bob", bob, "UPDATE accounts SET balance = 7 WHERE id = 2")
    [request] = _wait_pending(gw)
    assert request["user"] == "bob"
    gw.cli("deny", str(request["id"]), "--token", gw.token("carol"), "--reason", "no")
    other.communicate(timeout=10)
    events = gw.audit(until=lambda events: [e["action"] for e in events].count("grant.use") >= 2)
    actions = [e["action"] for e in events]
    assert "grant.create" in actions and actions.count("grant.use") == 2
    assert "approval.request" in actions and "approval.approve" in actions


def test_restart_expires_pending_requests(gw) -> None:  # type: ignore[no-untyped-def]
    token = gw.token("alice")
    held = _psql(gw, "alice", token, "UPDATE accounts SET balance = 42 WHERE id = 1")
    [request] = _wait_pending(gw)
    gw.restart()
    held.communicate(timeout=10)
    assert _status(gw, request["id"]) == "expired"
    late = gw.cli("approve", str(request["id"]), "--token", gw.token("bob"), check=False)
    assert late.returncode == 1
    assert gw.direct("SELECT balance FROM accounts WHERE id = 1") == [(0,)]
