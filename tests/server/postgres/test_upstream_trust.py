"""The gateway sends a PostgreSQL password (cleartext or MD5) only to a server whose certificate
it verified; SCRAM, which does not reveal the password, may go to any server. Impostors are
small loopback servers (tests/support/impostors.py); the real throwaway cluster proves the
methods still work where they should."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from _cluster import Cluster
from support.impostors import PgImpostor, server_tls, serving
from support.private_ca import private_ca

from hoop.core.tlscert import write_self_signed
from hoop.server.postgres.upstream import (
    UpstreamAuthFailed,
    UpstreamTarget,
    UpstreamTLSFailed,
    connect_upstream,
)

CANARY = "CANARY-pg-3b1f9e"


def _target(port: int, **kw: object) -> UpstreamTarget:
    fields: dict[str, object] = dict(
        host="127.0.0.1", port=port, database="d", username="gw", password=CANARY, name="orders", connect_timeout=5.0
    )
    fields.update(kw)
    return UpstreamTarget(**fields)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that nobody trusts: what an impostor can make."""
    d = tmp_path_factory.mktemp("impostor-tls")
    return write_self_signed(d / "cert.pem", d / "key.pem", names=("127.0.0.1",), days=1)


def test_the_default_sslmode_verifies_the_server() -> None:
    assert UpstreamTarget("h", 1, "d", "u").sslmode == "verify-full"


@pytest.mark.parametrize("method", ["password", "md5"])
async def test_impostor_with_self_signed_certificate_gets_nothing_by_default(self_signed, method: str) -> None:
    with serving(PgImpostor(method=method, tls=server_tls(*self_signed))) as impostor:
        with pytest.raises(UpstreamTLSFailed, match="certificate verify failed"):
            await connect_upstream(_target(impostor.port), {})
    assert not impostor.leaked(CANARY, "gw") and impostor.passwords == []


@pytest.mark.parametrize("method", ["password", "md5"])
@pytest.mark.parametrize("sslmode", ["require", "prefer"])
async def test_unverified_tls_gets_no_password(self_signed, method: str, sslmode: str) -> None:
    with serving(PgImpostor(method=method, tls=server_tls(*self_signed))) as impostor:
        with pytest.raises(UpstreamAuthFailed) as info:
            await connect_upstream(_target(impostor.port, sslmode=sslmode), {})
    assert not impostor.leaked(CANARY, "gw") and impostor.passwords == []
    wanted = "a cleartext password" if method == "password" else "an MD5 password"
    text = str(info.value)
    assert f"asked for {wanted} but its identity is not verified (sslmode={sslmode})" in text, text
    assert "verify-full" in text and "orders" in text


@pytest.mark.parametrize("method", ["password", "md5"])
async def test_without_tls_no_password_is_sent_even_on_loopback(method: str) -> None:
    with serving(PgImpostor(method=method)) as impostor:
        with pytest.raises(UpstreamAuthFailed, match="not verified \\(sslmode=disable\\)"):
            await connect_upstream(_target(impostor.port, sslmode="disable"), {})
    assert not impostor.leaked(CANARY, "gw") and impostor.passwords == []


async def test_an_empty_password_is_no_secret() -> None:
    with serving(PgImpostor(method="password")) as impostor:
        session = await connect_upstream(_target(impostor.port, sslmode="disable", password=""), {})
        await session.close()
    assert impostor.passwords == [b"\x00"]


@pytest.mark.parametrize("method", ["password", "md5"])
async def test_a_server_verified_with_a_private_ca_gets_the_password(tmp_path: Path, method: str) -> None:
    ca = private_ca(tmp_path)
    with serving(PgImpostor(method=method, tls=server_tls(ca.cert, ca.key))) as server:
        session = await connect_upstream(_target(server.port, sslrootcert=str(ca.ca)), {})
        assert session.tls and session.auth_method == method
        await session.close()
    assert server.leaked(CANARY, "gw") and len(server.passwords) == 1


async def test_verify_full_checks_the_name_in_a_private_ca_certificate(tmp_path: Path) -> None:
    ca = private_ca(tmp_path, names=("db.internal",))
    with serving(PgImpostor(tls=server_tls(ca.cert, ca.key))) as server:
        with pytest.raises(UpstreamTLSFailed):
            await connect_upstream(_target(server.port, sslrootcert=str(ca.ca)), {})
        session = await connect_upstream(_target(server.port, sslrootcert=str(ca.ca), sslmode="verify-ca"), {})
        await session.close()
    assert len(server.passwords) == 1


async def test_require_with_a_root_certificate_verifies_as_libpq_does(self_signed, tmp_path: Path) -> None:
    other = private_ca(tmp_path)
    with serving(PgImpostor(tls=server_tls(*self_signed))) as impostor:
        with pytest.raises(UpstreamTLSFailed):
            await connect_upstream(_target(impostor.port, sslmode="require", sslrootcert=str(other.ca)), {})
    assert impostor.passwords == []


# The real cluster (md5_user, clear_user, scram_user; its certificate names 'localhost').


@pytest.mark.needs_postgres
@pytest.mark.parametrize("user", ["md5_user", "clear_user"])
async def test_real_server_under_require_gets_no_md5_or_cleartext(pg_cluster: Cluster, user: str) -> None:
    target = _target(pg_cluster.port, username=user, database="test", password=pg_cluster.passwords[user])
    with pytest.raises(UpstreamAuthFailed, match="identity is not verified"):
        await connect_upstream(dataclasses.replace(target, sslmode="require"), {})
    verified = dataclasses.replace(target, host="localhost", sslrootcert=pg_cluster.cafile)
    session = await connect_upstream(verified, {})
    assert session.tls and session.auth_method in ("md5", "password")
    await session.close()


@pytest.mark.needs_postgres
async def test_real_server_under_require_logs_in_with_scram_bound_to_the_channel(pg_cluster: Cluster) -> None:
    target = _target(
        pg_cluster.port, username="scram_user", database="test", password=pg_cluster.passwords["scram_user"]
    )
    session = await connect_upstream(dataclasses.replace(target, sslmode="require"), {})
    assert session.tls and session.auth_method == "scram-sha-256-plus"
    await session.close()
    plain = await connect_upstream(dataclasses.replace(target, sslmode="disable"), {})
    assert not plain.tls and plain.auth_method == "scram-sha-256"
    await plain.close()


@pytest.mark.needs_postgres
async def test_the_catalog_side_connection_follows_the_same_rule(pg_cluster: Cluster) -> None:
    import psycopg

    from hoop.server.postgres.sidelink import SideConnection

    target = _target(pg_cluster.port, username="md5_user", database="test", password=pg_cluster.passwords["md5_user"])
    side = SideConnection(dataclasses.replace(target, sslmode="require"))
    with pytest.raises(psycopg.OperationalError, match="require_auth|server requested"):
        await side.query("select 1")
    verified = SideConnection(dataclasses.replace(target, host="localhost", sslrootcert=pg_cluster.cafile))
    assert await verified.query("select current_user") == [("md5_user",)]
    await verified.close()
