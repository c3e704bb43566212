"""Builders and parsers for the MySQL/MariaDB connection phase: the server's handshake, the
client's SSLRequest and HandshakeResponse41, and the authentication exchange.

Every function works on one logical payload (no 4-byte header); framing is codec.py's job.
Capabilities are one int: bits 0..31 standard, bits 32..63 MariaDB extended capabilities.
What follows the login (OK / ERR, result sets, statements) is in packets.py.
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
