"""Clients that ask for mysql_native_password at the real `hoop serve`: the gateway keeps only a
SHA-256 hash of each token, so it cannot check a native scramble. A client that can switch is
moved to caching_sha2_password and logs in; one that cannot, or insists, gets a clear 1045."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator

import pytest
from support.gateway import GatewayProcess
from support.mariadb import gateway_ca, mysql_connection_toml, mysql_gateway, throwaway_database

from hoop.server.mysql import codec as c
from hoop.server.mysql import connection_phase as cp
from hoop.server.mysql.auth import scramble_native_password

pytestmark = pytest.mark.needs_mariadb

ALICE = '\n[[users]]\nname = "alice"\ngroups = ["dev"]\n'


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with throwaway_database("hoop_np") as db:
        with mysql_gateway(tmp_path_factory.mktemp("npgw"), ALICE + mysql_connection_toml(db)) as g:
            yield g


def test_mariadb_client_asking_for_native_password_is_switched_and_logs_in(gw: GatewayProcess) -> None:
    cmd = ["mariadb", "-h", "127.0.0.1", "-P", str(gw.ports["mysql"]), "-u", "alice", f"-p{gw.tokens['alice']}"]
    cmd += ["--default-auth=mysql_native_password", "--ssl", f"--ssl-ca={gateway_ca(gw)}"]
    cmd += ["--ssl-verify-server-cert=0", "-N", "-B", "my", "-e", "SELECT 6 * 7"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "42"


def _read(sock: socket.socket) -> bytes:
    framer = c.PacketFramer()
    while (pkt := framer.next()) is None:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("gateway closed the connection")
        framer.feed(data)
    return pkt[1]


def _native_login(gw: GatewayProcess, caps: int) -> tuple[socket.socket, bytes]:
    """Opens with a mysql_native_password answer; returns the socket and the gateway's reply."""
    sock = socket.create_connection(("127.0.0.1", gw.ports["mysql"]), timeout=10)
    hs = cp.parse_handshake(_read(sock))
    token = gw.tokens["alice"].encode()
    response = cp.HandshakeResponse(
        caps, b"alice", scramble_native_password(token, hs.scramble), b"my", "mysql_native_password"
    )
    sock.sendall(c.encode_packet(cp.build_handshake_response(response), 1))
    return sock, _read(sock)


def _err(payload: bytes) -> tuple[int, str]:
    assert payload[:1] == b"\xff", payload
    return int.from_bytes(payload[1:3], "little"), payload[9:].decode()


BASE = c.CLIENT_PROTOCOL_41 | c.CLIENT_SECURE_CONNECTION | c.CLIENT_CONNECT_WITH_DB | c.CLIENT_LONG_PASSWORD


def test_client_insisting_on_native_password_gets_the_reason(gw: GatewayProcess) -> None:
    sock, reply = _native_login(gw, BASE | c.CLIENT_PLUGIN_AUTH)
    with sock:
        plugin, data = cp.parse_auth_switch(reply)
        assert plugin == "caching_sha2_password"
        sock.sendall(c.encode_packet(scramble_native_password(gw.tokens["alice"].encode(), data), 3))
        code, message = _err(_read(sock))
    assert code == 1045
    assert "mysql_native_password is not accepted" in message and "SHA-256 hash" in message


def test_client_that_cannot_switch_plugins_gets_the_reason(gw: GatewayProcess) -> None:
    sock, reply = _native_login(gw, BASE)
    with sock:
        code, message = _err(reply)
    assert code == 1045
    assert "mysql_native_password is not accepted" in message and "cannot switch" in message
