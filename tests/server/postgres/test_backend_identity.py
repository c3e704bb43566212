"""A client of the PostgreSQL door sees its real backend: the PID in BackendKeyData is the
upstream backend's, so `backend_pid`, `pg_backend_pid()` and notification PIDs agree, while the
cancel key stays the gateway's own secret. A cancel is acknowledged (the cancel socket closed)
only once the server has handled it, as the server itself does, so a late cancel never hits
the next statement. Everything runs through a real `hoop serve` against the real server.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

pytestmark = pytest.mark.needs_postgres

CANCEL_CODE = 80877102


@pytest.fixture
def gw(make_gateway):  # type: ignore[no-untyped-def]
    g = make_gateway()
    g.issue_tokens("alice", "bob")
    return g


def _connect(gw: Any, user: str = "alice") -> psycopg.Connection[Any]:
    return psycopg.connect(gw.dsn(user, gw.tokens[user]), autocommit=True)


def test_a_cancelled_idle_session_runs_its_next_statement(gw) -> None:  # type: ignore[no-untyped-def]
    """libpq waits for the cancel socket to close before it returns; closing it before the
    server signalled the backend let the signal land on the next statement."""
    hit = 0
    with _connect(gw) as conn:
        for _ in range(50):
            conn.cancel_safe(timeout=10)
            try:
                conn.execute("SELECT 1").fetchone()
            except psycopg.errors.QueryCanceled:
                hit += 1
    assert hit == 0, f"{hit} of 50 statements were cancelled by the cancel sent before them"
