"""Message builders/parsers and auth helpers: byte fixtures, round trips, and real MariaDB bytes."""

from __future__ import annotations

import socket

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from pymysql import _auth as pymysql_auth

from hoop.server.mysql import auth, binary_rows
from hoop.server.mysql import codec as c
from hoop.server.mysql import connection_phase as cp
from hoop.server.mysql import packets as p
from hoop.server.mysql.upstream import MySQLTarget, connect_upstream

SCRAMBLE = bytes(range(1, 21))


# -- handshake --


@pytest.mark.needs_mariadb
def test_parse_real_mariadb_handshake(mariadb_root) -> None:
    with socket.create_connection(("127.0.0.1", 3306), timeout=5) as s:
        f = c.PacketFramer()
        while (pkt := f.next()) is None:
            f.feed(s.recv(4096))
    seq, payload = pkt
    hs = cp.parse_handshake(payload)
    assert seq == 0 and hs.protocol_version == 10
    assert hs.is_mariadb and "MariaDB" in hs.display_version
    assert len(hs.scramble) == 20 and b"\x00" not in hs.scramble
    assert hs.auth_plugin == "mysql_native_password"
    assert hs.capabilities & c.CLIENT_PROTOCOL_41 and hs.capabilities & c.CLIENT_PLUGIN_AUTH
    assert hs.capabilities & c.MARIADB_CLIENT_PROGRESS  # extended caps from reserved bytes
    assert cp.parse_handshake(cp.build_handshake(hs)) == hs


def test_handshake_build_bytes() -> None:
    hs = cp.ServerHandshake(
        b"8.0.1",
        7,
        SCRAMBLE,
        c.CLIENT_PROTOCOL_41 | c.CLIENT_PLUGIN_AUTH | c.CLIENT_SECURE_CONNECTION | c.CLIENT_MYSQL,
        45,
        2,
        "caching_sha2_password",
    )
    wire = cp.build_handshake(hs)
    assert wire[:7] == b"\x0a8.0.1\x00" and wire[7:11] == b"\x07\x00\x00\x00"
    assert wire[11:19] == SCRAMBLE[:8] and wire[19] == 0
    assert wire.endswith(SCRAMBLE[8:] + b"\x00caching_sha2_password\x00")
    assert cp.parse_handshake(wire) == hs


# -- client handshake response --


def test_handshake_response_round_trip_all_fields() -> None:
    caps = (
        c.CLIENT_PROTOCOL_41
        | c.CLIENT_SECURE_CONNECTION
        | c.CLIENT_PLUGIN_AUTH
        | c.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
        | c.CLIENT_CONNECT_WITH_DB
        | c.CLIENT_CONNECT_ATTRS
        | c.MARIADB_CLIENT_PROGRESS
    )
    r = cp.HandshakeResponse(
        caps,
        b"alice",
        b"\x01" * 300,
        b"test",
        "mysql_native_password",
        {b"_client_name": b"hoop", b"k": b""},
        charset=63,
    )
    wire = cp.build_handshake_response(r)
    assert wire[:4] == (caps & 0xFFFFFFFF).to_bytes(4, "little")
    assert wire[28:32] == b"\x01\x00\x00\x00"  # MariaDB extended caps in the filler's tail
    assert wire[32:38] == b"alice\x00" and wire[38:41] == b"\xfc\x2c\x01"
    assert cp.parse_handshake_response(wire) == r


def test_handshake_response_one_byte_length_and_nul_auth() -> None:
    caps = c.CLIENT_PROTOCOL_41 | c.CLIENT_SECURE_CONNECTION
    wire = cp.build_handshake_response(cp.HandshakeResponse(caps, b"u", b"\xaa\xbb"))
    assert wire[32:] == b"u\x00\x02\xaa\xbb"
    old = c.CLIENT_PROTOCOL_41
    wire = cp.build_handshake_response(cp.HandshakeResponse(old, b"u", b"pw"))
    assert wire[32:] == b"u\x00pw\x00"
    assert cp.parse_handshake_response(wire).auth_response == b"pw"


def test_ssl_request_is_32_bytes() -> None:
    wire = cp.build_ssl_request(c.CLIENT_PROTOCOL_41, 45)
    assert len(wire) == 32 and cp.is_ssl_request(wire)
    assert int.from_bytes(wire[:4], "little") & c.CLIENT_SSL
    full = cp.build_handshake_response(cp.HandshakeResponse(c.CLIENT_PROTOCOL_41 | c.CLIENT_SSL, b"u"))
    assert not cp.is_ssl_request(full)
    with pytest.raises(c.ProtocolViolation):
        cp.parse_handshake_response(wire[:20])


