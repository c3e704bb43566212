"""Builders and parsers for MySQL/MariaDB command-phase messages: OK / ERR / EOF, result
sets, prepared statements, queries and LOCAL INFILE requests.

Every function works on one logical payload (no 4-byte header); framing is codec.py's job.
Capabilities are one int: bits 0..31 standard, bits 32..63 MariaDB extended capabilities.
The login (handshake, handshake response, authentication exchange) is connection_phase.py's;
binary result rows (COM_STMT_EXECUTE results) are in binary_rows.py.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from hoop.server.mysql import codec as c
from hoop.server.mysql.codec import (
    ProtocolViolation,
    need,
    read_lenenc_int,
    read_lenenc_str,
    write_lenenc_int,
    write_lenenc_str,
)

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
            info, pos = read_lenenc_str(payload, pos)
            ok.info = info or b""
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
