"""Upstream login against the real MariaDB, and the gateway-side token flow against real
clients (the stock `mariadb` client, PyMySQL, aiomysql) over a throwaway TLS server."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import socket
import ssl

import aiomysql
import pymysql
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from hoop.server.mysql import codec as c
from hoop.server.mysql import packets as p
from hoop.server.mysql.upstream import (
    MySQLTarget,
    UpstreamAuthFailed,
    UpstreamError,
    UpstreamUnavailable,
    connect_upstream,
)

pytestmark = pytest.mark.needs_mariadb


def _target(user, **kw: object) -> MySQLTarget:
    args: dict = {
        "host": "127.0.0.1",
        "port": 3306,
        "username": user.name,
        "password": user.password,
        "database": "test",
        "ssl": "disable",
        "name": "maria-test",
        "connect_timeout": 5,
    }
    args.update(kw)
    return MySQLTarget(**args)


async def _query(up, sql: str) -> list[list[bytes | None]]:
    """Run one text query on a logged-in upstream; returns the rows."""
    up.writer.write(c.encode_packet(p.build_com_query(sql), 0))
    framer = c.PacketFramer()
    framer.feed(up.leftover)
    packets: list[bytes] = []
    while True:
        while (pkt := framer.next()) is not None:
            packets.append(pkt[1])
        if packets and (p.is_err(packets[0]) or p.is_ok(packets[0])):
            break
        if len(packets) > 1 and p.is_result_end(packets[-1], up.capabilities):
            break
        framer.feed(await up.reader.read(65536))
    if p.is_err(packets[0]):
        raise AssertionError(p.parse_err(packets[0]).message)
    if p.is_ok(packets[0]):
        return []
    ncols = p.parse_column_count(packets[0])
    assert up.capabilities & c.CLIENT_DEPRECATE_EOF  # rows follow the column defs directly
    return [p.parse_text_row(r, ncols) for r in packets[1 + ncols : -1]]


async def test_login_native_password_and_query(mariadb_user, mariadb_root: pymysql.Connection) -> None:
    up = await connect_upstream(_target(mariadb_user))
    try:
        assert up.handshake.auth_plugin == "mysql_native_password"
        assert "MariaDB" in up.server_version and not up.server_version.startswith("5.5.5-")
        assert up.capabilities & c.CLIENT_PROTOCOL_41
        assert up.status & c.SERVER_STATUS_AUTOCOMMIT
        rows = await _query(up, "SELECT CURRENT_USER(), DATABASE(), CONNECTION_ID()")
        assert rows[0][0] == f"{mariadb_user.name}@127.0.0.1".encode()
        assert rows[0][1] == b"test"
        # The handshake's connection id is the server thread id (needed for KILL mapping).
        assert int(rows[0][2] or b"0") == up.connection_id
        with mariadb_root.cursor() as cur:
            cur.execute("SELECT USER FROM information_schema.PROCESSLIST WHERE ID = %s", (up.connection_id,))
            assert cur.fetchone() == (mariadb_user.name,)
    finally:
        await up.close()


async def test_wrong_password_is_auth_failure_without_secret(mariadb_user) -> None:
    wrong = "not-" + mariadb_user.password
    with pytest.raises(UpstreamAuthFailed) as info:
        await connect_upstream(_target(mariadb_user, password=wrong))
    text = str(info.value)
    assert info.value.code == 1045 and info.value.sqlstate == "28000"
    assert "maria-test" in text
    assert wrong not in text and mariadb_user.password not in text
    assert wrong not in repr(_target(mariadb_user, password=wrong))


async def test_tls_require_against_this_server(mariadb_user, mariadb_root: pymysql.Connection) -> None:
    with mariadb_root.cursor() as cur:
        cur.execute("SHOW VARIABLES LIKE 'have_ssl'")
        have_ssl = cur.fetchone()[1]
    target = _target(mariadb_user, ssl="require")
    if have_ssl == "YES":
        up = await connect_upstream(target)
        assert up.tls
        rows = await _query(up, "SHOW STATUS LIKE 'Ssl_version'")
        assert rows[0][1]
        await up.close()
    else:
        # This machine's MariaDB has TLS disabled: 'require' must refuse, 'prefer' falls back.
        with pytest.raises(UpstreamError, match="maria-test.*does not offer TLS"):
            await connect_upstream(target)
        up = await connect_upstream(_target(mariadb_user, ssl="prefer"))
        assert not up.tls
        await up.close()


def test_mariadb_has_no_caching_sha2_server_plugin(mariadb_root: pymysql.Connection) -> None:
    """Why caching_sha2 upstream login is proven against the token server below instead."""
    with mariadb_root.cursor() as cur:
        cur.execute("SELECT PLUGIN_NAME FROM information_schema.ALL_PLUGINS WHERE PLUGIN_TYPE = 'AUTHENTICATION'")
        names = {r[0] for r in cur.fetchall()}
    assert "mysql_native_password" in names
    assert "caching_sha2_password" not in names


async def test_unreachable_port_is_unavailable() -> None:
    with socket.socket() as s:  # a port that was free a moment ago and nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    target = MySQLTarget(host="127.0.0.1", port=port, password="s3cret-value", name="gone")
    with pytest.raises(UpstreamUnavailable) as info:
        await connect_upstream(target)
    assert "gone" in str(info.value) and "s3cret-value" not in str(info.value)


async def test_silent_server_times_out_as_unavailable() -> None:
    srv = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        with pytest.raises(UpstreamUnavailable, match="timed out"):
            await connect_upstream(MySQLTarget(host="127.0.0.1", port=port, connect_timeout=0.3))
    finally:
        srv.close()


# -- gateway side: real clients hand their token to hoop's ClearTokenAuth --


def _server_ctx(tls) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tls.cert, tls.key)
    return ctx


async def _mariadb_cli(port: int, user: str, token: str, *extra: str) -> tuple[int, str]:
    exe = shutil.which("mariadb") or shutil.which("mysql")
    if exe is None:
        pytest.fail("the mariadb client is required for this test")
    proc = await asyncio.create_subprocess_exec(
        exe,
        "--no-defaults",
        "-h127.0.0.1",
        f"-P{port}",
        f"-u{user}",
        f"-p{token}",
        *extra,
        "-e",
        "DO 1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    return proc.returncode or 0, (out + err).decode()


@pytest.mark.parametrize("good", [True, False])
async def test_mariadb_client_sends_token_over_tls(token_server_factory, tls_files, good: bool) -> None:
    srv = await token_server_factory(b"tok-123", _server_ctx(tls_files))
    rc, out = await _mariadb_cli(
        srv.port,
        "alice",
        "tok-123" if good else "tok-999",
        f"--ssl-ca={tls_files.cert}",
        "--ssl-verify-server-cert",
    )
    assert (rc == 0) is good, out
    if not good:
        assert "Access denied" in out
    assert [(x.user, x.tls, x.accepted) for x in srv.logins] == [(b"alice", True, good)]


async def test_pymysql_sends_token_over_tls(token_server_factory, tls_files) -> None:
    srv = await token_server_factory(b"tok-123", _server_ctx(tls_files))

    def login() -> None:
        conn = pymysql.connect(
            host="127.0.0.1",
            port=srv.port,
            user="bob",
            password="tok-123",
            ssl_ca=str(tls_files.cert),
            ssl_verify_identity=True,
        )
        conn.close()

    await asyncio.to_thread(login)
    assert [(x.user, x.tls, x.accepted) for x in srv.logins] == [(b"bob", True, True)]


async def test_aiomysql_sends_token_over_tls(token_server_factory, tls_files) -> None:
    srv = await token_server_factory(b"tok-123", _server_ctx(tls_files))
    ctx = ssl.create_default_context(cafile=str(tls_files.cert))
    conn = await aiomysql.connect(host="127.0.0.1", port=srv.port, user="carol", password="tok-123", ssl=ctx)
    conn.close()
    assert [(x.user, x.tls, x.accepted) for x in srv.logins] == [(b"carol", True, True)]


async def test_mariadb_client_without_tls_uses_rsa_public_key(token_server_factory) -> None:
    """libmariadb asks for the server's RSA key (0x02) by itself and encrypts the token."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    srv = await token_server_factory(b"tok-123", None, key)
    rc, out = await _mariadb_cli(srv.port, "dave", "tok-123", "--skip-ssl")
    assert rc == 0, out
    assert [(x.user, x.tls, x.accepted) for x in srv.logins] == [(b"dave", False, True)]