# -- auth exchange packets and scrambles --


def test_auth_switch_and_more_data_bytes() -> None:
    wire = cp.build_auth_switch("mysql_native_password", SCRAMBLE + b"\x00")
    assert wire == b"\xfemysql_native_password\x00" + SCRAMBLE + b"\x00"
    assert cp.parse_auth_switch(wire) == ("mysql_native_password", SCRAMBLE)
    assert cp.parse_auth_switch(b"\xfe") == ("mysql_old_password", b"")
    assert cp.build_auth_more_data(b"\x04") == b"\x01\x04"
    assert cp.parse_auth_more_data(b"\x01\x03") == b"\x03"


def test_native_and_caching_sha2_scrambles_match_vectors_and_pymysql() -> None:
    native = auth.scramble_native_password(b"secret", SCRAMBLE)
    sha2 = auth.scramble_caching_sha2(b"secret", SCRAMBLE)
    assert native.hex() == "b32bb3a583e1340c0a1108d58b1be49781ad8c2f"
    assert sha2.hex() == ("746ebe205d56a0707acb3e796e834e0dd7b1d61743b26bd5202c7a623230c7c9")
    assert native == pymysql_auth.scramble_native_password(b"secret", SCRAMBLE)
    assert sha2 == pymysql_auth.scramble_caching_sha2(b"secret", SCRAMBLE)
    assert auth.scramble_native_password(b"", SCRAMBLE) == b""
    assert auth.clear_password_response(b"tok") == b"tok\x00"


def test_rsa_password_interop_with_pymysql() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = auth.public_key_pem(key)
    ours = auth.rsa_encrypt_password(b"pw-1", SCRAMBLE, pem)
    theirs = pymysql_auth.sha2_rsa_encrypt(b"pw-1", SCRAMBLE, pem)
    assert auth.rsa_decrypt_password(key, ours, SCRAMBLE) == b"pw-1"
    assert auth.rsa_decrypt_password(key, theirs, SCRAMBLE) == b"pw-1"
    with pytest.raises(auth.AuthProtocolError):
        auth.rsa_decrypt_password(key, b"\x00" * 256, SCRAMBLE)


def test_clear_token_auth_switches_then_asks_for_full_auth() -> None:
    flow = auth.ClearTokenAuth(SCRAMBLE, tls=True)
    resp = cp.HandshakeResponse(
        c.CLIENT_PROTOCOL_41 | c.CLIENT_PLUGIN_AUTH, b"u", b"\x11" * 20, auth_plugin="mysql_native_password"
    )
    step = flow.start(resp)
    assert step.token is None
    assert step.reply == b"\xfecaching_sha2_password\x00" + SCRAMBLE + b"\x00"
    step = flow.feed(auth.scramble_caching_sha2(b"tok", SCRAMBLE))
    assert step.reply == b"\x01\x04" and step.token is None
    assert flow.feed(b"tok\x00").token == b"tok"


def test_clear_token_auth_refuses_clear_text_without_tls() -> None:
    resp = cp.HandshakeResponse(c.CLIENT_PROTOCOL_41, b"u", b"\x11" * 32, auth_plugin="caching_sha2_password")
    flow = auth.ClearTokenAuth(SCRAMBLE, tls=False)
    assert flow.start(resp).reply == b"\x01\x04"
    with pytest.raises(auth.AuthProtocolError, match="TLS"):
        flow.feed(b"tok\x00")
    clear = cp.HandshakeResponse(c.CLIENT_PROTOCOL_41, b"u", b"tok\x00", auth_plugin="mysql_clear_password")
    with pytest.raises(auth.AuthProtocolError):
        auth.ClearTokenAuth(SCRAMBLE, tls=False).start(clear)
    assert auth.ClearTokenAuth(SCRAMBLE, tls=True).start(clear).token == b"tok"
    empty = cp.HandshakeResponse(c.CLIENT_PROTOCOL_41, b"u", b"", auth_plugin=auth.CACHING_SHA2_PASSWORD)
    assert auth.ClearTokenAuth(SCRAMBLE, tls=True).start(empty).token == b""


# -- OK / ERR / EOF --


