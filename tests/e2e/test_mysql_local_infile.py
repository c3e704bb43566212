"""LOAD DATA LOCAL INFILE through the MySQL door: the server asks the client for a file.

A connection has to opt in (`allow_local_infile = true`). Otherwise the gateway never passes
such a request to the client, so a compromised server cannot read the user's files through
Hoop. The real MariaDB only asks after a `LOAD DATA LOCAL` statement, so the hostile case uses
a small server here that logs anyone in and answers every query by asking for a file.
"""

from __future__ import annotations

import secrets
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest
from support.gateway import ALICE, GatewayProcess
from support.mariadb import mysql_connection_toml, mysql_gateway, through, throwaway_database

from hoop.server.mysql import codec as c
from hoop.server.mysql import connection_phase as cp
from hoop.server.mysql import packets as p

pytestmark = pytest.mark.needs_mariadb


def _read_packet(conn: socket.socket) -> tuple[int, bytes] | None:
    head = conn.recv(4, socket.MSG_WAITALL)
    if len(head) < 4:
        return None
    length = int.from_bytes(head[:3], "little")
    payload = conn.recv(length, socket.MSG_WAITALL) if length else b""
    return head[3], payload


def _settings_ok() -> p.OkPacket:
    """An OK that reports the session's text settings, as the gateway asks every server to."""
    state = b""
    for name, value in ((b"character_set_client", b"utf8mb4"), (b"sql_mode", b"")):
        entry = c.write_lenenc_str(name) + c.write_lenenc_str(value)
        state += b"\x00" + c.write_lenenc_str(entry)
    return p.OkPacket(status=c.SERVER_STATUS_AUTOCOMMIT | c.SERVER_SESSION_STATE_CHANGED, session_state=state)


class HostileServer:
    """Speaks MySQL well enough for the gateway to log in, lets the client's SET statements
    pass, then asks for `wanted` on every query and keeps whatever comes back in `uploads`."""

    def __init__(self, capabilities: int, wanted: Path) -> None:
        self.capabilities = capabilities & ~c.CLIENT_SSL
        self.wanted = str(wanted).encode()
        self.uploads: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # closed at the end of the module
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        with conn:
            hello = cp.ServerHandshake(
                b"10.11.99-MariaDB-hostile",
                7,
                secrets.token_bytes(20),
                self.capabilities,
                c.CHARSET_UTF8MB4_GENERAL_CI,
                c.SERVER_STATUS_AUTOCOMMIT,
            )
            conn.sendall(c.encode_packet(cp.build_handshake(hello), 0))
            login = _read_packet(conn)
            if login is None:
                return
            caps = cp.parse_handshake_response(login[1]).capabilities
            conn.sendall(c.encode_packet(p.build_ok(p.OkPacket(), caps), login[0] + 1))
            while (packet := _read_packet(conn)) is not None:
                seq, payload = packet
                if payload[:1] == bytes((c.COM_QUIT,)):
                    return
                if payload[:1] != bytes((c.COM_QUERY,)) or payload[1:4].upper() == b"SET":  # the client's setup
                    conn.sendall(c.encode_packet(p.build_ok(_settings_ok(), caps), seq + 1))
                    continue
                if b"information_schema.ROUTINES" in payload:  # the gateway's catalog read: nothing stored
                    conn.sendall(c.encode_packet(p.build_ok(p.OkPacket(), caps), seq + 1))
                    continue
                conn.sendall(c.encode_packet(bytes((c.LOCAL_INFILE_HEADER,)) + self.wanted, seq + 1))
                upload = b""
                while (part := _read_packet(conn)) is not None:
                    seq, data = part
                    if not data:
                        break  # the empty packet ends an upload
                    upload += data
                self.uploads.append(upload)
                conn.sendall(c.encode_packet(p.build_ok(p.OkPacket(affected_rows=1), caps), seq + 1))

    def close(self) -> None:
        self.listener.close()


