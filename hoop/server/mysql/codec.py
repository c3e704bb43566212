"""Sans-IO MySQL/MariaDB packet framing, length-encoded values and protocol constants.

A MySQL packet is a 3-byte little-endian payload length, a 1-byte sequence id and the
payload. Payloads of 16 MiB - 1 (0xFFFFFF) or more are split into 0xFFFFFF-byte chunks;
a chunk of exactly 0xFFFFFF bytes means "more follows", so a logical payload whose length
is a multiple of 0xFFFFFF ends with an empty packet. Nothing here does I/O.
"""

from __future__ import annotations

import struct

MAX_CHUNK = 0xFFFFFF
DEFAULT_MAX_PAYLOAD_TOTAL = 64 * 1024 * 1024

# -- capability flags (low 32 bits; MariaDB's extended capabilities live in bits 32..63) --
CLIENT_LONG_PASSWORD = 1 << 0  # MariaDB servers clear this bit ("CLIENT_MYSQL") to signal
CLIENT_MYSQL = CLIENT_LONG_PASSWORD  # that the handshake carries MariaDB extended caps
CLIENT_FOUND_ROWS = 1 << 1
CLIENT_LONG_FLAG = 1 << 2
CLIENT_CONNECT_WITH_DB = 1 << 3
CLIENT_NO_SCHEMA = 1 << 4
CLIENT_COMPRESS = 1 << 5
CLIENT_ODBC = 1 << 6
CLIENT_LOCAL_FILES = 1 << 7
CLIENT_IGNORE_SPACE = 1 << 8
CLIENT_PROTOCOL_41 = 1 << 9
CLIENT_INTERACTIVE = 1 << 10
CLIENT_SSL = 1 << 11
CLIENT_IGNORE_SIGPIPE = 1 << 12
CLIENT_TRANSACTIONS = 1 << 13
CLIENT_RESERVED = 1 << 14
CLIENT_SECURE_CONNECTION = 1 << 15
CLIENT_MULTI_STATEMENTS = 1 << 16
CLIENT_MULTI_RESULTS = 1 << 17
CLIENT_PS_MULTI_RESULTS = 1 << 18
CLIENT_PLUGIN_AUTH = 1 << 19
CLIENT_CONNECT_ATTRS = 1 << 20
CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA = 1 << 21
CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS = 1 << 22
CLIENT_SESSION_TRACK = 1 << 23
CLIENT_DEPRECATE_EOF = 1 << 24
CLIENT_OPTIONAL_RESULTSET_METADATA = 1 << 25
CLIENT_ZSTD_COMPRESSION_ALGORITHM = 1 << 26
CLIENT_QUERY_ATTRIBUTES = 1 << 27
CLIENT_MULTI_FACTOR_AUTHENTICATION = 1 << 28
CLIENT_SSL_VERIFY_SERVER_CERT = 1 << 30
CLIENT_REMEMBER_OPTIONS = 1 << 31

MARIADB_CLIENT_PROGRESS = 1 << 32
MARIADB_CLIENT_COM_MULTI = 1 << 33
MARIADB_CLIENT_STMT_BULK_OPERATIONS = 1 << 34
MARIADB_CLIENT_EXTENDED_METADATA = 1 << 35
MARIADB_CLIENT_CACHE_METADATA = 1 << 36
MARIADB_CLIENT_BULK_UNIT_RESULTS = 1 << 37

# -- server status flags --
SERVER_STATUS_IN_TRANS = 0x0001
SERVER_STATUS_AUTOCOMMIT = 0x0002
SERVER_MORE_RESULTS_EXISTS = 0x0008
SERVER_QUERY_NO_GOOD_INDEX_USED = 0x0010
SERVER_QUERY_NO_INDEX_USED = 0x0020
SERVER_STATUS_CURSOR_EXISTS = 0x0040
SERVER_STATUS_LAST_ROW_SENT = 0x0080
SERVER_STATUS_DB_DROPPED = 0x0100
SERVER_STATUS_NO_BACKSLASH_ESCAPES = 0x0200
SERVER_STATUS_METADATA_CHANGED = 0x0400
SERVER_QUERY_WAS_SLOW = 0x0800
SERVER_PS_OUT_PARAMS = 0x1000
SERVER_STATUS_IN_TRANS_READONLY = 0x2000
SERVER_SESSION_STATE_CHANGED = 0x4000

