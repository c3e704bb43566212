"""Two gateways on one PostgreSQL store: a session served by A replays through B's
configuration (`hoop replay`, the TUI's history and timeline, `hoop audit verify
--recordings`), although B's recordings_dir never saw a byte of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from support.gateway import USERS_TOML, GatewayProcess, write_config
from support.pgstore import store_database
from support.postgres import pg_connection_toml

from hoop.core.config import load_config
from hoop.tui.data import History
from hoop.tui.timeline import DbTimeline, open_timeline


@pytest.fixture
def two(tmp_path: Path, pg_target: dict[str, str]) -> Iterator[tuple[GatewayProcess, GatewayProcess, str]]:
    with store_database() as dsn:
        gateways = []
        for name in ("a", "b"):
            root = tmp_path / name
            root.mkdir()
            settings = f'store = "postgresql://postgres:${{STORE_PASSWORD}}@{dsn.split("@", 1)[1]}"\nname = "{name}"\n'
            gw = write_config(root, USERS_TOML + pg_connection_toml(pg_target), settings=settings)
            gw.env.update(HOOP_TEST_PG_PASSWORD=pg_target["password"], STORE_PASSWORD="unused-trust")
            gateways.append(gw)
        gateways[0].start()
        try:
            yield gateways[0], gateways[1], dsn
        finally:
            gateways[0].stop()


def test_a_session_on_gateway_a_replays_through_gateway_b(
    two: tuple[GatewayProcess, GatewayProcess, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b, dsn = two
    token = a.token("alice")
    result = a.psql("alice", token, "SELECT 'shared-replay-canary' AS x")
    assert "shared-replay-canary" in result.stdout, result.stderr
    a.audit("--action", "session.end", until=lambda events: bool(events))
    with psycopg.connect(dsn) as conn:
        sid = conn.execute("SELECT max(id) FROM sessions WHERE gateway = 'a'").fetchone()[0]  # type: ignore[index]

    assert not any((a.root / "recordings").glob("*.hoop.jsonl"))  # in the store, not on A's disk
    replay = b.cli("replay", str(sid))
    assert "SELECT 'shared-replay-canary' AS x" in replay.stdout
    assert "-> SELECT 1, 1 row" in replay.stdout

    for var in ("STORE_PASSWORD", "HOOP_TEST_PG_PASSWORD"):
        monkeypatch.setenv(var, b.env[var])
    config = load_config(b.config)  # the TUI opened on B's configuration
    history = History.open(config.gateway.store_target, config.gateway.recordings_dir)
    try:
        session = history.session(sid)
        assert session is not None
        timeline = open_timeline(history.copies, session)
        assert isinstance(timeline, DbTimeline)
        assert any("shared-replay-canary" in line for line in timeline.view(len(timeline.frames), 50))
        assert "shared-replay-canary" in str(history.sample_rows(sid).rows)
    finally:
        history.store.close()
