"""Before login: connections per source address, the pre-auth timeout, and accept loops that
survive running out of file descriptors (a real `hoop serve` driven to its descriptor limit)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import psycopg
import pymysql
import pytest
from support.gateway import GatewayProcess
from support.mariadb import mysql_connection_toml
from support.postgres import pg_connection_toml
from support.servers import free_port
from support.waiting import eventually

pytestmark = pytest.mark.needs_postgres


def _two_doors(make_gateway: Any, pg_target: dict[str, str], limits: str) -> GatewayProcess:
    gw: GatewayProcess = make_gateway(
        f"\n[limits]\n{limits}\n",
        connections=pg_connection_toml(pg_target) + mysql_connection_toml("test"),
        listen={"postgres": free_port(), "mysql": free_port()},
    )
    return gw


def _raw(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    return sock


def _greeted(sock: socket.socket) -> bool:
    """Whether the MySQL door sent its handshake (False: it closed the connection)."""
    try:
        return len(sock.recv(4096)) > 0
    except ConnectionResetError:
        return False


def _mysql_login(gw: GatewayProcess, token: str) -> None:
    conn = pymysql.connect(
        host="127.0.0.1",
        port=gw.ports["mysql"],
        user="alice",
        password=token,
        database="my",
        ssl_disabled=True,
        connect_timeout=5,
        read_timeout=10,
    )
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    conn.close()


def _pg_login(gw: GatewayProcess, token: str) -> None:
    with psycopg.connect(gw.dsn("alice", token), connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_connections_still_logging_in_are_limited_per_source(make_gateway: Any, pg_target: dict[str, str]) -> None:
    gw = _two_doors(make_gateway, pg_target, "preauth_per_source = 8\npreauth_timeout = 2")
    token = gw.token("alice")
    port = gw.ports["mysql"]
    with ExitStack() as stack:
        idle = [stack.enter_context(_raw(port)) for _ in range(8)]
        assert all(_greeted(s) for s in idle)
        refused = stack.enter_context(_raw(port))
        started = time.monotonic()
        assert not _greeted(refused)  # closed at once, not left to time out
        assert time.monotonic() - started < 1
        other = stack.enter_context(_raw(port, "127.0.0.2"))  # another address is served
        assert _greeted(other)
        # The idle ones are closed by the pre-auth timeout, which frees the address's slots.
        for sock in idle:
            sock.settimeout(6)
            assert sock.recv(4096) == b""
        _mysql_login(gw, token)
    assert "still logging in (preauth_per_source)" in gw.log()


def _succeeds(login: Any, gw: GatewayProcess, token: str) -> None:
    try:
        login(gw, token)
    except (pymysql.err.OperationalError, psycopg.OperationalError) as exc:
        raise AssertionError(f"login failed: {exc}") from exc


@contextmanager
def _descriptor_limit(pid: int, headroom: int) -> Iterator[int]:
    """Lower the process's RLIMIT_NOFILE to what it has open now plus `headroom`."""
    in_use = len(os.listdir(f"/proc/{pid}/fd"))
    limit = in_use + headroom
    subprocess.run(["prlimit", f"--pid={pid}", f"--nofile={limit}:{limit}"], check=True)
    yield limit


def test_every_door_accepts_again_after_the_process_ran_out_of_descriptors(
    make_gateway: Any, pg_target: dict[str, str]
) -> None:
    gw = _two_doors(make_gateway, pg_target, "preauth_per_source = 100000")
    token = gw.token("alice")
    _mysql_login(gw, token)
    _pg_login(gw, token)
    assert gw.proc is not None
    with _descriptor_limit(gw.proc.pid, 40) as limit, ExitStack() as stack:
        for port in (gw.ports["mysql"], gw.ports["postgres"]):
            for _ in range(limit):
                stack.enter_context(_raw(port))

        def out_of_descriptors() -> None:
            assert "cannot accept connections" in gw.log()

        eventually(out_of_descriptors)
        time.sleep(0.5)  # both doors keep trying while every descriptor is taken
    # The raw connections are closed: both doors serve real logins again.
    eventually(lambda: _succeeds(_mysql_login, gw, token), timeout=15)
    eventually(lambda: _succeeds(_pg_login, gw, token), timeout=15)
    assert "accepting connections again" in gw.log()
    assert gw.proc.poll() is None
