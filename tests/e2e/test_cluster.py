"""Two gateways sharing one PostgreSQL store act as one: tokens, approvals, rules, kills."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.cluster import Cluster, cluster, json_rows, wait_for
from support.postgres import connect_target, on_server

from hoop.control_client import ControlClient, ControlError

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
"""


@pytest.fixture
def two(tmp_path: Path, pg_admin: Any, pg_target: dict[str, str]) -> Iterator[Cluster]:
    with connect_target(pg_target) as conn:
        conn.execute("DROP TABLE IF EXISTS accounts")
        conn.execute("CREATE TABLE accounts (id int PRIMARY KEY, balance int)")
        conn.execute("INSERT INTO accounts VALUES (1, 0), (2, 0), (3, 0)")
    with cluster(tmp_path, pg_admin, pg_target, RULES) as made:
        made.target = pg_target  # type: ignore[attr-defined]
        yield made


def psql(gw: Any, token: str, sql: str, user: str = "alice") -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["psql", f"host=127.0.0.1 port={gw.ports['postgres']} user={user} dbname=pg sslmode=disable", "-X", "-c", sql],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PGPASSWORD": token, "PGCONNECT_TIMEOUT": "10"},
    )


def pending_on(gw: Any, count: int = 1) -> list[dict[str, Any]]:
    return list(wait_for(lambda: (rows := json_rows(gw, "approvals")) and len(rows) >= count and rows, what="a hold"))


def balance(made: Cluster, account: int) -> int:
    return int(on_server(made.target, f"SELECT balance FROM accounts WHERE id = {account}")[0][0])  # type: ignore[attr-defined]


def test_a_token_issued_through_one_gateway_logs_in_through_the_other(two: Cluster) -> None:
    token = two["a"].token("alice")
    done = two["b"].psql("alice", token, "SELECT 41 + 1 AS answer")
    assert done.returncode == 0, done.stderr
    assert "42" in done.stdout


def test_a_statement_held_on_a_is_approved_through_b_and_runs_at_once(two: Cluster) -> None:
    a, b = two["a"], two["b"]
    alice, bob = a.token("alice"), a.token("bob")
    held = psql(a, alice, "UPDATE accounts SET balance = 7 WHERE id = 1")
    try:
        request = pending_on(b)[0]  # listed through B although A holds it
        assert request["gateway"] == "a" and request["rule"] == "hold-updates"
        assert [r["id"] for r in json_rows(a, "approvals")] == [request["id"]]
        time.sleep(1.5)  # past one re-check: the wake-up below is the notification's
        out = b.cli("approve", str(request["id"]), "--reason", "fine", env={"HOOP_TOKEN": bob})
        decided = time.monotonic()
        assert f"#{request['id']} approved" in out.stdout
        stdout, stderr = held.communicate(timeout=10)
        took = time.monotonic() - decided
    finally:
        held.kill()
    assert held.returncode == 0, stderr
    assert "UPDATE 1" in stdout
    assert took < 1.0, f"the held statement ran {took:.2f}s after the decision"
    assert balance(two, 1) == 7
    # both gateways list the session A carried, and the request as approved
    for gw in (a, b):
        sessions = json_rows(gw, "sessions")
        assert any(s["gateway"] == "a" and s["user"] == "alice" for s in sessions)
        assert [r["status"] for r in json_rows(gw, "approvals", "--all") if r["id"] == request["id"]] == ["approved"]
    # decided once: another decision is refused, naming the request's state
    again = b.cli("approve", str(request["id"]), env={"HOOP_TOKEN": bob}, check=False)
    assert again.returncode != 0 and "no longer pending (status approved)" in again.stderr


def test_a_denial_through_b_reaches_the_client_on_a(two: Cluster) -> None:
    a, b = two["a"], two["b"]
    alice, bob = a.token("alice"), b.token("bob")
    held = psql(a, alice, "UPDATE accounts SET balance = 9 WHERE id = 2")
    try:
        request = pending_on(b)[0]
        own = b.cli("deny", str(request["id"]), "--reason", "mine", env={"HOOP_TOKEN": alice}, check=False)
        assert own.returncode != 0 and "own request" in own.stderr
        b.cli("deny", str(request["id"]), "--reason", "not on a Monday", env={"HOOP_TOKEN": bob})
        _, stderr = held.communicate(timeout=10)
    finally:
        held.kill()
    assert "not on a Monday" in stderr
    assert balance(two, 2) == 0