async def test_without_tls_or_key_the_token_is_refused(token_server_factory) -> None:
    srv = await token_server_factory(b"tok-123", None, None)
    rc, _out = await _mariadb_cli(srv.port, "erin", "tok-123", "--skip-ssl")
    assert rc != 0
    assert srv.logins == []  # the server never accepted a token sent in clear


# -- upstream caching_sha2_password, proven against the same token server --


async def test_upstream_caching_sha2_full_auth_over_tls(token_server_factory, tls_files) -> None:
    srv = await token_server_factory(b"pw-xyz", _server_ctx(tls_files))
    up = await connect_upstream(
        MySQLTarget(
            host="127.0.0.1",
            port=srv.port,
            username="gw",
            password="pw-xyz",
            ssl="verify-full",
            ssl_ca=str(tls_files.cert),
            name="fake",
        )
    )
    assert up.tls and up.connection_id == 4242
    await up.close()
    assert [(x.user, x.client_plugin, x.tls, x.accepted) for x in srv.logins] == [
        (b"gw", "caching_sha2_password", True, True)
    ]


async def test_upstream_caching_sha2_full_auth_with_a_pinned_rsa_key(token_server_factory, tmp_path) -> None:
    from hoop.server.mysql.auth import public_key_pem

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pinned = tmp_path / "server_key.pem"
    pinned.write_bytes(public_key_pem(key))
    srv = await token_server_factory(b"pw-xyz", None, key)
    target = MySQLTarget(
        host="127.0.0.1", port=srv.port, username="gw", password="pw-xyz", ssl="prefer", server_public_key=str(pinned)
    )
    up = await connect_upstream(target)
    assert not up.tls
    await up.close()
    with pytest.raises(UpstreamAuthFailed):
        await connect_upstream(dataclasses.replace(target, password="wrong"))
    # the key the server would hand out is never used: without a pinned one nothing is sent
    with pytest.raises(UpstreamError, match="not verified"):
        await connect_upstream(dataclasses.replace(target, server_public_key=None))
    assert [x.accepted for x in srv.logins] == [True, False]
