"""The database doors refuse a login user name that names no one (empty, not UTF-8, white
space, a control or invisible character, too long) before any credential is checked, with
the reason, audited as a login failure; the gateway goes on serving. The SSH door's side is
in tests/server/ssh/test_login_names.py; the rule is `hoop.core.identity.name_problem`."""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from support.doors import Records
from support.gateway import ALICE, GatewayProcess
from support.mariadb import mysql_connection_toml, mysql_gateway, through, throwaway_database
from support.pgwire import RawClient
from support.waiting import eventually

REFUSED = [
    (b"", "no user name given"),
    (b"al\xffice", "the user name is not valid UTF-8"),
    (b" alice", "the user name contains white space"),
    (b"alice\x1b[2J", "the user name contains a control or invisible character (U+001B)"),
    (b"a" * 256, "the user name is longer than 255 characters"),
]
IDS = [reason for _, reason in REFUSED]


def failure(gw: GatewayProcess, door: str, reason: str) -> dict[str, Any]:
    """The one audited login failure of `door` with `reason`."""

    def audited() -> dict[str, Any]:
        rows = Records(gw).query("SELECT * FROM audit WHERE action = 'login.failure' AND target = ?", door)
        found = [r for r in rows if json.loads(r["detail"]).get("reason") == reason]
        assert len(found) == 1, rows
        return found[0]

    return eventually(audited)


def recorded_name(event: dict[str, Any]) -> bytes:
    """The refused name as the audit keeps it: its text, or its exact bytes where it was not UTF-8."""
    detail = json.loads(event["detail"])
    undecodable = detail.get("undecodable", {})
    return bytes.fromhex(undecodable["user"]) if "user" in undecodable else detail["user"].encode()


# -- PostgreSQL ------------------------------------------------------------------------------


def pg_startup(port: int, user: bytes) -> dict[str, str]:
    """Send a StartupMessage for `user` and return the fields of the ErrorResponse it gets."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        body = struct.pack("!I", 196608) + b"user\0" + user + b"\0database\0pg\0\0"
        sock.sendall(struct.pack("!I", len(body) + 4) + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data[:1] == b"E", data
    size = struct.unpack("!I", data[1:5])[0]
    return {chr(f[0]): f[1:].decode("utf-8", "replace") for f in data[5 : 1 + size].split(b"\0") if f}


@pytest.fixture
def pg_gw(make_gateway):  # type: ignore[no-untyped-def]
    return make_gateway()


@pytest.mark.needs_postgres
@pytest.mark.parametrize(("user", "reason"), REFUSED, ids=IDS)
def test_postgres_refuses_a_user_name_that_names_no_one(pg_gw, user: bytes, reason: str) -> None:  # type: ignore[no-untyped-def]
    error = pg_startup(pg_gw.ports["postgres"], user)
    assert error["S"] == "FATAL" and error["C"] == "28000", error
    assert error["M"] == f"{reason}: connect with your Hoop user name"
    event = failure(pg_gw, "postgres", reason)
    assert event["actor"] == "-"
    assert recorded_name(event) == user
    # the gateway goes on: alice logs in with her own name
    client = RawClient(pg_gw.ports["postgres"], "alice", pg_gw.token("alice"), "pg")
    assert client.run(b"SELECT 'still serving'").rows == [[b"still serving"]]
    client.close()


# -- MySQL -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with throwaway_database("hoop_names") as name:
        yield name


@pytest.fixture
def my_gw(tmp_path: Path, database: str) -> Iterator[GatewayProcess]:
    with mysql_gateway(tmp_path, ALICE + mysql_connection_toml(database)) as gateway:
        yield gateway


@pytest.mark.needs_mariadb
@pytest.mark.parametrize(("user", "reason"), REFUSED, ids=IDS)
def test_mysql_refuses_a_user_name_that_names_no_one(my_gw: GatewayProcess, user: bytes, reason: str) -> None:
    conn = pymysql.connect(
        host="127.0.0.1",
        port=my_gw.ports["mysql"],
        password=my_gw.tokens["alice"],
        database="my",
        ssl_disabled=True,
        connect_timeout=10,
        defer_connect=True,
    )
    conn.user = user  # sent as it is (connect() would take an empty name for the local user's)
    with pytest.raises(pymysql.err.OperationalError) as refused:
        conn.connect()
    assert refused.value.args == (1045, f"Access denied: {reason}")
    event = failure(my_gw, "mysql", reason)
    assert event["actor"] == "-"
    assert recorded_name(event) == user
    conn = through(my_gw)  # the gateway goes on: alice logs in with her own name
    with conn.cursor() as cur:
        cur.execute("SELECT 'still serving'")
        assert cur.fetchall() == (("still serving",),)
    conn.close()