def test_ok_packet_bytes_and_session_track() -> None:
    caps41 = c.CLIENT_PROTOCOL_41
    ok = p.parse_ok(b"\x00\x03\xfc\x00\x01\x02\x00\x01\x00Rows matched: 3", caps41)
    assert (ok.affected_rows, ok.last_insert_id, ok.status, ok.warnings) == (3, 256, 2, 1)
    assert ok.info == b"Rows matched: 3"
    track = caps41 | c.CLIENT_SESSION_TRACK
    state = b"\x01\x05\x04test"  # SESSION_TRACK_SCHEMA "test", kept raw
    ok = p.OkPacket(1, 0, c.SERVER_SESSION_STATE_CHANGED | 2, 0, b"", state)
    wire = p.build_ok(ok, track)
    assert wire == b"\x00\x01\x00\x02\x40\x00\x00" + b"\x00" + b"\x07" + state
    assert p.parse_ok(wire, track) == ok
    end = p.OkPacket(header=0xFE)
    assert p.is_result_end(p.build_ok(end, track | c.CLIENT_DEPRECATE_EOF), track | c.CLIENT_DEPRECATE_EOF)


def test_err_and_eof_packets() -> None:
    wire = p.build_err(1146, "42S02", "Table 'test.nope' doesn't exist")
    assert wire[:9] == b"\xff\x7a\x04#42S02"
    assert p.parse_err(wire) == p.ErrPacket(1146, "42S02", "Table 'test.nope' doesn't exist")
    assert p.parse_err(b"\xff\x15\x04no state").sqlstate == "HY000"
    assert p.parse_err(b"\xff\xff\xff\x01\x01").is_progress_report
    eof = p.build_eof(1, c.SERVER_MORE_RESULTS_EXISTS)
    assert eof == b"\xfe\x01\x00\x08\x00" and p.is_eof(eof)
    assert p.parse_eof(eof) == (1, 8)
    assert not p.is_eof(b"\xfe" + b"\x00" * 9)


# -- result sets --

# Column definition MariaDB sent for `SELECT 1` (captured from the server on this machine).
COLDEF_1 = b"\x03def\x00\x00\x00\x011\x00\x0c?\x00\x01\x00\x00\x00\x03\x81\x00\x00\x00\x00"


def test_column_definition_from_real_bytes() -> None:
    col = p.parse_column_definition(COLDEF_1)
    assert (col.name, col.type, col.charset, col.length) == (b"1", c.MYSQL_TYPE_LONG, 63, 1)
    assert col.flags == c.NOT_NULL_FLAG | c.BINARY_FLAG and col.decimals == 0
    assert p.build_column_definition(col) == COLDEF_1
    ext = p.ColumnDefinition(b"j", c.MYSQL_TYPE_BLOB, extended_info=b"\x00\x04json")
    assert p.parse_column_definition(p.build_column_definition(ext, True), True) == ext


def test_text_row_and_result_header_bytes() -> None:
    assert p.parse_text_row(b"\x011\x01a\xfb", 3) == [b"1", b"a", None]
    assert p.build_text_row([b"1", b"a", None]) == b"\x011\x01a\xfb"
    with pytest.raises(c.ProtocolViolation):
        p.parse_text_row(b"\x011\x01a\xfb", 2)
    # Lengths of one, three and four bytes (0xFC, 0xFD prefixes) round-trip.
    values = [b"", b"v" * 250, b"w" * 251, b"x" * 70_000, None]
    row = p.build_text_row(values)
    assert row[1 + 1 + 250] == 0xFC and p.parse_text_row(row, 5) == values
    for bad, problem in [
        (b"\x011", "ends before its last column"),  # a column missing
        (b"\x05ab", "runs past the end"),
        (b"\xfc\x10\x00abc", "runs past the end"),
        (b"\xff", "0xFF is not a valid"),
    ]:
        with pytest.raises(c.ProtocolViolation, match=problem):
            p.parse_text_row(bad, 2 if bad == b"\x011" else 1)
    assert p.parse_column_count(b"\x03") == 3
    assert p.is_local_infile_request(b"\xfb/etc/passwd")
    assert p.parse_local_infile_request(b"\xfb/etc/passwd") == b"/etc/passwd"


def test_prepare_ok_and_com_query_bytes() -> None:
    wire = p.build_stmt_prepare_ok(p.StmtPrepareOk(1, 2, 3, 0))
    assert wire == b"\x00\x01\x00\x00\x00\x02\x00\x03\x00\x00\x00\x00"
    assert p.parse_stmt_prepare_ok(wire) == p.StmtPrepareOk(1, 2, 3, 0)
    assert p.build_com_query("SELECT 1") == b"\x03SELECT 1"
    qa = c.CLIENT_QUERY_ATTRIBUTES
    assert p.parse_com_query(p.build_com_query("SELECT 1", qa), qa) == b"SELECT 1"
    with pytest.raises(c.ProtocolViolation):
        p.parse_com_query(b"\x03\x01\x01\x00\x01\x08\x00\x01a\x01", qa)


def _col(t: int, flags: int = 0) -> p.ColumnDefinition:
    return p.ColumnDefinition(b"c", t, flags)


