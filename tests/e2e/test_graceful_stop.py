"""Stopping the gateway with SIGTERM: no new connection is taken, open sessions have
`[gateway] shutdown_grace` to finish, those left are ended with the protocol's own shutdown
error, the journal keeps everything, and the process exits 0."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest
from support import mariadb
from support.doors import Ssh, uniform_gateway
from support.gateway import GatewayProcess
from support.mariadb import mysql_connection_toml, throwaway_database
from support.postgres import pg_connection_toml
from support.servers import free_port, port_open
from support.sshd import keygen, throwaway_sshd
from support.waiting import eventually

pytestmark = [pytest.mark.needs_postgres]
Make = Callable[..., GatewayProcess]


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with throwaway_database("stop") as name:
        yield name


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(4) as workers:
        yield workers


def gateway(make_gateway: Make, pg_target: dict[str, str], database: str, grace: str | None) -> GatewayProcess:
    """pg and my for alice; `shutdown_grace` as given (None: the default)."""
    gw = make_gateway(
        connections=pg_connection_toml(pg_target) + mysql_connection_toml(database),
        listen={"postgres": free_port(), "mysql": free_port()},
        start=False,
    )
    if grace is not None:
        setting = f'[gateway]\nshutdown_grace = "{grace}"\n'
        gw.config.write_text(gw.config.read_text().replace("[gateway]\n", setting, 1))
    gw.start()
    gw.issue_tokens("alice")
    return gw


def run_pg(gw: GatewayProcess, sql: str) -> Any:
    with psycopg.connect(gw.dsn("alice", gw.tokens["alice"]), autocommit=True, connect_timeout=10) as conn:
        return conn.execute(sql).fetchall()


def run_mysql(gw: GatewayProcess, sql: str) -> Any:
    conn = mariadb.through(gw)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


def running(pg_admin: Any, text: str) -> None:
    """Wait until the PostgreSQL server runs `text`."""

    def check() -> None:
        rows = pg_admin.execute("SELECT 1 FROM pg_stat_activity WHERE query = %s", (text,)).fetchall()
        assert rows, f"{text!r} is not running"

    eventually(check)


def stored(gw: GatewayProcess, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(gw.root / "data" / "hoop.db") as db:
        return db.execute(sql).fetchall()


def test_sigterm_lets_a_running_statement_finish_and_loses_nothing(
    make_gateway: Make, pg_target: dict[str, str], database: str, pg_admin: Any, pool: ThreadPoolExecutor
) -> None:
    gw = gateway(make_gateway, pg_target, database, None)  # the default grace: 30s
    sleep = "select pg_sleep(2), 'stop-finishes'"
    answer: Future[Any] = pool.submit(run_pg, gw, sleep)
    running(pg_admin, sleep)
    started = time.monotonic()
    gw.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
    # No door takes a new connection while the session finishes.
    eventually(lambda: _closed(gw.ports["mysql"]))
    assert _closed(gw.ports["postgres"])

    assert answer.result(timeout=20) == [("", "stop-finishes")]
    assert gw.proc.wait(timeout=20) == 0  # type: ignore[union-attr]
    assert time.monotonic() - started < 20  # it did not wait for the whole grace period
    statements = stored(gw, "SELECT decision, error, rows FROM statements WHERE text LIKE '%stop-finishes%'")
    assert statements == [("allow", "", 1)]
    assert stored(gw, "SELECT status FROM sessions WHERE user = 'alice'") == [("closed",)]
    actions = [a for (a,) in stored(gw, "SELECT action FROM audit ORDER BY id")]
    assert actions.index("session.end") < actions.index("gateway.stop")
    detail = json.loads(stored(gw, "SELECT detail FROM audit WHERE action = 'gateway.stop'")[0][0])
    assert (detail["sessions_open"], detail["finished_in_grace"], detail["ended_by_shutdown"]) == (1, 1, [])


def _closed(port: int) -> bool:
    assert not port_open("127.0.0.1", port, 0.2), f"port {port} still accepts"
    return True


def test_sessions_left_after_the_grace_period_get_the_shutdown_error(
    make_gateway: Make, pg_target: dict[str, str], database: str, pg_admin: Any, pool: ThreadPoolExecutor
) -> None:
    gw = gateway(make_gateway, pg_target, database, "1s")
    pg_long, my_long = "select pg_sleep(30), 'stop-cut'", "SELECT SLEEP(30), 'stop-cut-my'"
    pg_answer: Future[Any] = pool.submit(run_pg, gw, pg_long)
    my_answer: Future[Any] = pool.submit(mariadb.mariadb_client, gw, "alice", my_long, tls=False)
    running(pg_admin, pg_long)
    eventually(lambda: _mysql_runs(my_long))
    gw.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]

    with pytest.raises(psycopg.OperationalError) as pg_error:
        pg_answer.result(timeout=20)
    assert pg_error.value.sqlstate == "57P01"
    assert "the gateway is shutting down" in str(pg_error.value)
    mysql_client = my_answer.result(timeout=20)
    assert mysql_client.returncode != 0
    assert "1053" in mysql_client.stderr and "the gateway is shutting down" in mysql_client.stderr, mysql_client.stderr
    assert gw.proc.wait(timeout=20) == 0  # type: ignore[union-attr]

    assert stored(gw, "SELECT status FROM sessions WHERE user = 'alice'") == [("shutdown",), ("shutdown",)]
    cut = stored(gw, "SELECT text FROM statements WHERE text LIKE '%stop-cut%' ORDER BY text")
    assert [t for (t,) in cut] == [my_long, pg_long]  # nothing lost: the cut statements are recorded
    detail = json.loads(stored(gw, "SELECT detail FROM audit WHERE action = 'gateway.stop'")[0][0])
    assert (detail["sessions_open"], detail["finished_in_grace"], len(detail["ended_by_shutdown"])) == (2, 0, 2)
    assert "ending 2 session(s) still open after the grace period" in gw.log()


def _mysql_runs(text: str) -> None:
    root = pymysql.connect(**mariadb.ROOT, autocommit=True)
    try:
        with root.cursor() as cur:
            cur.execute("SELECT 1 FROM information_schema.processlist WHERE info = %s", (text,))
            assert cur.fetchall(), f"{text!r} is not running"
    finally:
        root.close()


def test_an_ssh_command_left_after_the_grace_period_is_told_on_stderr(
    tmp_path: Path, pg_target: dict[str, str], database: str
) -> None:
    key = tmp_path / "alice_key"
    public = keygen(key)
    (tmp_path / "sshd").mkdir()
    with throwaway_sshd(tmp_path / "sshd") as sshd:
        (tmp_path / "gw").mkdir()
        gw = uniform_gateway(tmp_path / "gw", public, pg_target, database, sshd)
        gw.config.write_text(gw.config.read_text().replace("[gateway]\n", '[gateway]\nshutdown_grace = "1s"\n', 1))
        gw.start()
        try:
            ssh = subprocess.Popen(
                Ssh(gw, key).argv("alice+web@127.0.0.1", "sleep 30.5"),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            eventually(lambda: _live(gw))
            gw.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
            _, stderr = ssh.communicate(timeout=20)
            assert ssh.returncode == 126
            assert "hoop: session ended by the gateway: the gateway is shutting down" in stderr
            assert gw.proc.wait(timeout=20) == 0  # type: ignore[union-attr]
            assert stored(gw, "SELECT status FROM sessions WHERE protocol = 'ssh'") == [("shutdown",)]
        finally:
            gw.stop()


def _live(gw: GatewayProcess) -> None:
    assert stored(gw, "SELECT id FROM sessions WHERE ended IS NULL"), "no session is open yet"
