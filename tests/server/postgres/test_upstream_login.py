"""Upstream login against real PostgreSQL servers (the local one and a throwaway TLS cluster)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from _cluster import Cluster, free_port

from hoop.server.postgres import codec, framing, frontend
from hoop.server.postgres.upstream import (
    UpstreamAuthFailed,
    UpstreamError,
    UpstreamSession,
    UpstreamTarget,
    UpstreamTLSFailed,
    UpstreamTLSRequired,
    UpstreamUnavailable,
    connect_upstream,
)

pytestmark = pytest.mark.needs_postgres


def _target(cluster: Cluster, user: str, **kw: object) -> UpstreamTarget:
    """A target verified as the default sslmode (verify-full) asks: the cluster's certificate
    names 'localhost' and is its own CA."""
    fields = dict(
        host="localhost",
        sslrootcert=cluster.cafile,
        port=cluster.port,
        database="test",
        username=user,
        password=cluster.passwords.get(user),
        name="orders-db",
    )
    fields.update(kw)
    return UpstreamTarget(**fields)  # type: ignore[arg-type]


async def _scalar(session: UpstreamSession, sql: str) -> str | None:
    """Run one simple query on a logged-in session and return the first column of row one."""
    session.writer.write(frontend.query(sql))
    await session.writer.drain()
    framer = framing.MessageFramer()
    framer.feed(session.leftover)
    value: str | None = None
    while True:
        msg = framer.next()
        if msg is None:
            chunk = await session.reader.read(65536)
            assert chunk, "server closed the connection"
            framer.feed(chunk)
            continue
        mtype, raw = msg
        if mtype == ord("D") and value is None:
            first = codec.parse_data_row(raw[5:])[0]
            value = None if first is None else first.decode()
        elif mtype == ord("E"):
            raise AssertionError(codec.parse_error_fields(raw[5:]))
        elif mtype == ord("Z"):
            return value


async def test_trust_login_on_local_server_passes_startup_params(local_pg: tuple[str, int]) -> None:
    host, port = local_pg
    target = UpstreamTarget(host, port, "test", "postgres", None, sslmode="disable", name="local")
    params = {"user": "mallory", "database": "other", "application_name": "hoop-test", "DateStyle": "ISO, DMY"}
    session = await connect_upstream(target, params)
    try:
        assert session.tls is False and session.auth_method == "trust"
        assert session.backend_pid > 0
        assert session.parameters["application_name"] == "hoop-test"
        assert session.parameters["DateStyle"] == "ISO, DMY"
        # user and database come from the target, never from the client's startup packet
        assert await _scalar(session, "select current_user || '/' || current_database()") == ("postgres/test")
        assert await _scalar(session, "select pg_backend_pid()::text") == str(session.backend_pid)
    finally:
        await session.close()


@pytest.mark.parametrize(
    ("user", "method"),
    [("md5_user", "md5"), ("scram_user", "scram-sha-256-plus"), ("clear_user", "password")],
)
async def test_password_methods_log_in(pg_cluster: Cluster, user: str, method: str) -> None:
    session = await connect_upstream(_target(pg_cluster, user), {})
    try:
        assert session.auth_method == method
        assert session.tls is True
        assert await _scalar(session, "select current_user") == user
    finally:
        await session.close()


def test_md5_role_really_stores_an_md5_hash(pg_cluster: Cluster) -> None:
    # Otherwise the server would silently upgrade the md5 hba line to SCRAM.
    out = pg_cluster.psql("select left(rolpassword, 3) from pg_authid where rolname='md5_user'")
    assert out.strip() == "md5"


@pytest.mark.parametrize("user", ["md5_user", "scram_user", "clear_user"])
async def test_wrong_password_is_auth_failure_without_leaking_it(pg_cluster: Cluster, user: str) -> None:
    secret = "Wr0ng-" + pg_cluster.passwords[user]
    with pytest.raises(UpstreamAuthFailed) as info:
        await connect_upstream(_target(pg_cluster, user, password=secret), {})
    assert info.value.sqlstate == "28P01"
    text = str(info.value)
    assert "orders-db" in text and "password authentication failed" in text
    assert secret not in text and secret not in repr(info.value)


async def test_server_message_echoing_the_password_is_scrubbed(pg_cluster: Cluster) -> None:
    # A role name equal to the password makes the server echo it in its error message.
    secret = "s3cret-as-role-name"
    target = _target(pg_cluster, secret, password=secret, sslmode="disable")
    with pytest.raises(UpstreamError) as info:
        await connect_upstream(target, {})
    assert secret not in str(info.value)
    assert "********" in str(info.value)


async def test_missing_password_is_reported_without_contacting_auth(pg_cluster: Cluster) -> None:
    with pytest.raises(UpstreamAuthFailed, match="no password is stored"):
        await connect_upstream(_target(pg_cluster, "scram_user", password=None), {})


async def test_unreachable_port_is_unavailable() -> None:
    target = UpstreamTarget("127.0.0.1", free_port(), "test", "u", "pw", name="gone-db")
    with pytest.raises(UpstreamUnavailable) as info:
        await connect_upstream(target, {})
    assert info.value.sqlstate == "08006"
    assert "gone-db" in str(info.value) and "cannot connect" in str(info.value)


async def test_silent_server_times_out() -> None:
    # A listener that accepts and never answers: login must give up after connect_timeout.
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    target = UpstreamTarget("127.0.0.1", port, "test", "u", "pw", connect_timeout=0.3, name="slow")
    try:
        with pytest.raises(UpstreamUnavailable, match="timed out after 0.3s"):
            await connect_upstream(target, {})
    finally:
        server.close()


@pytest.mark.parametrize(
    ("sslmode", "host"),
    [("require", "127.0.0.1"), ("verify-ca", "127.0.0.1"), ("verify-full", "localhost")],
)
async def test_tls_modes_get_tls(pg_cluster: Cluster, sslmode: str, host: str) -> None:
    target = _target(pg_cluster, "scram_user", host=host, sslmode=sslmode, sslrootcert=pg_cluster.cafile)
    session = await connect_upstream(target, {"application_name": "tls-test"})
    try:
        assert session.tls is True
        assert session.writer.get_extra_info("ssl_object") is not None
        assert await _scalar(session, "select ssl::text from pg_stat_ssl where pid = pg_backend_pid()") == "true"
    finally:
        await session.close()


async def test_prefer_uses_tls_when_offered(pg_cluster: Cluster) -> None:
    session = await connect_upstream(_target(pg_cluster, "scram_user", host=pg_cluster.host, sslmode="prefer"), {})
    try:
        assert session.tls is True
    finally:
        await session.close()


async def test_verify_ca_rejects_an_unknown_certificate(pg_cluster: Cluster, tmp_path) -> None:
    from _cluster import _write_cert

    other_ca, _ = _write_cert(tmp_path)  # a different self-signed cert: not the server's
    target = _target(pg_cluster, "scram_user", sslmode="verify-ca", sslrootcert=str(other_ca))
    with pytest.raises(UpstreamTLSFailed, match="certificate verify failed|TLS handshake"):
        await connect_upstream(target, {})


async def test_verify_full_checks_the_host_name(pg_cluster: Cluster) -> None:
    # The certificate names only "localhost"; the same server reached as 127.0.0.1 must fail.
    target = _target(pg_cluster, "scram_user", host=pg_cluster.host, sslmode="verify-full")
    with pytest.raises(UpstreamTLSFailed, match="mismatch|not valid for"):
        await connect_upstream(target, {})
    # verify-ca does not check the name, so the same address is accepted there
    ca_only = dataclasses.replace(target, sslmode="verify-ca")
    await (await connect_upstream(ca_only, {})).close()


async def test_require_against_server_without_tls_fails_clearly(local_pg: tuple[str, int]) -> None:
    host, port = local_pg
    target = UpstreamTarget(host, port, "test", "postgres", None, sslmode="require", name="plain")
    with pytest.raises(UpstreamTLSRequired) as info:
        await connect_upstream(target, {})
    assert "does not support TLS" in str(info.value) and "plain" in str(info.value)


async def test_server_side_errors_keep_their_sqlstate(pg_cluster: Cluster) -> None:
    target = _target(pg_cluster, "postgres", database="no_such_db", password=None)
    with pytest.raises(UpstreamError) as info:
        await connect_upstream(target, {})
    assert not isinstance(info.value, UpstreamAuthFailed)
    assert info.value.sqlstate == "3D000" and "no_such_db" in str(info.value)


def test_target_is_frozen_and_hides_password() -> None:
    target = UpstreamTarget("h", 1, "d", "u", "topsecret")
    assert "topsecret" not in repr(target)
    with pytest.raises(dataclasses.FrozenInstanceError):
        target.port = 2  # type: ignore[misc]
    with pytest.raises(ValueError):
        UpstreamTarget("h", 1, "d", "u", sslmode="sometimes")  # type: ignore[arg-type]


# Misbehaving servers: no real PostgreSQL does these, so a scripted loopback peer plays them.


async def _scripted(replies: list[bytes], target_kw: dict[str, object]) -> UpstreamSession:
    """Serve ``replies`` one per message read from the client (SSLRequest/startup/password)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        framer, startup = framing.MessageFramer(), True
        for reply in replies:
            while (msg := framer.next_startup() if startup else framer.next()) is None:
                framer.feed(await reader.read(4096))
            startup = startup and codec.parse_startup(msg[4:]).kind == "ssl"
            writer.write(reply)
        await writer.drain()
        await reader.read()  # hold the line until the client hangs up

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    kw = dict(
        host="127.0.0.1",
        port=port,
        database="d",
        username="u",
        password="pw",
        sslmode="disable",
        name="fake",
        connect_timeout=5.0,
    )
    kw.update(target_kw)
    try:
        return await connect_upstream(UpstreamTarget(**kw), {})  # type: ignore[arg-type]
    finally:
        server.close()


