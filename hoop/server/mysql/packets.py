"""Builders and parsers for MySQL/MariaDB connection-phase and command-phase messages.

Every function works on one logical payload (no 4-byte header); framing is codec.py's job.
Capabilities are one int: bits 0..31 standard, bits 32..63 MariaDB extended capabilities.
Binary result rows (COM_STMT_EXECUTE results) are in binary_rows.py.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from hoop.server.mysql import codec as c
from hoop.server.mysql.codec import (
    ProtocolViolation,
    need,
    read_lenenc_int,
    read_lenenc_str,
    read_nul_str,
    write_lenenc_int,
    write_lenenc_str,
)

MARIADB_VERSION_PREFIX = b"5.5.5-"


# -- initial handshake (server -> client) --


@dataclass
class ServerHandshake:
    server_version: bytes
    connection_id: int
    scramble: bytes  # 20 bytes (both parts, without the trailing NUL)
    capabilities: int  # incl. MariaDB extended caps in bits 32..63
    charset: int
    status: int
    auth_plugin: str = "mysql_native_password"
    protocol_version: int = 10

    @property
    def is_mariadb(self) -> bool:
        return not self.capabilities & c.CLIENT_MYSQL or b"MariaDB" in self.server_version

    @property
    def display_version(self) -> str:
        """Version without MariaDB's replication-compatibility '5.5.5-' prefix."""
        v = self.server_version
        v = v.removeprefix(MARIADB_VERSION_PREFIX)
        return v.decode("utf-8", "replace")


def parse_handshake(payload: bytes) -> ServerHandshake:
    if not payload:
        raise ProtocolViolation("empty handshake")
    if payload[0] == c.ERR_HEADER:
        raise ProtocolViolation("server sent an error instead of a handshake")
    if payload[0] != 10:
        raise ProtocolViolation(f"unsupported handshake protocol version {payload[0]}")
    version, pos = read_nul_str(payload, 1)
    need(payload, pos, 13, "handshake")
    (conn_id,) = struct.unpack_from("<I", payload, pos)
    part1 = payload[pos + 4 : pos + 12]
    pos += 13  # 4 id + 8 scramble + 1 filler
    need(payload, pos, 2, "handshake capabilities")
    caps = struct.unpack_from("<H", payload, pos)[0]
    pos += 2
    charset = status = 0
    part2 = b""
    plugin = "mysql_native_password"
    if len(payload) > pos:
        need(payload, pos, 16, "handshake")
        charset = payload[pos]
        status, caps_hi, data_len = struct.unpack_from("<HHB", payload, pos + 1)
        caps |= caps_hi << 16
        pos += 6 + 6  # charset, status, caps_hi, data_len, 6 reserved
        ext = struct.unpack_from("<I", payload, pos)[0]
        pos += 4
        if not caps & c.CLIENT_MYSQL:
            caps |= ext << 32
        if caps & c.CLIENT_SECURE_CONNECTION:
            n = max(13, data_len - 8)
            part2 = payload[pos : pos + n].rstrip(b"\x00")[:12]
            pos += n
        if caps & c.CLIENT_PLUGIN_AUTH and pos < len(payload):
            end = payload.find(b"\x00", pos)
            name = payload[pos:] if end < 0 else payload[pos:end]
            plugin = name.decode("ascii", "replace")
    return ServerHandshake(version, conn_id, part1 + part2, caps, charset, status, plugin)


def build_handshake(h: ServerHandshake) -> bytes:
    if len(h.scramble) != 20:
        raise ValueError("scramble must be 20 bytes")
    caps = h.capabilities
    ext = (caps >> 32) & 0xFFFFFFFF if not caps & c.CLIENT_MYSQL else 0
    return b"".join(
        (
            bytes((h.protocol_version,)),
            h.server_version + b"\x00",
            struct.pack("<I", h.connection_id),
            h.scramble[:8],
            b"\x00",
            struct.pack("<HBHHB", caps & 0xFFFF, h.charset, h.status, (caps >> 16) & 0xFFFF, 21),
            b"\x00" * 6,
            struct.pack("<I", ext),
            h.scramble[8:] + b"\x00",
            h.auth_plugin.encode("ascii") + b"\x00",
        )
    )


