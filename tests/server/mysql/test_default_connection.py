"""Logins that name no database, and connection ids a client can kill with, through the real
`hoop serve` in front of the real MariaDB: `mariadb-dump`, the `mariadb` client's Ctrl-C
(its second connection names no database and sends `KILL QUERY <handshake id>`), and
`CONNECTION_ID()` used with `KILL` from a second session."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from support.gateway import GatewayProcess
from support.mariadb import gateway_ca, mysql_connection_toml, mysql_gateway, throwaway_database
from support.servers import missing

from hoop.core.config import ConfigError, parse_config

pytestmark = pytest.mark.needs_mariadb

USERS = """
[[users]]
name = "alice"
groups = ["dev"]

[[users]]
name = "bob"
groups = ["dev"]

[[users]]
name = "olga"
groups = ["dev", "ops"]

[[users]]
name = "oscar"
groups = ["dev", "ops"]
default_connection = "my2"
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, str]]:
    """alice and bob reach one MySQL connection (`my`); olga and oscar two (`my`, `my2`),
    oscar with a default."""
    with throwaway_database(
        "hoop_dc", "CREATE TABLE pets (id INT PRIMARY KEY, name VARCHAR(20))", "INSERT INTO pets VALUES (1, 'rex')"
    ) as db:
        body = USERS + mysql_connection_toml(db) + mysql_connection_toml(db, name="my2").replace('["dev"]', '["ops"]')
        with mysql_gateway(tmp_path_factory.mktemp("dcgw"), body, users=("alice", "bob", "olga", "oscar")) as g:
            yield g, db


def _connect(gw: GatewayProcess, user: str = "alice", database: str | None = None) -> pymysql.Connection:
    return pymysql.connect(
        host="127.0.0.1",
        port=gw.ports["mysql"],
        user=user,
        password=gw.tokens[user],
        database=database,
        autocommit=True,
        connect_timeout=10,
        ssl={"ca": gateway_ca(gw), "check_hostname": False},
    )


def _one(conn: pymysql.Connection, sql: str) -> Any:
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()[0]


def test_login_without_database_uses_the_users_only_mysql_connection(gw: tuple[GatewayProcess, str]) -> None:
    g, db = gw
    conn = _connect(g)
    assert _one(conn, "SELECT DATABASE()") == db
    assert _one(conn, "SELECT name FROM pets") == "rex"
    conn.close()
    oscar = _connect(g, "oscar")  # two connections, one named as the default
    assert _one(oscar, "SELECT DATABASE()") == db
    audit = g.audit("--action", "session.start", until=lambda ev: any(e.get("target") == "my2" for e in ev))
    assert any(e.get("target") == "my2" and e.get("actor") == "oscar" for e in audit), audit
    oscar.close()


def test_login_without_database_and_no_single_connection_is_refused_with_the_reason(
    gw: tuple[GatewayProcess, str],
) -> None:
    g, _ = gw
    with pytest.raises(pymysql.err.OperationalError) as err:
        _connect(g, "olga")
    assert err.value.args[0] == 1044
    assert "no database named" in err.value.args[1] and "2 MySQL connections" in err.value.args[1]
    assert "default_connection" in err.value.args[1]


def test_use_of_another_connection_name_does_not_switch_connections(gw: tuple[GatewayProcess, str]) -> None:
    g, db = gw
    conn = _connect(g, "olga", "my")
    with pytest.raises(pymysql.err.OperationalError):
        conn.select_db("my2")  # COM_INIT_DB: a schema upstream, never another connection
    with pytest.raises(pymysql.err.OperationalError):
        _one(conn, "USE my2")
    assert _one(conn, "SELECT DATABASE()") == db
    conn.close()