def test_two_approvals_through_two_gateways_release_a_hold(two: Cluster) -> None:
    a, b = two["a"], two["b"]
    alice, bob, carol = a.token("alice"), a.token("bob"), a.token("carol")
    held = psql(b, alice, "DELETE FROM accounts WHERE id = 3")
    try:
        request = pending_on(a)[0]
        first = a.cli("approve", str(request["id"]), env={"HOOP_TOKEN": bob})
        assert "1 of 2 approvals" in first.stdout
        twice = b.cli("approve", str(request["id"]), env={"HOOP_TOKEN": bob}, check=False)
        assert twice.returncode != 0 and "already approved" in twice.stderr
        assert held.poll() is None
        b.cli("approve", str(request["id"]), env={"HOOP_TOKEN": carol})
        stdout, stderr = held.communicate(timeout=10)
    finally:
        held.kill()
    assert "DELETE 1" in stdout, stderr
    approved = [r for r in json_rows(a, "approvals", "--all") if r["id"] == request["id"]]
    assert approved[0]["status"] == "approved" and sorted(approved[0]["decisions"]) == ["bob", "carol"]


def test_a_rule_added_through_b_blocks_on_a_within_a_second(two: Cluster) -> None:
    a, b = two["a"], two["b"]
    alice = a.token("alice")
    assert a.psql("alice", alice, "SELECT balance FROM accounts WHERE id = 1").returncode == 0
    b.admin("rules", "add", "guard", input='name = "no-accounts"\naction = "block"\ntables = ["accounts"]\n')
    added = time.monotonic()

    def blocked() -> bool:
        done = a.psql("alice", alice, "SELECT balance FROM accounts WHERE id = 1")
        return "no-accounts" in done.stderr

    wait_for(blocked, timeout=5, what="the rule added through B blocking on A")
    assert time.monotonic() - added < 1.5


def test_a_session_on_a_is_listed_and_killed_through_b(two: Cluster) -> None:
    a, b = two["a"], two["b"]
    alice, bob = a.token("alice"), a.token("bob")
    victim = psql(a, alice, "SELECT pg_sleep(30)")
    try:
        session = wait_for(
            lambda: [s for s in json_rows(b, "sessions") if s["status"] == "open" and s["gateway"] == "a"],
            what="A's session listed through B",
        )[0]
        # B's control endpoint lists A's session, and asks A about its moderation
        control = ControlClient(b.root / "data" / "control.sock", bob)
        assert any(s["id"] == session["id"] and s["gateway"] == "a" for s in control.call("live"))
        assert control.call("moderate", id=session["id"]) == {"id": session["id"], "moderated": False}
        outsider = ControlClient(b.root / "data" / "control.sock", b.token("mallory"))
        assert not [s for s in outsider.call("live") if s["id"] == session["id"]]
        with pytest.raises(ControlError, match="outside what you may watch"):
            outsider.call("moderate", id=session["id"])
        refused = b.cli("kill", str(session["id"]), "--reason", "no", "--token", alice, check=False)
        assert refused.returncode == 1 and "only admins and approvers may kill sessions" in refused.stderr
        assert victim.poll() is None
        started = time.monotonic()
        b.cli("kill", str(session["id"]), "--reason", "runaway query", "--token", bob)
        _, err = victim.communicate(timeout=10)
    finally:
        victim.kill()
    assert time.monotonic() - started < 3
    assert "terminated by an administrator: runaway query" in err
    kills = b.audit("--action", "session.kill", until=bool)
    assert kills and kills[0]["actor"] == "bob" and kills[0]["detail"]["reason"] == "runaway query"
    ended = wait_for(lambda: [s for s in json_rows(a, "sessions") if s["id"] == session["id"] and s["ended"]])
    assert ended[0]["status"] == "killed"


def test_a_decision_whose_notification_was_lost_still_wakes_the_hold(two: Cluster) -> None:
    a = two["a"]
    held = psql(a, a.token("alice"), "UPDATE accounts SET balance = 5 WHERE id = 1")
    try:
        request = pending_on(a)[0]
        # decided in the store with no notification at all: only the re-check can find it
        two.store(
            "UPDATE approvals SET status = 'denied', reason = 'decided while nobody listened', "
            "decisions = '[\"bob\"]', decided = extract(epoch from now()) WHERE id = %s",
            (request["id"],),
        )
        written = time.monotonic()
        _, stderr = held.communicate(timeout=10)
        took = time.monotonic() - written
    finally:
        held.kill()
    assert "decided while nobody listened" in stderr
    assert took < 2.0, f"the hold ended {took:.2f}s after the stored decision"
    assert balance(two, 1) == 0