# -- SSLRequest and HandshakeResponse41 (client -> server) --


@dataclass
class HandshakeResponse:
    capabilities: int
    username: bytes
    auth_response: bytes = b""
    database: bytes | None = None
    auth_plugin: str | None = None
    connect_attrs: dict[bytes, bytes] = field(default_factory=dict)
    max_packet_size: int = 1 << 24
    charset: int = c.CHARSET_UTF8MB4_GENERAL_CI


def _fixed_part(caps: int, max_packet: int, charset: int) -> bytes:
    ext = (caps >> 32) & 0xFFFFFFFF
    return struct.pack("<IIB", caps & 0xFFFFFFFF, max_packet, charset) + b"\x00" * 19 + (struct.pack("<I", ext))


def build_ssl_request(caps: int, charset: int, max_packet: int = 1 << 24) -> bytes:
    """The 32-byte short HandshakeResponse that asks the server to start TLS."""
    return _fixed_part(caps | c.CLIENT_SSL, max_packet, charset)


def is_ssl_request(payload: bytes) -> bool:
    return len(payload) == 32 and bool(payload[1] & (c.CLIENT_SSL >> 8))


def build_handshake_response(r: HandshakeResponse) -> bytes:
    caps = r.capabilities
    parts = [_fixed_part(caps, r.max_packet_size, r.charset), r.username + b"\x00"]
    if caps & c.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA:
        parts.append(write_lenenc_str(r.auth_response))
    elif caps & c.CLIENT_SECURE_CONNECTION:
        if len(r.auth_response) > 255:
            raise ValueError("auth response too long without PLUGIN_AUTH_LENENC_CLIENT_DATA")
        parts.append(bytes((len(r.auth_response),)) + r.auth_response)
    else:
        parts.append(r.auth_response + b"\x00")
    if caps & c.CLIENT_CONNECT_WITH_DB:
        parts.append((r.database or b"") + b"\x00")
    if caps & c.CLIENT_PLUGIN_AUTH:
        parts.append((r.auth_plugin or "").encode("ascii") + b"\x00")
    if caps & c.CLIENT_CONNECT_ATTRS:
        attrs = b"".join(write_lenenc_str(k) + write_lenenc_str(v) for k, v in r.connect_attrs.items())
        parts.append(write_lenenc_str(attrs))
    return b"".join(parts)


def parse_handshake_response(payload: bytes) -> HandshakeResponse:
    need(payload, 0, 32, "handshake response")
    lo, max_packet, charset = struct.unpack_from("<IIB", payload, 0)
    if not lo & c.CLIENT_PROTOCOL_41:
        raise ProtocolViolation("client does not speak protocol 4.1")
    ext = struct.unpack_from("<I", payload, 28)[0]
    caps = lo | (ext << 32)
    user, pos = read_nul_str(payload, 32)
    if caps & c.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA:
        auth, pos = read_lenenc_str(payload, pos)
        auth = auth or b""
    elif caps & c.CLIENT_SECURE_CONNECTION:
        need(payload, pos, 1, "auth response")
        n = payload[pos]
        need(payload, pos + 1, n, "auth response")
        auth, pos = payload[pos + 1 : pos + 1 + n], pos + 1 + n
    else:
        auth, pos = read_nul_str(payload, pos)
    r = HandshakeResponse(caps, user, auth, max_packet_size=max_packet, charset=charset)
    if caps & c.CLIENT_CONNECT_WITH_DB and pos < len(payload):
        r.database, pos = read_nul_str(payload, pos)
    if caps & c.CLIENT_PLUGIN_AUTH and pos < len(payload):
        name, pos = read_nul_str(payload, pos)
        r.auth_plugin = name.decode("ascii", "replace")
    if caps & c.CLIENT_CONNECT_ATTRS and pos < len(payload):
        total, pos = read_lenenc_int(payload, pos)
        end = pos + (total or 0)
        need(payload, pos, end - pos, "connect attributes")
        while pos < end:
            k, pos = read_lenenc_str(payload, pos)
            v, pos = read_lenenc_str(payload, pos)
            r.connect_attrs[k or b""] = v or b""
    return r


