"""The gateway sends a MySQL password (caching_sha2 full authentication, mysql_clear_password)
only over TLS it verified, or RSA-encrypted with a key pinned in the configuration, never with
a key the server sent. Scrambles (mysql_native_password, caching_sha2 fast path) are
challenge-response and go anywhere. The impostors are small loopback servers."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.impostors import MysqlImpostor, serving

from hoop.server.mysql.upstream import MySQLTarget, UpstreamAuthFailed, UpstreamError, connect_upstream

CANARY = "CANARY-my-77c2d0"


def _target(port: int, **kw: object) -> MySQLTarget:
    fields: dict[str, object] = dict(
        host="127.0.0.1", port=port, username="gw", password=CANARY, name="billing", connect_timeout=5.0
    )
    fields.update(kw)
    return MySQLTarget(**fields)  # type: ignore[arg-type]


def test_the_default_ssl_mode_verifies_the_server() -> None:
    assert MySQLTarget("h").ssl == "verify-full"


@pytest.mark.parametrize("switch_to_clear", [False, True])
@pytest.mark.parametrize("ssl", [None, "prefer", "disable"])
async def test_impostor_without_tls_never_gets_the_password(switch_to_clear: bool, ssl: str | None) -> None:
    impostor = MysqlImpostor(switch_to_clear=switch_to_clear, password=CANARY.encode())
    with serving(impostor):
        kw = {} if ssl is None else {"ssl": ssl}
        with pytest.raises(UpstreamError) as info:
            await connect_upstream(_target(impostor.port, **kw))
    assert not impostor.leaked(CANARY) and impostor.decrypted == [] and not impostor.accepted
    text = str(info.value)
    assert "billing" in text and CANARY not in text
    if ssl is None:  # the default asks for verified TLS, which the impostor does not offer
        assert "does not offer TLS" in text, text
    else:
        assert "not verified" in text and "nothing was sent" in text, text
        assert ("mysql_clear_password" if switch_to_clear else "server_public_key") in text, text


async def test_a_pinned_public_key_is_used_instead_of_the_one_the_server_sends(tmp_path: Path) -> None:
    genuine = MysqlImpostor(password=CANARY.encode())
    pinned = genuine.public_key_file(tmp_path / "server_public_key.pem")
    with serving(genuine):
        up = await connect_upstream(_target(genuine.port, ssl="disable", server_public_key=str(pinned)))
        await up.close()
    assert genuine.accepted and genuine.decrypted == [CANARY.encode()]
    # an impostor holding another key learns nothing from the same configuration
    impostor = MysqlImpostor(password=CANARY.encode())
    with serving(impostor):
        with pytest.raises(UpstreamAuthFailed):
            await connect_upstream(_target(impostor.port, ssl="disable", server_public_key=str(pinned)))
    assert not impostor.leaked(CANARY) and impostor.decrypted == []


async def test_a_pinned_key_does_not_allow_mysql_clear_password(tmp_path: Path) -> None:
    impostor = MysqlImpostor(switch_to_clear=True, password=CANARY.encode())
    pinned = impostor.public_key_file(tmp_path / "key.pem")
    with serving(impostor):
        with pytest.raises(UpstreamError, match="mysql_clear_password"):
            await connect_upstream(_target(impostor.port, ssl="disable", server_public_key=str(pinned)))
    assert not impostor.leaked(CANARY)


async def test_an_empty_password_is_no_secret() -> None:
    impostor = MysqlImpostor()
    with serving(impostor):
        with pytest.raises(UpstreamAuthFailed):  # the impostor accepts no one; what matters is what it got
            await connect_upstream(_target(impostor.port, ssl="disable", password=""))
    # with no password there is no full authentication to refuse: the empty answer goes as is
    assert impostor.decrypted == []