def test_binary_row_bytes_for_each_type() -> None:
    cols = [
        _col(c.MYSQL_TYPE_TINY),
        _col(c.MYSQL_TYPE_SHORT, c.UNSIGNED_FLAG),
        _col(c.MYSQL_TYPE_LONGLONG),
        _col(c.MYSQL_TYPE_DOUBLE),
        _col(c.MYSQL_TYPE_NULL),
        _col(c.MYSQL_TYPE_DATETIME),
        _col(c.MYSQL_TYPE_TIME),
        _col(c.MYSQL_TYPE_VAR_STRING),
        _col(c.MYSQL_TYPE_DATE),
    ]
    vals = [
        -1,
        65535,
        -2,
        1.5,
        None,
        binary_rows.MyDateTime(2024, 2, 29, 13, 5, 9, 7),
        binary_rows.MyTime(True, 1, 2, 3, 4),
        b"hi",
        binary_rows.MyDateTime(),
    ]
    wire = binary_rows.build_binary_row(vals, cols)
    assert wire == (
        b"\x00"
        + b"\x40\x00"  # NULL bit for column 4 (bit 6 with offset 2)
        + b"\xff"
        + b"\xff\xff"
        + b"\xfe"
        + b"\xff" * 7
        + b"\x00" * 6
        + b"\xf8\x3f"
        + b"\x0b\xe8\x07\x02\x1d\x0d\x05\x09\x07\x00\x00\x00"
        + b"\x08\x01\x01\x00\x00\x00\x02\x03\x04"
        + b"\x02hi"
        + b"\x00"
    )
    assert binary_rows.parse_binary_row(wire, cols) == vals
    with pytest.raises(c.ProtocolViolation):
        binary_rows.parse_binary_row(wire[:-3], cols)


@pytest.mark.needs_mariadb
async def test_binary_row_from_real_server_parse_rewrite_build(mariadb_user) -> None:
    up = await connect_upstream(
        MySQLTarget("127.0.0.1", 3306, mariadb_user.name, mariadb_user.password, "test", ssl="disable")
    )
    framer = c.PacketFramer()

    async def read_packets(n: int | None) -> list[bytes]:
        out: list[bytes] = []
        while True:
            while (pkt := framer.next()) is not None:
                out.append(pkt[1])
                if p.is_err(pkt[1]):
                    raise AssertionError(p.parse_err(pkt[1]).message)
                if len(out) == n or (n is None and len(out) > 1 and p.is_result_end(out[-1], up.capabilities)):
                    return out
            framer.feed(await up.reader.read(65536))

    async def simple(sql: str) -> None:
        up.writer.write(c.encode_packet(p.build_com_query(sql), 0))
        assert p.is_ok((await read_packets(1))[0])

    try:
        await simple(
            "CREATE TEMPORARY TABLE t (a TINYINT, b SMALLINT UNSIGNED, c BIGINT "
            "UNSIGNED, d FLOAT, e DOUBLE, f DECIMAL(10,2), g DATETIME(6), h DATE, "
            "i TIME, j VARCHAR(20), k INT, l YEAR, m MEDIUMINT)"
        )
        await simple(
            "INSERT INTO t VALUES (-128, 65535, 18446744073709551615, 1.5, -2.25, "
            "'-12.34', '2024-02-29 13:05:09.000007', '0000-00-00', '-26:03:04', "
            "'alice@example.com', NULL, 2024, -8388608)"
        )
        up.writer.write(c.encode_packet(b"\x16SELECT * FROM t", 0))
        prep = p.parse_stmt_prepare_ok((await read_packets(1))[0])
        cols = [p.parse_column_definition(x) for x in await read_packets(prep.num_columns)]
        execute = b"\x17" + prep.statement_id.to_bytes(4, "little") + b"\x00\x01\x00\x00\x00"
        up.writer.write(c.encode_packet(execute, 0))
        res = await read_packets(None)
        assert p.parse_column_count(res[0]) == 13
        row = res[1 + 13]
        vals = binary_rows.parse_binary_row(row, cols)
        assert vals == [
            -128,
            65535,
            2**64 - 1,
            1.5,
            -2.25,
            b"-12.34",
            binary_rows.MyDateTime(2024, 2, 29, 13, 5, 9, 7),
            binary_rows.MyDateTime(),
            binary_rows.MyTime(True, 1, 2, 3, 4),
            b"alice@example.com",
            None,
            2024,
            -8388608,
        ]
        assert binary_rows.build_binary_row(vals, cols) == row  # lossless re-encoding
        vals[9] = b"*****"
        assert binary_rows.parse_binary_row(binary_rows.build_binary_row(vals, cols), cols)[9] == b"*****"
    finally:
        await up.close()