# -- authentication exchange --


def build_auth_switch(plugin: str, data: bytes) -> bytes:
    """AuthSwitchRequest; `data` is sent as is (MySQL servers append a NUL to a scramble)."""
    return b"\xfe" + plugin.encode("ascii") + b"\x00" + data


def parse_auth_switch(payload: bytes) -> tuple[str, bytes]:
    """Returns (plugin name, plugin data without a trailing NUL)."""
    if not payload or payload[0] != c.AUTH_SWITCH_HEADER:
        raise ProtocolViolation("not an AuthSwitchRequest")
    if len(payload) == 1:  # pre-4.1 "use old password" request
        return "mysql_old_password", b""
    name, pos = read_nul_str(payload, 1)
    data = payload[pos:]
    if data.endswith(b"\x00"):
        data = data[:-1]
    return name.decode("ascii", "replace"), data


def build_auth_more_data(data: bytes) -> bytes:
    return b"\x01" + data


def parse_auth_more_data(payload: bytes) -> bytes:
    if not payload or payload[0] != c.AUTH_MORE_DATA_HEADER:
        raise ProtocolViolation("not an AuthMoreData packet")
    return payload[1:]


# -- OK / ERR / EOF --


@dataclass
class OkPacket:
    affected_rows: int = 0
    last_insert_id: int = 0
    status: int = c.SERVER_STATUS_AUTOCOMMIT
    warnings: int = 0
    info: bytes = b""
    session_state: bytes | None = None  # raw session-state-change block, kept as is
    header: int = c.OK_HEADER  # 0xFE when it terminates a result set under DEPRECATE_EOF


def is_ok(payload: bytes) -> bool:
    return bool(payload) and payload[0] == c.OK_HEADER


def is_err(payload: bytes) -> bool:
    return bool(payload) and payload[0] == c.ERR_HEADER


def is_eof(payload: bytes) -> bool:
    """Classic EOF packet (0xFE, shorter than 9 bytes)."""
    return bool(payload) and payload[0] == c.EOF_HEADER and len(payload) < 9


def is_result_end(payload: bytes, caps: int) -> bool:
    """End of rows: EOF, or with DEPRECATE_EOF an OK packet with the 0xFE header."""
    if not payload or payload[0] != c.EOF_HEADER:
        return False
    return len(payload) < 9 or (bool(caps & c.CLIENT_DEPRECATE_EOF) and len(payload) < 0xFFFFFF)


def parse_ok(payload: bytes, caps: int) -> OkPacket:
    if not payload or payload[0] not in (c.OK_HEADER, c.EOF_HEADER):
        raise ProtocolViolation("not an OK packet")
    affected, pos = read_lenenc_int(payload, 1)
    last_id, pos = read_lenenc_int(payload, pos)
    ok = OkPacket(affected or 0, last_id or 0, header=payload[0])
    if caps & (c.CLIENT_PROTOCOL_41 | c.CLIENT_TRANSACTIONS) and len(payload) >= pos + 2:
        ok.status = struct.unpack_from("<H", payload, pos)[0]
        pos += 2
        if caps & c.CLIENT_PROTOCOL_41 and len(payload) >= pos + 2:
            ok.warnings = struct.unpack_from("<H", payload, pos)[0]
            pos += 2
    if caps & c.CLIENT_SESSION_TRACK:
        if pos < len(payload):
            ok.info, pos = read_lenenc_str(payload, pos)
            ok.info = ok.info or b""
        if ok.status & c.SERVER_SESSION_STATE_CHANGED and pos < len(payload):
            ok.session_state, pos = read_lenenc_str(payload, pos)
    else:
        ok.info = payload[pos:]
    return ok