def test_a_gateway_that_loses_its_listening_connection_listens_again(two: Cluster) -> None:
    a, b = two["a"], two["b"]
    listening = "SELECT pid FROM pg_stat_activity WHERE application_name = 'hoop-listen' AND datname = %s"
    assert len(wait_for(lambda: two.store(listening, (two.store_db,)), what="listeners")) == 2
    two.store(f"SELECT pg_terminate_backend(pid) FROM ({listening}) l", (two.store_db,))
    wait_for(lambda: len(two.store(listening, (two.store_db,))) == 2, timeout=5, what="listening again")
    held = psql(a, a.token("alice"), "UPDATE accounts SET balance = 3 WHERE id = 3")
    try:
        request = pending_on(b)[0]
        b.cli("approve", str(request["id"]), env={"HOOP_TOKEN": b.token("bob")})
        stdout, stderr = held.communicate(timeout=10)
    finally:
        held.kill()
    assert "UPDATE 1" in stdout, stderr
    assert "listening for other gateways failed" in a.log()


def test_a_grant_given_through_b_lets_the_next_statement_through_on_a(two: Cluster) -> None:
    a, b = two["a"], two["b"]
    alice, bob = a.token("alice"), a.token("bob")
    held = psql(a, alice, "UPDATE accounts SET balance = 1 WHERE id = 2")
    try:
        request = pending_on(b)[0]
        b.cli("approve", str(request["id"]), "--grant", "10m", env={"HOOP_TOKEN": bob})
        stdout, stderr = held.communicate(timeout=10)
    finally:
        held.kill()
    assert "UPDATE 1" in stdout, stderr
    again = a.psql("alice", alice, "UPDATE accounts SET balance = 2 WHERE id = 2", timeout=5)
    assert again.returncode == 0 and "UPDATE 1" in again.stdout, again.stderr
    assert balance(two, 2) == 2
    assert len(json_rows(b, "approvals", "--all")) == 1  # the second statement was not held


def test_a_kill_with_a_reason_too_long_to_forward_is_refused_clearly(two: Cluster) -> None:
    a, b = two["a"], two["b"]
    victim = psql(a, a.token("alice"), "SELECT pg_sleep(20)")
    try:
        session = wait_for(
            lambda: [s for s in json_rows(b, "sessions") if s["status"] == "open" and s["gateway"] == "a"],
            what="A's session listed through B",
        )[0]
        refused = b.cli("kill", str(session["id"]), "--reason", "x" * 9000, "--token", b.token("bob"), check=False)
        assert refused.returncode == 1 and "too long to pass to gateway a" in refused.stderr
        assert victim.poll() is None
    finally:
        victim.kill()


def test_three_gateways_each_reach_the_one_that_holds_or_carries(
    tmp_path: Path, pg_admin: Any, pg_target: dict[str, str]
) -> None:
    with connect_target(pg_target) as conn:
        conn.execute("DROP TABLE IF EXISTS accounts")
        conn.execute("CREATE TABLE accounts (id int PRIMARY KEY, balance int)")
        conn.execute("INSERT INTO accounts VALUES (1, 0)")
    with cluster(tmp_path, pg_admin, pg_target, RULES, names=("a", "b", "c")) as three:
        a, b, c = three["a"], three["b"], three["c"]
        alice, bob = a.token("alice"), b.token("bob")
        held = psql(a, alice, "UPDATE accounts SET balance = 4 WHERE id = 1")
        victim = psql(b, alice, "SELECT pg_sleep(30)")
        try:
            request = pending_on(c)[0]
            c.cli("approve", str(request["id"]), env={"HOOP_TOKEN": bob})
            stdout, stderr = held.communicate(timeout=10)
            assert "UPDATE 1" in stdout, stderr
            session = wait_for(
                lambda: [s for s in json_rows(c, "sessions") if s["status"] == "open" and s["gateway"] == "b"],
                what="B's session listed through C",
            )[0]
            c.cli("kill", str(session["id"]), "--reason", "from c", "--token", bob)
            _, err = victim.communicate(timeout=10)
            assert "terminated by an administrator: from c" in err
        finally:
            held.kill()
            victim.kill()