# -- command bytes (first payload byte of a client command) --
COM_SLEEP = 0x00
COM_QUIT = 0x01
COM_INIT_DB = 0x02
COM_QUERY = 0x03
COM_FIELD_LIST = 0x04
COM_CREATE_DB = 0x05
COM_DROP_DB = 0x06
COM_REFRESH = 0x07
COM_SHUTDOWN = 0x08
COM_STATISTICS = 0x09
COM_PROCESS_INFO = 0x0A
COM_CONNECT = 0x0B
COM_PROCESS_KILL = 0x0C
COM_DEBUG = 0x0D
COM_PING = 0x0E
COM_TIME = 0x0F
COM_DELAYED_INSERT = 0x10
COM_CHANGE_USER = 0x11
COM_BINLOG_DUMP = 0x12
COM_TABLE_DUMP = 0x13
COM_CONNECT_OUT = 0x14
COM_REGISTER_SLAVE = 0x15
COM_STMT_PREPARE = 0x16
COM_STMT_EXECUTE = 0x17
COM_STMT_SEND_LONG_DATA = 0x18
COM_STMT_CLOSE = 0x19
COM_STMT_RESET = 0x1A
COM_SET_OPTION = 0x1B
COM_STMT_FETCH = 0x1C
COM_DAEMON = 0x1D
COM_BINLOG_DUMP_GTID = 0x1E
COM_RESET_CONNECTION = 0x1F
COM_STMT_BULK_EXECUTE = 0xFA  # MariaDB
COM_MULTI = 0xFE  # MariaDB

# -- response header bytes --
OK_HEADER = 0x00
AUTH_MORE_DATA_HEADER = 0x01
LOCAL_INFILE_HEADER = 0xFB
EOF_HEADER = 0xFE
AUTH_SWITCH_HEADER = 0xFE
ERR_HEADER = 0xFF

# -- column types --
MYSQL_TYPE_DECIMAL = 0
MYSQL_TYPE_TINY = 1
MYSQL_TYPE_SHORT = 2
MYSQL_TYPE_LONG = 3
MYSQL_TYPE_FLOAT = 4
MYSQL_TYPE_DOUBLE = 5
MYSQL_TYPE_NULL = 6
MYSQL_TYPE_TIMESTAMP = 7
MYSQL_TYPE_LONGLONG = 8
MYSQL_TYPE_INT24 = 9
MYSQL_TYPE_DATE = 10
MYSQL_TYPE_TIME = 11
MYSQL_TYPE_DATETIME = 12
MYSQL_TYPE_YEAR = 13
MYSQL_TYPE_NEWDATE = 14
MYSQL_TYPE_VARCHAR = 15
MYSQL_TYPE_BIT = 16
MYSQL_TYPE_TIMESTAMP2 = 17
MYSQL_TYPE_DATETIME2 = 18
MYSQL_TYPE_TIME2 = 19
MYSQL_TYPE_JSON = 245
MYSQL_TYPE_NEWDECIMAL = 246
MYSQL_TYPE_ENUM = 247
MYSQL_TYPE_SET = 248
MYSQL_TYPE_TINY_BLOB = 249
MYSQL_TYPE_MEDIUM_BLOB = 250
MYSQL_TYPE_LONG_BLOB = 251
MYSQL_TYPE_BLOB = 252
MYSQL_TYPE_VAR_STRING = 253
MYSQL_TYPE_STRING = 254
MYSQL_TYPE_GEOMETRY = 255

# -- column definition flags --
NOT_NULL_FLAG = 1
PRI_KEY_FLAG = 2
UNIQUE_KEY_FLAG = 4
MULTIPLE_KEY_FLAG = 8
BLOB_FLAG = 16
UNSIGNED_FLAG = 32
ZEROFILL_FLAG = 64
BINARY_FLAG = 128
ENUM_FLAG = 256
AUTO_INCREMENT_FLAG = 512
TIMESTAMP_FLAG = 1024
SET_FLAG = 2048
NUM_FLAG = 32768

CHARSET_UTF8MB4_GENERAL_CI = 45
CHARSET_BINARY = 63


class ProtocolViolation(Exception):
    """The peer sent bytes that are not a valid MySQL packet stream or message."""