def build_ok(ok: OkPacket, caps: int) -> bytes:
    parts = [
        bytes((ok.header,)),
        write_lenenc_int(ok.affected_rows),
        write_lenenc_int(ok.last_insert_id),
        struct.pack("<HH", ok.status, ok.warnings),
    ]
    if caps & c.CLIENT_SESSION_TRACK:
        if ok.info or ok.session_state is not None:
            parts.append(write_lenenc_str(ok.info))
        if ok.session_state is not None and ok.status & c.SERVER_SESSION_STATE_CHANGED:
            parts.append(write_lenenc_str(ok.session_state))
    else:
        parts.append(ok.info)
    return b"".join(parts)


@dataclass
class ErrPacket:
    code: int
    sqlstate: str
    message: str

    @property
    def is_progress_report(self) -> bool:
        """MariaDB progress reports (MARIADB_CLIENT_PROGRESS) use code 0xFFFF."""
        return self.code == 0xFFFF


def parse_err(payload: bytes) -> ErrPacket:
    if not payload or payload[0] != c.ERR_HEADER:
        raise ProtocolViolation("not an ERR packet")
    need(payload, 1, 2, "ERR packet")
    code = struct.unpack_from("<H", payload, 1)[0]
    if code == 0xFFFF:
        return ErrPacket(code, "", "")
    if payload[3:4] == b"#":
        state, msg = payload[4:9].decode("ascii", "replace"), payload[9:]
    else:
        state, msg = "HY000", payload[3:]
    return ErrPacket(code, state, msg.decode("utf-8", "replace"))


def build_err(code: int, sqlstate: str, message: str) -> bytes:
    state = sqlstate.encode("ascii")
    if len(state) != 5:
        raise ValueError("SQLSTATE must be 5 characters")
    return b"\xff" + struct.pack("<H", code) + b"#" + state + message.encode("utf-8")


def parse_eof(payload: bytes) -> tuple[int, int]:
    """Returns (warnings, status) of a classic EOF packet."""
    if not is_eof(payload):
        raise ProtocolViolation("not an EOF packet")
    if len(payload) < 5:
        return 0, 0
    return struct.unpack_from("<HH", payload, 1)


def build_eof(warnings: int = 0, status: int = c.SERVER_STATUS_AUTOCOMMIT) -> bytes:
    return b"\xfe" + struct.pack("<HH", warnings, status)


# -- result sets --


@dataclass
class ColumnDefinition:
    name: bytes
    type: int
    flags: int = 0
    charset: int = c.CHARSET_UTF8MB4_GENERAL_CI
    length: int = 0
    decimals: int = 0
    schema: bytes = b""
    table: bytes = b""
    org_table: bytes = b""
    org_name: bytes = b""
    catalog: bytes = b"def"
    extended_info: bytes | None = None  # MariaDB MARIADB_CLIENT_EXTENDED_METADATA block

    @property
    def unsigned(self) -> bool:
        return bool(self.flags & c.UNSIGNED_FLAG)


def parse_column_definition(payload: bytes, extended_metadata: bool = False) -> ColumnDefinition:
    vals: list[bytes] = []
    pos = 0
    for _ in range(6):
        v, pos = read_lenenc_str(payload, pos)
        vals.append(v or b"")
    ext = None
    if extended_metadata:
        ext, pos = read_lenenc_str(payload, pos)
    _fixed_len, pos = read_lenenc_int(payload, pos)
    need(payload, pos, 10, "column definition")
    charset, length, typ, flags, decimals = struct.unpack_from("<HIBHB", payload, pos)
    catalog, schema, table, org_table, name, org_name = vals
    return ColumnDefinition(
        name,
        typ,
        flags,
        charset,
        length,
        decimals,
        schema,
        table,
        org_table,
        org_name,
        catalog,
        ext,
    )


def build_column_definition(col: ColumnDefinition, extended_metadata: bool = False) -> bytes:
    parts = [write_lenenc_str(v) for v in (col.catalog, col.schema, col.table, col.org_table, col.name, col.org_name)]
    if extended_metadata:
        parts.append(write_lenenc_str(col.extended_info or b""))
    parts.append(
        b"\x0c" + struct.pack("<HIBHB", col.charset, col.length, col.type, col.flags, col.decimals) + b"\x00\x00"
    )
    return b"".join(parts)


