"""Binary result rows (the rows of COM_STMT_EXECUTE results): parse and rebuild them losslessly.

Values: int (signedness from UNSIGNED_FLAG), float, MyDateTime, MyTime, or bytes for every
length-encoded type (DECIMAL travels as its decimal string; strings, blobs, JSON, BIT, ...).
Dates and times use plain value classes because MySQL allows zero dates that
datetime.date cannot hold; they re-encode losslessly.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from hoop.server.mysql import codec as c
from hoop.server.mysql.codec import ProtocolViolation, need, read_lenenc_str, write_lenenc_str
from hoop.server.mysql.packets import ColumnDefinition


@dataclass(frozen=True)
class MyDateTime:
    year: int = 0
    month: int = 0
    day: int = 0
    hour: int = 0
    minute: int = 0
    second: int = 0
    microsecond: int = 0


@dataclass(frozen=True)
class MyTime:
    negative: bool = False
    days: int = 0
    hours: int = 0
    minutes: int = 0
    seconds: int = 0
    microseconds: int = 0


BinaryValue = int | float | bytes | MyDateTime | MyTime | None

_INT_FORMATS = {
    c.MYSQL_TYPE_TINY: ("<b", "<B"),
    c.MYSQL_TYPE_SHORT: ("<h", "<H"),
    c.MYSQL_TYPE_YEAR: ("<h", "<H"),
    c.MYSQL_TYPE_LONG: ("<i", "<I"),
    c.MYSQL_TYPE_INT24: ("<i", "<I"),
    c.MYSQL_TYPE_LONGLONG: ("<q", "<Q"),
}
_DATE_TYPES = frozenset((c.MYSQL_TYPE_DATE, c.MYSQL_TYPE_DATETIME, c.MYSQL_TYPE_TIMESTAMP, c.MYSQL_TYPE_NEWDATE))
_TIME_TYPE = c.MYSQL_TYPE_TIME


def _bitmap_len(ncols: int) -> int:
    return (ncols + 7 + 2) // 8


def parse_binary_row(payload: bytes, columns: Sequence[ColumnDefinition]) -> list[BinaryValue]:
    if not payload or payload[0] != 0:
        raise ProtocolViolation("binary row must start with 0x00")
    nb = _bitmap_len(len(columns))
    need(payload, 1, nb, "binary row null bitmap")
    bitmap = payload[1 : 1 + nb]
    pos = 1 + nb
    out: list[BinaryValue] = []
    try:
        for i, col in enumerate(columns):
            bit = i + 2
            if bitmap[bit >> 3] & (1 << (bit & 7)):
                out.append(None)
                continue
            value, pos = _read_binary_value(payload, pos, col)
            out.append(value)
    except struct.error:
        raise ProtocolViolation("truncated binary row") from None
    if pos != len(payload):
        raise ProtocolViolation("binary row has trailing bytes")
    return out


def _read_binary_value(p: bytes, pos: int, col: ColumnDefinition) -> tuple[BinaryValue, int]:
    t = col.type
    fmt = _INT_FORMATS.get(t)
    if fmt is not None:
        s = struct.Struct(fmt[1] if col.flags & c.UNSIGNED_FLAG else fmt[0])
        return s.unpack_from(p, pos)[0], pos + s.size
    if t == c.MYSQL_TYPE_DOUBLE:
        return struct.unpack_from("<d", p, pos)[0], pos + 8
    if t == c.MYSQL_TYPE_FLOAT:
        return struct.unpack_from("<f", p, pos)[0], pos + 4
    if t == c.MYSQL_TYPE_NULL:
        return None, pos
    if t in _DATE_TYPES:
        n = p[pos]
        if n not in (0, 4, 7, 11):
            raise ProtocolViolation(f"bad binary date length {n}")
        need(p, pos + 1, n, "binary date")
        y, mo, d, h, mi, s_, us = 0, 0, 0, 0, 0, 0, 0
        if n >= 4:
            y, mo, d = struct.unpack_from("<HBB", p, pos + 1)
        if n >= 7:
            h, mi, s_ = p[pos + 5], p[pos + 6], p[pos + 7]
        if n == 11:
            us = struct.unpack_from("<I", p, pos + 8)[0]
        return MyDateTime(y, mo, d, h, mi, s_, us), pos + 1 + n
    if t == _TIME_TYPE:
        n = p[pos]
        if n not in (0, 8, 12):
            raise ProtocolViolation(f"bad binary time length {n}")
        need(p, pos + 1, n, "binary time")
        if n == 0:
            return MyTime(), pos + 1
        neg, days, h, mi, s_ = struct.unpack_from("<BIBBB", p, pos + 1)
        us = struct.unpack_from("<I", p, pos + 9)[0] if n == 12 else 0
        return MyTime(bool(neg), days, h, mi, s_, us), pos + 1 + n
    v, pos = read_lenenc_str(p, pos)
    if v is None:
        raise ProtocolViolation("NULL marker inside a binary row value")
    return v, pos


def _write_binary_value(v: BinaryValue, col: ColumnDefinition) -> bytes:
    t = col.type
    fmt = _INT_FORMATS.get(t)
    if fmt is not None:
        if not isinstance(v, int):
            raise TypeError(f"column {col.name!r} needs an int")
        return struct.pack(fmt[1] if col.flags & c.UNSIGNED_FLAG else fmt[0], v)
    if t == c.MYSQL_TYPE_DOUBLE:
        return struct.pack("<d", v)
    if t == c.MYSQL_TYPE_FLOAT:
        return struct.pack("<f", v)
    if t in _DATE_TYPES:
        if not isinstance(v, MyDateTime):
            raise TypeError(f"column {col.name!r} needs a MyDateTime")
        date = struct.pack("<HBB", v.year, v.month, v.day)
        if v.microsecond:
            return b"\x0b" + date + bytes((v.hour, v.minute, v.second)) + struct.pack("<I", v.microsecond)
        if v.hour or v.minute or v.second:
            return b"\x07" + date + bytes((v.hour, v.minute, v.second))
        if v.year or v.month or v.day:
            return b"\x04" + date
        return b"\x00"
    if t == _TIME_TYPE:
        if not isinstance(v, MyTime):
            raise TypeError(f"column {col.name!r} needs a MyTime")
        body = struct.pack("<BIBBB", v.negative, v.days, v.hours, v.minutes, v.seconds)
        if v.microseconds:
            return b"\x0c" + body + struct.pack("<I", v.microseconds)
        if v.days or v.hours or v.minutes or v.seconds:
            return b"\x08" + body
        return b"\x00"
    if not isinstance(v, (bytes, bytearray, memoryview)):
        raise TypeError(f"column {col.name!r} needs bytes")
    return write_lenenc_str(v)


def build_binary_row(values: Sequence[BinaryValue], columns: Sequence[ColumnDefinition]) -> bytes:
    if len(values) != len(columns):
        raise ValueError("one value per column")
    bitmap = bytearray(_bitmap_len(len(columns)))
    body: list[bytes] = []
    for i, (v, col) in enumerate(zip(values, columns)):
        if v is None or col.type == c.MYSQL_TYPE_NULL:
            bit = i + 2
            bitmap[bit >> 3] |= 1 << (bit & 7)
        else:
            body.append(_write_binary_value(v, col))
    return b"\x00" + bytes(bitmap) + b"".join(body)


def text_value(v: BinaryValue, col: ColumnDefinition) -> bytes | None:
    """A binary value as the text protocol would show it (for the recording's samples)."""
    if v is None or isinstance(v, bytes):
        return v
    if isinstance(v, MyDateTime):
        text = f"{v.year:04d}-{v.month:02d}-{v.day:02d}"
        if col.type not in (c.MYSQL_TYPE_DATE, c.MYSQL_TYPE_NEWDATE):
            text += f" {v.hour:02d}:{v.minute:02d}:{v.second:02d}"
            if v.microsecond:
                text += f".{v.microsecond:06d}"
        return text.encode()
    if isinstance(v, MyTime):
        text = f"{'-' if v.negative else ''}{v.days * 24 + v.hours:02d}:{v.minutes:02d}:{v.seconds:02d}"
        return (text + f".{v.microseconds:06d}" if v.microseconds else text).encode()
    if isinstance(v, float):  # FLOAT is single precision: its shortest text has about 6 digits
        return (f"{v:g}" if col.type == c.MYSQL_TYPE_FLOAT else repr(v)).encode()
    return str(v).encode()
