"""Two gateways deciding the same request at the same moment through one PostgreSQL store:
the store takes one decision, the other approver is told nothing changed."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from support.postgres import PG_HOST, PG_PORT

from hoop.core.approvals import Approvals, DecisionRefused
from hoop.core.identity import Identity
from hoop.core.secrets import Secret
from hoop.core.store.postgres import PostgresStore

pytestmark = pytest.mark.needs_postgres


@pytest.fixture
def dsn(pg_admin: Any) -> Iterator[str]:
    db = f"hoop_store_{secrets.token_hex(4)}"
    pg_admin.execute(f"CREATE DATABASE {db}")
    yield f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{db}"
    pg_admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def request(store: PostgresStore, required: int) -> int:
    now = time.time()
    row = store.query(
        "INSERT INTO approvals(session_id, user, connection, statement, rule, approvers, required, status, "
        "created, expires, gateway) VALUES (1, 'alice', 'pg', 'update t set v = 1', 'hold', ?, ?, 'pending', ?, ?, "
        "'a') RETURNING id",
        (json.dumps(["dba"]), required, now, now + 60),
    )
    return int(row[0]["id"])


@pytest.mark.parametrize("required", [1, 2])
def test_simultaneous_decisions_through_two_gateways_count_once(dsn: str, required: int) -> None:
    store = PostgresStore(Secret(dsn))
    try:
        approval_id = request(store, required)
        gateways = {name: Approvals(store.reopen(), lambda *a, **k: None, gateway=name) for name in ("b", "c")}
        deciders = {"b": Identity("bob", frozenset({"dba"})), "c": Identity("carol", frozenset({"dba"}))}
        answers: dict[str, Any] = {}

        def decide(gateway: str) -> None:
            try:
                answers[gateway] = gateways[gateway].decide(approval_id, deciders[gateway], True)
            except DecisionRefused as exc:
                answers[gateway] = exc

        # Both read the request, then both writes wait on a row lock held here; released, the
        # second write finds the request no longer as it was read.
        with psycopg.connect(dsn) as lock:
            lock.execute("SELECT id FROM approvals WHERE id = %s FOR UPDATE", (approval_id,))
            threads = [threading.Thread(target=decide, args=(g,)) for g in gateways]
            for t in threads:
                t.start()
            deadline = time.monotonic() + 10
            waiting = (
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            while lock.execute(waiting).fetchone()[0] < 2:  # type: ignore[index]
                assert time.monotonic() < deadline, "the two decisions never met at the lock"
                time.sleep(0.02)
            lock.rollback()
        for t in threads:
            t.join(10)
        refused = [a for a in answers.values() if isinstance(a, DecisionRefused)]
        taken = [a for a in answers.values() if isinstance(a, dict)]
        assert len(refused) == 1 and len(taken) == 1, answers
        assert "meanwhile" in str(refused[0]) or "changed while you decided" in str(refused[0])
        row = store.one("SELECT status, decisions FROM approvals WHERE id = ?", (approval_id,))
        assert row is not None and len(json.loads(row["decisions"])) == 1
        assert row["status"] == ("approved" if required == 1 else "pending")
        for approvals in gateways.values():
            approvals.store.close()
    finally:
        store.close()