def parse_column_count(payload: bytes) -> int:
    """First packet of a result set (after ruling out OK, ERR and LOCAL INFILE)."""
    n, _ = read_lenenc_int(payload, 0)
    if n is None:
        raise ProtocolViolation("column count is NULL")
    return n


def parse_text_row(payload: bytes, ncols: int) -> list[bytes | None]:
    """The values of a text-protocol row (None for NULL). It runs once per row of a masked
    result, so values under 251 bytes (a one-byte length) are read inline; the rest go
    through `read_lenenc_str`, which checks them the same way."""
    out: list[bytes | None] = []
    append = out.append
    pos = 0
    size = len(payload)
    for _ in range(ncols):
        first = payload[pos] if pos < size else 0xFF
        if first < 0xFB:
            end = pos + 1 + first
            if end > size:
                raise ProtocolViolation("length-encoded string runs past the end of the packet")
            append(payload[pos + 1 : end])
            pos = end
        elif first == 0xFB:
            append(None)
            pos += 1
        elif pos >= size:
            raise ProtocolViolation("text row ends before its last column")
        else:
            v, pos = read_lenenc_str(payload, pos)
            append(v)
    if pos != size:
        raise ProtocolViolation("text row has trailing bytes")
    return out


_SHORT_LENGTHS = [bytes((n,)) for n in range(0xFB)]  # the one-byte length prefixes


def build_text_row(values: list[bytes | None]) -> bytes:
    parts: list[bytes] = []
    append = parts.append
    for v in values:
        if v is None:
            append(b"\xfb")
        elif len(v) < 0xFB:
            append(_SHORT_LENGTHS[len(v)])
            append(v)
        else:
            append(write_lenenc_str(v))
    return b"".join(parts)


# -- prepared statements, queries, LOCAL INFILE --


@dataclass
class StmtPrepareOk:
    statement_id: int
    num_columns: int
    num_params: int
    warnings: int = 0


def parse_stmt_prepare_ok(payload: bytes) -> StmtPrepareOk:
    if not payload or payload[0] != 0 or len(payload) < 9:
        raise ProtocolViolation("not a COM_STMT_PREPARE_OK packet")
    sid, ncols, nparams = struct.unpack_from("<IHH", payload, 1)
    warnings = struct.unpack_from("<H", payload, 10)[0] if len(payload) >= 12 else 0
    return StmtPrepareOk(sid, ncols, nparams, warnings)


def build_stmt_prepare_ok(p: StmtPrepareOk) -> bytes:
    return b"\x00" + struct.pack("<IHHBH", p.statement_id, p.num_columns, p.num_params, 0, p.warnings)


def build_com_query(sql: bytes | str, caps: int = 0) -> bytes:
    text = sql.encode("utf-8") if isinstance(sql, str) else sql
    if caps & c.CLIENT_QUERY_ATTRIBUTES:
        return b"\x03\x00\x01" + text  # zero attributes, one parameter set
    return b"\x03" + text


def parse_com_query(payload: bytes, caps: int = 0) -> bytes:
    """SQL text of a COM_QUERY. Query attributes other than 'none' are refused (fail closed)."""
    if not payload or payload[0] != c.COM_QUERY:
        raise ProtocolViolation("not a COM_QUERY")
    if caps & c.CLIENT_QUERY_ATTRIBUTES:
        nparams, pos = read_lenenc_int(payload, 1)
        _nsets, pos = read_lenenc_int(payload, pos)
        if nparams:
            raise ProtocolViolation("COM_QUERY with query attributes is not supported")
        return payload[pos:]
    return payload[1:]


def is_local_infile_request(payload: bytes) -> bool:
    """A result-set header of 0xFB asks the client to upload a local file."""
    return bool(payload) and payload[0] == c.LOCAL_INFILE_HEADER


def parse_local_infile_request(payload: bytes) -> bytes:
    if not is_local_infile_request(payload):
        raise ProtocolViolation("not a LOCAL INFILE request")
    return payload[1:]