async def test_server_skipping_scram_proof_is_rejected() -> None:
    with pytest.raises(UpstreamAuthFailed, match="skipped SCRAM"):
        await _scripted([codec.authentication_sasl(["SCRAM-SHA-256"]) + codec.authentication_ok()], {})


async def test_plaintext_injected_after_tls_accept_is_rejected() -> None:
    with pytest.raises(UpstreamError, match="unencrypted data after accepting TLS") as info:
        await _scripted([b"S" + codec.authentication_ok()], {"sslmode": "require"})
    assert info.value.sqlstate == "08P01"


async def test_bytes_after_ready_for_query_are_kept_as_leftover() -> None:
    reply = (
        codec.authentication_ok()
        + codec.parameter_status("server_version", "15")
        + codec.backend_key_data(7, 9)
        + codec.ready_for_query()
        + codec.notice_response("NOTICE", "00000", "early")
    )
    session = await _scripted([reply], {})
    try:
        assert (session.backend_pid, session.backend_key) == (7, 9)
        assert session.parameters == {"server_version": "15"}
        assert session.leftover == codec.notice_response("NOTICE", "00000", "early")
    finally:
        await session.close()


async def test_garbled_server_reply_is_a_protocol_violation() -> None:
    with pytest.raises(UpstreamError, match="protocol violation") as info:
        await _scripted([b"R\x00\x00\x00\x02"], {})
    assert info.value.sqlstate == "08P01"