@pytest.fixture(scope="module")
def db() -> Iterator[str]:
    with throwaway_database("hoop_li", "CREATE TABLE loaded (id INT PRIMARY KEY, label VARCHAR(20))") as name:
        yield name


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file on the user's machine that no server may read through the gateway."""
    path = tmp_path_factory.mktemp("laptop") / "id_rsa"
    path.write_text(f"CANARY-laptop-file-{secrets.token_hex(12)}\n")
    return path


@pytest.fixture(scope="module")
def hostile(secret_file: Path) -> Iterator[HostileServer]:
    with socket.create_connection(("127.0.0.1", 3306), timeout=5) as probe:  # offer what MariaDB offers
        greeting = _read_packet(probe)
    assert greeting is not None
    server = HostileServer(cp.parse_handshake(greeting[1]).capabilities, secret_file)
    yield server
    server.close()


@pytest.fixture(scope="module")
def gw(db: str, hostile: HostileServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    body = (
        ALICE
        # Rules are not the subject here: without builtin rules a LOAD DATA LOCAL statement may run.
        + '[[rules]]\nname = "builtin-server-files"\naction = "block"\nenabled = false\n'
        + mysql_connection_toml(db, name="loader", extra="allow_local_infile = true\n")
        + mysql_connection_toml(db, name="plain")
        + mysql_connection_toml(db, name="hostile", port=hostile.port)
    )
    with mysql_gateway(tmp_path_factory.mktemp("infile"), body) as g:
        yield g


def _connect(gw: GatewayProcess, connection: str) -> pymysql.Connection:
    # this client would send a file if anyone asked it for one
    return through(gw, database=connection, local_infile=True)


def test_a_hostile_server_cannot_read_the_clients_files(
    gw: GatewayProcess, hostile: HostileServer, secret_file: Path
) -> None:
    conn = _connect(gw, "hostile")
    with pytest.raises(pymysql.err.OperationalError) as refused, conn.cursor() as cur:
        cur.execute("SELECT 1")
    assert refused.value.args[0] == 1148
    assert "disabled for this connection by Hoop" in refused.value.args[1]
    conn.ping(reconnect=False)  # the session goes on
    conn.close()
    assert hostile.uploads == [b""]  # the server got an empty upload: "no such file"
    assert secret_file.read_text() not in "".join(gw.outputs) + gw.log()
    events = gw.audit("--action", "local_infile.refused", until=bool)
    assert len(events) == 1


def test_an_allowed_connection_loads_the_clients_file(gw: GatewayProcess, db: str, tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("".join(f"{i},label-{i}\n" for i in range(1, 201)))
    conn = _connect(gw, "loader")
    with conn.cursor() as cur:
        loaded = cur.execute(f"LOAD DATA LOCAL INFILE '{rows}' INTO TABLE loaded FIELDS TERMINATED BY ',' (id, label)")
        assert loaded == 200
        cur.execute("SELECT COUNT(*), MAX(label) FROM loaded")
        assert cur.fetchall() == ((200, "label-99"),)
        cur.execute("SELECT 'after the upload'")  # commands after an upload are relayed as usual
        assert cur.fetchall() == (("after the upload",),)
    conn.close()


def test_local_infile_is_off_unless_the_connection_allows_it(gw: GatewayProcess, db: str, tmp_path: Path) -> None:
    rows = tmp_path / "more.csv"
    rows.write_text("1001,nope\n")
    conn = _connect(gw, "plain")
    with pytest.raises(pymysql.err.OperationalError) as refused, conn.cursor() as cur:
        cur.execute(f"LOAD DATA LOCAL INFILE '{rows}' INTO TABLE loaded FIELDS TERMINATED BY ','")
    # The gateway logs in upstream without the LOCAL INFILE capability, so the server refuses.
    assert refused.value.args[0] in (1148, 4166) and "local infile" in refused.value.args[1].lower()
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM loaded WHERE id = 1001")
        assert cur.fetchall() == ((0,),)
    conn.close()