_HDR = struct.Struct("<I")


class PacketFramer:
    """Incremental packet reader over a growable buffer.

    `next()` yields logical packets (16 MiB chunks reassembled); `split_complete()` is the
    raw pass-through mode: all complete wire packets buffered so far, as one bytes object
    plus (seq, payload_start, payload_end) per wire packet. The two can be mixed.
    """

    __slots__ = ("_buf", "_max_total", "_pos")

    def __init__(self, max_payload_total: int = DEFAULT_MAX_PAYLOAD_TOTAL) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._max_total = max_payload_total

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self._pos and self._pos >= len(self._buf) // 2:
            # Drop consumed bytes only when they dominate, so compaction stays amortised O(1).
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned."""
        return len(self._buf) - self._pos

    def take_rest(self) -> bytes:
        """Return and drop everything buffered (e.g. to hand over bytes after a handshake)."""
        rest = bytes(self._buf[self._pos :])
        self._buf.clear()
        self._pos = 0
        return rest

    def next(self) -> tuple[int, bytes] | None:
        """Return (sequence_id, payload) of the next complete logical packet, or None.

        For a payload split over several wire packets the sequence id is the last chunk's,
        i.e. the one the next packet in the conversation follows.
        """
        buf = self._buf
        pos = self._pos
        avail = len(buf)
        if avail - pos < 4:
            return None
        (hdr,) = _HDR.unpack_from(buf, pos)
        length = hdr & 0xFFFFFF
        seq = hdr >> 24
        end = pos + 4 + length
        if length < MAX_CHUNK:
            if end > avail:
                return None
            self._pos = end
            return seq, bytes(buf[pos + 4 : end])
        return self._next_split(buf, pos, avail)

    def _next_split(self, buf: bytearray, pos: int, avail: int) -> tuple[int, bytes] | None:
        spans: list[tuple[int, int]] = []
        total = 0
        expect_seq: int | None = None
        while True:
            if avail - pos < 4:
                return None
            (hdr,) = _HDR.unpack_from(buf, pos)
            length = hdr & 0xFFFFFF
            seq = hdr >> 24
            if expect_seq is not None and seq != expect_seq:
                raise ProtocolViolation(f"split packet chunk has sequence id {seq}, expected {expect_seq}")
            total += length
            if total > self._max_total:
                raise ProtocolViolation(f"packet payload exceeds {self._max_total} bytes")
            if pos + 4 + length > avail:
                return None
            spans.append((pos + 4, pos + 4 + length))
            pos += 4 + length
            if length < MAX_CHUNK:
                break
            expect_seq = (seq + 1) & 0xFF
        self._pos = pos
        return seq, b"".join(bytes(buf[a:b]) for a, b in spans)

    def split_complete(self) -> tuple[bytes, list[tuple[int, int, int]]] | None:
        """Raw mode: every complete wire packet buffered, as one slice, or None.

        Returns (data, [(seq, payload_start, payload_end), ...]) with offsets into `data`.
        A chunk whose payload is exactly MAX_CHUNK bytes continues in the next entry.
        """
        buf = self._buf
        start = self._pos
        marks, pos = _scan(buf, start)
        if not marks:
            return None
        self._pos = pos
        return bytes(buf[start:pos]), marks

    def feed_and_split(self, data: bytes) -> tuple[bytes, list[tuple[int, int, int]]] | None:
        """`feed(data)` then `split_complete()`, without copying `data` through the buffer
        when nothing was pending (the usual case: a response arrives in whole packets)."""
        if self._pos < len(self._buf):
            self.feed(data)
            return self.split_complete()
        marks, pos = _scan(data, 0)
        if pos < len(data):
            self._buf = bytearray(data[pos:])
        elif self._buf:
            self._buf.clear()
        self._pos = 0
        if not marks:
            return None
        return (data if pos == len(data) else data[:pos]), marks


def _scan(buf: bytes | bytearray, start: int) -> tuple[list[tuple[int, int, int]], int]:
    """Complete wire packets from `start`: their (seq, payload_start, payload_end) relative to
    `start`, and where the first incomplete one begins."""
    pos = start
    avail = len(buf)
    marks: list[tuple[int, int, int]] = []
    unpack = _HDR.unpack_from
    while avail - pos >= 4:
        (hdr,) = unpack(buf, pos)
        end = pos + 4 + (hdr & 0xFFFFFF)
        if end > avail:
            break
        marks.append((hdr >> 24, pos + 4 - start, end - start))
        pos = end
    return marks, pos


def encode_packet(payload: bytes | bytearray | memoryview, seq: int) -> bytes:
    """Frame `payload` starting at sequence id `seq`, splitting at 0xFFFFFF bytes.

    The next packet of the conversation uses `seq + packet_count(len(payload))` (mod 256).
    """
    n = len(payload)
    if n < MAX_CHUNK:
        return _HDR.pack(n | ((seq & 0xFF) << 24)) + bytes(payload)
    out = bytearray()
    view = memoryview(payload)
    for off in range(0, n + 1, MAX_CHUNK):
        chunk = view[off : off + MAX_CHUNK]
        out += _HDR.pack(len(chunk) | ((seq & 0xFF) << 24))
        out += chunk
        seq += 1
    return bytes(out)


def packet_count(payload_len: int) -> int:
    """Number of wire packets `encode_packet` emits for a payload of this length."""
    return payload_len // MAX_CHUNK + 1


def first_seq(last_seq: int, payload_len: int) -> int:
    """The sequence id a payload's first wire packet had, from its last one's (what
    `PacketFramer.next` reports): the id to frame the payload again as it came."""
    return (last_seq - packet_count(payload_len) + 1) & 0xFF


# -- length-encoded integers and strings --


def need(payload: bytes, pos: int, n: int, what: str) -> None:
    """Raise ProtocolViolation unless `payload` holds `n` bytes from `pos`."""
    if len(payload) < pos + n:
        raise ProtocolViolation(f"truncated {what}")


def read_lenenc_int(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int | None, int]:
    """Read a length-encoded integer at `pos`; returns (value, next_pos). 0xFB means NULL."""
    try:
        first = buf[pos]
        if first < 0xFB:
            return first, pos + 1
        if first == 0xFC:
            return buf[pos + 1] | (buf[pos + 2] << 8), pos + 3
        if first == 0xFD:
            return buf[pos + 1] | (buf[pos + 2] << 8) | (buf[pos + 3] << 16), pos + 4
        if first == 0xFE:
            if len(buf) < pos + 9:
                raise ProtocolViolation("truncated 8-byte length-encoded integer")
            return int.from_bytes(buf[pos + 1 : pos + 9], "little"), pos + 9
        if first == 0xFB:
            return None, pos + 1
    except IndexError:
        raise ProtocolViolation("truncated length-encoded integer") from None
    raise ProtocolViolation("0xFF is not a valid length-encoded integer prefix")


def write_lenenc_int(value: int) -> bytes:
    if value < 0:
        raise ValueError("length-encoded integers are unsigned")
    if value < 0xFB:
        return bytes((value,))
    if value < 1 << 16:
        return b"\xfc" + value.to_bytes(2, "little")
    if value < 1 << 24:
        return b"\xfd" + value.to_bytes(3, "little")
    if value < 1 << 64:
        return b"\xfe" + value.to_bytes(8, "little")
    raise ValueError("value does not fit a length-encoded integer")


def read_lenenc_str(buf: bytes | bytearray | memoryview, pos: int) -> tuple[bytes | None, int]:
    """Read a length-encoded string; returns (bytes or None for 0xFB NULL, next_pos)."""
    length, pos = read_lenenc_int(buf, pos)
    if length is None:
        return None, pos
    end = pos + length
    if end > len(buf):
        raise ProtocolViolation("length-encoded string runs past the end of the packet")
    return bytes(buf[pos:end]), end


def write_lenenc_str(value: bytes | bytearray | memoryview) -> bytes:
    return write_lenenc_int(len(value)) + bytes(value)


def read_nul_str(buf: bytes | bytearray | memoryview, pos: int) -> tuple[bytes, int]:
    """Read a NUL-terminated string; returns (bytes without the NUL, position after it)."""
    data = bytes(buf) if isinstance(buf, memoryview) else buf
    end = data.find(b"\x00", pos)
    if end < 0:
        raise ProtocolViolation("missing NUL terminator")
    return bytes(data[pos:end]), end + 1
