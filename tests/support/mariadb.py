"""The local MariaDB (root without a password) for end-to-end tests: a database of a test
module's own, the `[[connections]]` entry and gateway that lead to it, sessions through the
gateway's MySQL door, and reads made directly on the server."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pymysql

from support.gateway import GatewayProcess, write_config
from support.servers import free_port, missing

ROOT = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}


@contextmanager
def throwaway_database(prefix: str, *statements: str) -> Iterator[str]:
    """Create `<prefix>_<random>`, run `statements` in it, yield its name, drop it afterwards.
    A server that does not answer is a failure under CI and a skip elsewhere."""
    try:
        root = pymysql.connect(**ROOT, autocommit=True, connect_timeout=5)
    except pymysql.err.OperationalError as exc:
        missing(f"MariaDB not available: {exc}")
    name = f"{prefix}_{secrets.token_hex(4)}"
    try:
        with root.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}`")
            cur.execute(f"USE `{name}`")  # MariaDB's seq_1_to_N tables are there too
            for sql in statements:
                cur.execute(sql)
        yield name
    finally:
        with root.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        root.close()


@contextmanager
def throwaway_user(prefix: str, database: str, password: str | None = None) -> Iterator[tuple[str, str]]:
    """Create `<prefix>_<random>`@127.0.0.1 with every right on `database` and yield its name and
    password (`password`, or a random one); drop the user afterwards."""
    name, password = f"{prefix}_{secrets.token_hex(4)}", password or secrets.token_urlsafe(16)
    root = pymysql.connect(**ROOT, autocommit=True, connect_timeout=5)
    try:
        with root.cursor() as cur:
            cur.execute("CREATE USER %s@'127.0.0.1' IDENTIFIED BY %s", (name, password))
            cur.execute(f"GRANT ALL ON `{database}`.* TO %s@'127.0.0.1'", (name,))
        yield name, password
    finally:
        with root.cursor() as cur:
            cur.execute("DROP USER IF EXISTS %s@'127.0.0.1'", (name,))
        root.close()


def mysql_connection_toml(
    database: str | None,
    *,
    name: str = "my",
    username: str = "root",
    password: str | None = None,
    port: int = 3306,
    sslmode: str | None = "disable",
    extra: str = "",
) -> str:
    """A `[[connections]]` entry for the local MariaDB, open to group `dev`. `password` is
    written as given (an environment reference such as `${VAR}`); None writes none, as does
    `database` and `sslmode` (None leaves the default, verify-full, which the local server
    without TLS fails; "disable" is what it needs)."""
    lines = [
        "",
        "[[connections]]",
        f'name = "{name}"',
        'type = "mysql"',
        'host = "127.0.0.1"',
        f"port = {port}",
        f'username = "{username}"',
    ]
    if password is not None:
        lines.append(f'password = "{password}"')
    if database is not None:
        lines.append(f'database = "{database}"')
    if sslmode is not None:
        lines.append(f'sslmode = "{sslmode}"')
    lines.append('groups = ["dev"]')
    return "\n".join(lines) + "\n" + extra


@contextmanager
def mysql_gateway(
    root: Path, body: str, *, users: tuple[str, ...] = ("alice",), env: dict[str, str] | None = None
) -> Iterator[GatewayProcess]:
    """`hoop serve` with config `body` and a MySQL door on a free port, started with `env`
    added, a token issued for each of `users`; stopped afterwards."""
    gw = write_config(root, body, listen={"mysql": free_port()})
    gw.env.update(env or {})
    try:
        gw.start()
        gw.issue_tokens(*users)
        yield gw
    finally:
        gw.stop()


def gateway_ca(gw: GatewayProcess) -> str:
    """The gateway's own TLS certificate (self-signed, its own CA)."""
    return str(gw.root / "data" / "tls.crt")


def through(
    gw: GatewayProcess, user: str = "alice", database: str = "my", *, tls: bool = False, **kw: Any
) -> pymysql.Connection:
    """A PyMySQL session through the gateway's MySQL door as `user` (token from `gw.tokens`),
    autocommit; `tls` verifies the gateway's own certificate, otherwise TLS is off."""
    secure: dict[str, Any] = {"ssl": {"ca": gateway_ca(gw), "check_hostname": False}} if tls else {"ssl_disabled": True}
    return pymysql.connect(
        host="127.0.0.1",
        port=gw.ports["mysql"],
        user=user,
        password=gw.tokens[user],
        database=database,
        autocommit=True,
        connect_timeout=10,
        **secure,
        **kw,
    )


def mariadb_client(
    gw: GatewayProcess, user: str, sql: str, *args: str, tls: bool = True
) -> subprocess.CompletedProcess[str]:
    """The `mariadb` command-line client through the gateway's MySQL door as `user` into the
    connection `my`, running `sql` (`args` go before the database name); its output is kept in
    `gw.outputs`."""
    secure = ["--ssl", f"--ssl-ca={gateway_ca(gw)}", "--ssl-verify-server-cert=0"] if tls else ["--skip-ssl"]
    cmd = ["mariadb", "-h", "127.0.0.1", "-P", str(gw.ports["mysql"]), "-u", user, f"-p{gw.tokens[user]}"]
    result = subprocess.run([*cmd, *secure, *args, "my", "-e", sql], capture_output=True, text=True, timeout=60)
    gw.outputs += [result.stdout, result.stderr]
    return result


def on_server(database: str, sql: str) -> tuple[tuple[Any, ...], ...]:
    """The rows of `sql` run as root directly on the server (not through the gateway)."""
    conn = pymysql.connect(**ROOT, database=database, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return tuple(cur.fetchall())
    finally:
        conn.close()


def rows_on_server(database: str, table: str) -> int:
    """How many rows `table` holds, counted directly on the server."""
    return int(on_server(database, f"SELECT COUNT(*) FROM {table}")[0][0])