def test_mariadb_dump_of_a_table_through_the_gateway(gw: tuple[GatewayProcess, str]) -> None:
    g, db = gw
    if not shutil.which("mariadb-dump"):
        missing("mariadb-dump is needed (package mariadb-client)")
    cmd = ["mariadb-dump", "-h", "127.0.0.1", "-P", str(g.ports["mysql"]), "-u", "alice"]
    cmd += [f"-p{g.tokens['alice']}", "--ssl", f"--ssl-ca={gateway_ca(g)}", "--ssl-verify-server-cert=0", db, "pets"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "CREATE TABLE `pets`" in result.stdout
    assert "INSERT INTO `pets` VALUES" in result.stdout and "'rex'" in result.stdout


def test_connection_id_kills_from_a_second_session_of_the_same_user_only(gw: tuple[GatewayProcess, str]) -> None:
    g, _ = gw
    victim, killer, stranger = _connect(g, database="my"), _connect(g), _connect(g, "bob")
    own_id = _one(victim, "SELECT CONNECTION_ID()")
    with pytest.raises(pymysql.err.OperationalError) as refused:
        _one(stranger, f"KILL QUERY {own_id}")  # another user's session: unknown, as for any id
    assert refused.value.args[0] == 1094

    def kill() -> None:
        time.sleep(0.5)
        killer.cursor().execute(f"KILL QUERY {own_id}")

    killing = threading.Thread(target=kill)
    killing.start()
    started = time.monotonic()
    with pytest.raises(pymysql.err.OperationalError) as err:
        _one(victim, "SELECT SLEEP(30)")
    killing.join(10)
    assert err.value.args[0] == 1317 and time.monotonic() - started < 5
    assert _one(victim, "SELECT 42") == 42  # only the query was killed
    killer.cursor().execute(f"KILL {own_id}")
    with pytest.raises(pymysql.err.OperationalError):
        _one(victim, "SELECT 1")
    for conn in (killer, stranger):
        conn.close()


class _Pane:
    def __init__(self, name: str, argv: list[str]) -> None:
        self.name = name
        subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "160", "-y", "40", *argv], check=True)
        # a client that exits leaves its last screen readable
        subprocess.run(["tmux", "set-option", "-t", name, "remain-on-exit", "on"], check=True)

    def text(self) -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name], capture_output=True, text=True).stdout

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def type_line(self, text: str) -> None:
        # tmux reads an argument's trailing ';' as its command separator: a space keeps it text
        subprocess.run(["tmux", "send-keys", "-t", self.name, "-l", text + " "], check=True)
        self.keys("Enter")

    def wait_for(self, needle: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in (screen := self.text()):
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{needle!r} not on screen after {timeout}s:\n{self.text()}")

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


def test_mariadb_client_ctrl_c_cancels_the_query_and_stays_usable(
    gw: tuple[GatewayProcess, str], tmp_path: Path
) -> None:
    g, _ = gw
    if not shutil.which("tmux") or not shutil.which("mariadb"):
        missing("tmux and the mariadb client are needed (scripts/test.sh installs them)")
    options = tmp_path / "my.cnf"  # the token in a file, not on tmux's command line
    options.write_text(f"[client]\npassword={g.tokens['alice']}\n")
    argv = ["mariadb", f"--defaults-extra-file={options}", "-h", "127.0.0.1", "-P", str(g.ports["mysql"])]
    argv += ["-u", "alice", "--ssl", f"--ssl-ca={gateway_ca(g)}", "--ssl-verify-server-cert=0", "my"]
    pane = _Pane(f"hoop-ctrlc-{tmp_path.name[-12:]}", argv)
    try:
        pane.wait_for("MariaDB [")
        pane.type_line("SELECT SLEEP(30);")
        time.sleep(1.0)
        started = time.monotonic()
        pane.keys("C-c")
        screen = pane.wait_for("Query execution was interrupted", timeout=8)
        assert time.monotonic() - started < 8
        assert "sorry, cannot connect" not in screen
        pane.type_line("SELECT 40 + 2 AS answer;")
        assert re.search(r"\|\s+42 \|", pane.wait_for("1 row in set"))
    finally:
        pane.close()


def test_default_connection_must_name_a_mysql_connection_the_user_may_use(tmp_path: Path) -> None:
    base = """
[[connections]]
name = "pg"
type = "postgres"
host = "127.0.0.1"
username = "app"
groups = ["dev"]

[[connections]]
name = "my"
type = "mysql"
host = "127.0.0.1"
username = "app"
groups = ["ops"]
"""
    for value, problem in (("nosuch", "no such connection"), ("pg", "a postgres connection"), ("my", "may not use")):
        raw = {
            "users": [{"name": "alice", "groups": ["dev"], "default_connection": value}],
            "connections": [],
        }
        raw["connections"] = tomllib.loads(base)["connections"]
        with pytest.raises(ConfigError) as err:
            parse_config(raw, tmp_path / "hoop.toml", resolve_secrets=False)
        assert "users[0].default_connection" in str(err.value) and problem in str(err.value)
