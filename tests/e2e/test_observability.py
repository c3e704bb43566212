"""What an operator watches: the gateway log (text and JSON lines) and the HTTP listener's
/healthz, /readyz and /metrics, scraped with a real HTTP client against a real `hoop serve`."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.disk import fill, small_disk
from support.gateway import USERS_TOML, GatewayProcess, write_config
from support.postgres import connect_target, pg_connection_toml
from support.servers import free_port
from support.waiting import eventually

pytestmark = pytest.mark.needs_postgres

RULES = """
[[rules]]
name = "obs-no-drops"
action = "block"
statements = ["drop table"]

[[rules]]
name = "obs-hold-updates"
action = "review"
statements = ["update"]
tables = ["obs_accounts"]
approvers = ["dba"]
timeout = "1s"
"""
CANARY_TOKEN = "CANARY-token-7f3a9c"  # a wrong credential that must never be written to the log


def _gateway(tmp_path: Path, pg_target: dict[str, str], settings: str = "", name: str = "gw") -> GatewayProcess:
    with connect_target(pg_target) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS obs_accounts (id int PRIMARY KEY, balance int)")
    root = tmp_path / name
    root.mkdir()
    listen = {"postgres": free_port(), "http": free_port()}
    gw = write_config(root, USERS_TOML + pg_connection_toml(pg_target) + RULES, listen=listen, settings=settings)
    gw.env["HOOP_TEST_PG_PASSWORD"] = pg_target["password"]
    return gw


def _get(gw: GatewayProcess, path: str, method: str = "GET") -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{gw.ports['http']}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _samples(body: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def _block_hold_and_bad_login(gw: GatewayProcess, pg_target: dict[str, str]) -> None:
    token = gw.token("alice")
    with psycopg.connect(gw.dsn("alice", token), autocommit=True) as conn:
        conn.execute("select 1")
        with pytest.raises(psycopg.Error, match="obs-no-drops"):
            conn.execute("drop table obs_accounts")
        with pytest.raises(psycopg.Error, match="not approved in time"):
            conn.execute("update obs_accounts set balance = 1")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(gw.dsn("alice", CANARY_TOKEN), connect_timeout=10)


def test_health_and_metrics_count_a_block_and_a_hold(tmp_path: Path, pg_target: dict[str, str]) -> None:
    gw = _gateway(tmp_path, pg_target)
    gw.start()
    try:
        assert _get(gw, "/healthz")[0] == 200
        status, body = _get(gw, "/readyz")
        assert status == 200, body
        _block_hold_and_bad_login(gw, pg_target)

        def counted() -> dict[Any, float]:
            samples = _samples(_get(gw, "/metrics")[1])
            assert samples[("hoop_statements_total", frozenset({("decision", "block")}))] == 1
            assert samples[("hoop_statements_total", frozenset({("decision", "review:expired")}))] == 1
            assert samples[("hoop_statements_total", frozenset({("decision", "allow")}))] >= 1
            return samples

        samples = eventually(counted)
        assert samples[("hoop_login_failures_total", frozenset({("door", "postgres"), ("reason", "credential")}))] == 1
        assert samples[("hoop_approval_decision_seconds_count", frozenset())] == 1
        assert samples[("hoop_approvals_waiting", frozenset())] == 0
        pg_door = frozenset({("door", "postgres"), ("connection", "pg")})
        assert samples[("hoop_upstream_connect_seconds_count", pg_door)] >= 1
        assert ("hoop_journal_records_waiting", frozenset()) in samples
        assert ("hoop_journal_write_failures_total", frozenset()) in samples
        with psycopg.connect(gw.dsn("alice", gw.token("alice")), autocommit=True):
            open_now = _samples(_get(gw, "/metrics")[1])
            assert open_now[("hoop_sessions_open", pg_door)] == 1
        # Bad requests are answered and leave the doors alone.
        assert _get(gw, "/nothing-here")[0] == 404
        assert _get(gw, "/metrics", method="POST")[0] == 405
        with socket.create_connection(("127.0.0.1", gw.ports["http"]), timeout=10) as raw:
            raw.sendall(b"\x16\x03\x01 not http\r\n\r\n")
            assert raw.recv(100).startswith(b"HTTP/1.1 400 ")
        with psycopg.connect(gw.dsn("alice", gw.token("alice")), autocommit=True) as conn:
            assert conn.execute("select 2").fetchone() == (2,)
    finally:
        gw.stop()


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_the_log_names_a_login_failure_a_block_and_a_hold_and_no_secret(
    tmp_path: Path, pg_target: dict[str, str], log_format: str
) -> None:
    gw = _gateway(tmp_path, pg_target, settings=f'log_format = "{log_format}"\n')
    gw.start()
    try:
        _block_hold_and_bad_login(gw, pg_target)

        def logged() -> str:
            log = gw.log()
            assert "obs-hold-updates" in log and "expired" in log
            return log

        log = eventually(logged)
    finally:
        gw.stop()
    assert CANARY_TOKEN not in log and pg_target["password"] not in log
    lines = [line for line in log.splitlines() if line.strip()]
    if log_format == "json":
        # Every line, the journal writer's too, is one JSON object (the start marker aside).
        events = [json.loads(line) for line in lines if line != "hoop gateway ready"]
        assert all({"time", "level", "logger", "message"} <= set(e) for e in events)
        by_event = {e.get("event"): e for e in events}
        failure = by_event["login.failure"]
        assert failure["level"] == "WARNING" and failure["user"] == "alice" and failure["door"] == "postgres"
        assert failure["reason"]
        block = by_event["statement.block"]
        assert block["level"] == "WARNING" and block["rule"] == "obs-no-drops" and block["user"] == "alice"
        hold = by_event["approval.request"]
        assert hold["level"] == "INFO" and hold["rule"] == "obs-hold-updates"
        assert by_event["approval.expired"]["approval"] == hold["approval"]
        assert by_event["session.start"]["level"] == "INFO"
    else:
        assert any("WARNING" in line and "login failed" in line and "alice" in line for line in lines), log
        assert any("WARNING" in line and "blocked" in line and "obs-no-drops" in line for line in lines), log
        assert any("INFO" in line and "held" in line and "obs-hold-updates" in line for line in lines), log


def test_readyz_says_503_while_records_cannot_be_stored(tmp_path: Path, pg_target: dict[str, str]) -> None:
    gw = _gateway(tmp_path, pg_target)
    with small_disk(tmp_path / "disk", "16m") as disk:
        (gw.root / "data").symlink_to(disk)
        gw.start()
        try:
            assert _get(gw, "/readyz")[0] == 200
            token = gw.token("alice")
            conn = psycopg.connect(gw.dsn("alice", token), autocommit=True)
            filler = fill(disk)

            def unready() -> None:
                try:
                    conn.execute(f"select {time.monotonic()} as {'x' * 200}")
                except psycopg.Error:
                    pass
                status, body = _get(gw, "/readyz")
                assert status == 503 and "recording" in body, body
                assert _get(gw, "/healthz")[0] == 200

            eventually(unready, timeout=20)
            samples = _samples(_get(gw, "/metrics")[1])
            assert samples[("hoop_journal_write_failures_total", frozenset())] >= 1
            filler.unlink()

            def ready_again() -> None:
                assert _get(gw, "/readyz")[0] == 200

            eventually(ready_again, timeout=20)
            conn.close()
        finally:
            gw.stop()


@pytest.mark.needs_mariadb
def test_the_mysql_door_is_counted_and_logged_alike(tmp_path: Path) -> None:
    from support import mariadb

    with mariadb.throwaway_database("obs", "CREATE TABLE obs_items (id int)") as database:
        body = USERS_TOML + mariadb.mysql_connection_toml(database) + RULES
        gw = write_config(tmp_path, body, listen={"mysql": free_port(), "http": free_port()})
        gw.start()
        try:
            gw.issue_tokens("alice")
            with mariadb.through(gw) as conn, conn.cursor() as cur:
                cur.execute("select 1")
                with pytest.raises(pymysql.err.MySQLError, match="obs-no-drops"):
                    cur.execute("drop table obs_items")
            with pytest.raises(pymysql.err.OperationalError):
                pymysql.connect(
                    host="127.0.0.1", port=gw.ports["mysql"], user="alice", password=CANARY_TOKEN, ssl_disabled=True
                )

            def counted() -> None:
                samples = _samples(_get(gw, "/metrics")[1])
                assert samples[("hoop_statements_total", frozenset({("decision", "block")}))] == 1
                failures = frozenset({("door", "mysql"), ("reason", "credential")})
                assert samples[("hoop_login_failures_total", failures)] == 1
                my_door = frozenset({("door", "mysql"), ("connection", "my")})
                assert samples[("hoop_upstream_connect_seconds_count", my_door)] >= 1

            eventually(counted)
        finally:
            gw.stop()
    log = gw.log()
    assert "blocked by rule obs-no-drops" in log and "login failed for alice on mysql" in log, log
    assert CANARY_TOKEN not in log
