"""Sans-IO PostgreSQL wire protocol (v3) codec: backend message builders and all parsers.

No I/O happens here (framing is framing.py's job; the messages a client sends are built in
frontend.py). Builders return ``bytes``; parsers take a message *body* (the bytes
after the 5-byte type+length header, or after the 4-byte length of a startup-phase message) as
``bytes`` or ``memoryview``. Text is UTF-8 with ``surrogateescape`` so that any byte sequence
round-trips unchanged through parse -> build.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from hoop.server.postgres.framing import ProtocolViolation

PROTOCOL_3_0 = 196608
SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104
CANCEL_REQUEST_CODE = 80877102

_I32 = struct.Struct("!i")
_U32 = struct.Struct("!I")
_I16 = struct.Struct("!h")
_HDR = struct.Struct("!cI")  # type byte + length
_FIELD = struct.Struct("!IhIhih")  # RowDescription per-field trailer after the name
NULL_VALUE = b"\xff\xff\xff\xff"  # a value's length of -1: SQL NULL
_ENC = "utf-8"
_ERRS = "surrogateescape"


# --------------------------------------------------------------------------- builders


def text_bytes(text: str) -> bytes:
    raw = text.encode(_ENC, _ERRS)
    if b"\0" in raw:
        raise ValueError("protocol strings cannot contain NUL bytes")
    return raw


def cstr(text: str) -> bytes:
    return text_bytes(text) + b"\0"


def message(type_byte: bytes, payload: bytes = b"") -> bytes:
    """Frame a typed message: type byte + int32 length (self-inclusive) + payload."""
    return _HDR.pack(type_byte, len(payload) + 4) + payload


def authentication_ok() -> bytes:
    return message(b"R", _I32.pack(0))


def authentication_cleartext_password() -> bytes:
    return message(b"R", _I32.pack(3))


def authentication_md5_password(salt: bytes) -> bytes:
    return message(b"R", _I32.pack(5) + salt)


def authentication_sasl(mechanisms: Sequence[str]) -> bytes:
    return message(b"R", _I32.pack(10) + b"".join(cstr(m) for m in mechanisms) + b"\0")


def authentication_sasl_continue(data: bytes) -> bytes:
    return message(b"R", _I32.pack(11) + data)


def authentication_sasl_final(data: bytes) -> bytes:
    return message(b"R", _I32.pack(12) + data)


def parameter_status(name: str, value: str) -> bytes:
    return message(b"S", cstr(name) + cstr(value))


def backend_key_data(pid: int, key: int) -> bytes:
    return message(b"K", _I32.pack(pid) + _I32.pack(key))


def ready_for_query(status: bytes = b"I") -> bytes:
    if status not in (b"I", b"T", b"E"):
        raise ValueError(f"invalid transaction status {status!r}")
    return message(b"Z", status)


def _fields_payload(
    severity: str, sqlstate: str, text: str, detail: str | None, hint: str | None, position: int | None = None
) -> bytes:
    if len(sqlstate) != 5:
        raise ValueError(f"SQLSTATE must be 5 characters, got {sqlstate!r}")
    parts = [b"S" + cstr(severity), b"V" + cstr(severity), b"C" + cstr(sqlstate)]
    parts.append(b"M" + cstr(text))
    if detail is not None:
        parts.append(b"D" + cstr(detail))
    if hint is not None:
        parts.append(b"H" + cstr(hint))
    if position is not None:
        parts.append(b"P" + cstr(str(position)))
    return b"".join(parts) + b"\0"


def error_response(
    severity: str,
    sqlstate: str,
    text: str,
    detail: str | None = None,
    hint: str | None = None,
    position: int | None = None,
) -> bytes:
    """`position`: 1-based character index into the query text (field P), as the server gives it
    for a syntax error; clients use it to point at the error."""
    return message(b"E", _fields_payload(severity, sqlstate, text, detail, hint, position))


def notice_response(
    severity: str, sqlstate: str, text: str, detail: str | None = None, hint: str | None = None
) -> bytes:
    return message(b"N", _fields_payload(severity, sqlstate, text, detail, hint))


def command_complete(tag: str) -> bytes:
    return message(b"C", cstr(tag))


def empty_query_response() -> bytes:
    return message(b"I")


def parse_complete() -> bytes:
    return message(b"1")


def bind_complete() -> bytes:
    return message(b"2")


def close_complete() -> bytes:
    return message(b"3")


def no_data() -> bytes:
    return message(b"n")


@dataclass(frozen=True, slots=True)
class Field:
    """One column of a RowDescription. Defaults describe an untyped text column."""

    name: str
    table_oid: int = 0
    attnum: int = 0
    type_oid: int = 25
    typlen: int = -1
    typmod: int = -1
    format: int = 0


def row_description(fields: Sequence[Field]) -> bytes:
    parts = [_I16.pack(len(fields))]
    for f in fields:
        parts.append(cstr(f.name))
        parts.append(_FIELD.pack(f.table_oid, f.attnum, f.type_oid, f.typlen, f.typmod, f.format))
    return message(b"T", b"".join(parts))


def data_row(values: Sequence[bytes | None]) -> bytes:
    """Build a DataRow (also the way to rebuild one after rewriting values): one join, the
    length known before it, since masking rebuilds every row it changes."""
    parts = [b"", _I16.pack(len(values))]
    append = parts.append
    size = 6  # the length field and the count
    for v in values:
        if v is None:
            append(NULL_VALUE)
            size += 4
        else:
            append(_I32.pack(len(v)))
            append(v)
            size += 4 + len(v)
    parts[0] = _HDR.pack(b"D", size)
    return b"".join(parts)


# --------------------------------------------------------------------------- parsers


class _Reader:
    """Cursor over a message body with bounds-checked reads."""

    __slots__ = ("data", "pos", "what")

    def __init__(self, data: bytes | memoryview, what: str) -> None:
        self.data = data if isinstance(data, bytes) else bytes(data)
        self.pos = 0
        self.what = what

    def _short(self, need: str) -> ProtocolViolation:
        return ProtocolViolation(f"{self.what}: truncated message (expected {need})")

    def cstr(self) -> str:
        return self.cbytes().decode(_ENC, _ERRS)

    def cbytes(self) -> bytes:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise ProtocolViolation(f"{self.what}: string is missing its NUL terminator")
        s = self.data[self.pos : end]
        self.pos = end + 1
        return s

    def _unpack(self, st: struct.Struct, need: str) -> int:
        if self.pos + st.size > len(self.data):
            raise self._short(need)
        v: int = st.unpack_from(self.data, self.pos)[0]
        self.pos += st.size
        return v

    def i32(self) -> int:
        return self._unpack(_I32, "int32")

    def u32(self) -> int:
        return self._unpack(_U32, "uint32")

    def i16(self) -> int:
        return self._unpack(_I16, "int16")

    def count(self) -> int:
        """A count of items: the protocol's Int16 counts are unsigned (up to 65,535 parameters)."""
        return self.i16() & 0xFFFF

    def raw(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise self._short(f"{n} bytes")
        v = self.data[self.pos : self.pos + n]
        self.pos += n
        return v

    def value(self) -> bytes | None:
        n = self.i32()
        if n == -1:
            return None
        if n < -1:
            raise ProtocolViolation(f"{self.what}: invalid value length {n}")
        return self.raw(n)

    def rest(self) -> bytes:
        v = self.data[self.pos :]
        self.pos = len(self.data)
        return v

    def byte(self) -> str:
        return self.raw(1).decode("latin-1")

    def end(self) -> None:
        if self.pos != len(self.data):
            extra = len(self.data) - self.pos
            raise ProtocolViolation(f"{self.what}: {extra} unexpected trailing bytes")


@dataclass(frozen=True, slots=True)
class Startup:
    kind: str  # 'startup' | 'ssl' | 'gssenc' | 'cancel'
    version: int = 0
    params: dict[str, str] = field(default_factory=dict)
    pid: int = 0
    key: int = 0


def parse_startup(data: bytes | memoryview) -> Startup:
    """Parse a startup-phase message body (everything after its 4-byte length)."""
    r = _Reader(data, "startup message")
    code = r.i32()
    if code == SSL_REQUEST_CODE:
        r.end()
        return Startup("ssl", code)
    if code == GSSENC_REQUEST_CODE:
        r.end()
        return Startup("gssenc", code)
    if code == CANCEL_REQUEST_CODE:
        pid, key = r.i32(), r.i32()
        r.end()
        return Startup("cancel", code, pid=pid, key=key)
    if code >> 16 != 3:
        raise ProtocolViolation(f"unsupported frontend protocol {code >> 16}.{code & 0xFFFF}: only 3.x is supported")
    params: dict[str, str] = {}
    while True:
        name = r.cstr()
        if not name:
            break
        params[name] = r.cstr()
    r.end()
    return Startup("startup", code, params)


def parse_error_fields(data: bytes | memoryview) -> dict[str, str]:
    """ErrorResponse / NoticeResponse body -> {single-letter code: text}."""
    r = _Reader(data, "error fields")
    out: dict[str, str] = {}
    while True:
        code = r.byte()
        if code == "\0":
            break
        out[code] = r.cstr()
    r.end()
    return out


def parse_authentication(data: bytes | memoryview) -> tuple[int, bytes]:
    r = _Reader(data, "authentication request")
    return r.i32(), r.rest()


def parse_sasl_mechanisms(payload: bytes) -> list[str]:
    """The payload of AuthenticationSASL (code 10) -> mechanism names."""
    r = _Reader(payload, "SASL mechanisms")
    names = []
    while name := r.cstr():
        names.append(name)
    r.end()
    return names


def parse_backend_key_data(data: bytes | memoryview) -> tuple[int, int]:
    r = _Reader(data, "BackendKeyData")
    pid, key = r.i32(), r.i32()
    r.end()
    return pid, key


def parse_parameter_status(data: bytes | memoryview) -> tuple[str, str]:
    r = _Reader(data, "ParameterStatus")
    name, value = r.cstr(), r.cstr()
    r.end()
    return name, value


def parse_ready_for_query(data: bytes | memoryview) -> bytes:
    status = bytes(data)
    if status not in (b"I", b"T", b"E"):
        raise ProtocolViolation(f"ReadyForQuery: invalid transaction status {status!r}")
    return status


def parse_row_description(data: bytes | memoryview) -> list[Field]:
    r = _Reader(data, "RowDescription")
    fields = []
    for _ in range(r.count()):
        name = r.cstr()
        if r.pos + _FIELD.size > len(r.data):
            raise r._short("field attributes")
        fields.append(Field(name, *_FIELD.unpack_from(r.data, r.pos)))
        r.pos += _FIELD.size
    r.end()
    return fields


def parse_data_row(data: bytes | memoryview) -> list[bytes | None]:
    """The values of a DataRow body (None for SQL NULL). Runs once per row of a masked result,
    so it walks the body inline rather than through `_Reader`; the checks are the same."""
    buf = data if isinstance(data, bytes) else bytes(data)
    size = len(buf)
    if size < 2:
        raise ProtocolViolation("DataRow: truncated message (expected int16)")
    (count,) = _I16.unpack_from(buf)
    if count < 0:
        raise ProtocolViolation(f"DataRow: negative count {count}")
    values: list[bytes | None] = []
    append = values.append
    unpack = _I32.unpack_from
    pos = 2
    for _ in range(count):
        if pos + 4 > size:
            raise ProtocolViolation("DataRow: truncated message (expected int32)")
        (n,) = unpack(buf, pos)
        pos += 4
        if n < 0:
            if n != -1:
                raise ProtocolViolation(f"DataRow: invalid value length {n}")
            append(None)
            continue
        if pos + n > size:
            raise ProtocolViolation(f"DataRow: truncated message (expected {n} bytes)")
        append(buf[pos : pos + n])
        pos += n
    if pos != size:
        raise ProtocolViolation(f"DataRow: {size - pos} unexpected trailing bytes")
    return values


def parse_query(data: bytes | memoryview) -> bytes:
    """The statement text of a Query, as bytes in the session's client_encoding."""
    r = _Reader(data, "Query")
    sql = r.cbytes()
    r.end()
    return sql


def parse_parse(data: bytes | memoryview) -> tuple[str, bytes, list[int]]:
    """Statement name, text (bytes in the session's client_encoding) and parameter type OIDs."""
    r = _Reader(data, "Parse")
    name, sql = r.cstr(), r.cbytes()
    oids = [r.u32() for _ in range(r.count())]
    r.end()
    return name, sql, oids


@dataclass(frozen=True, slots=True)
class Bind:
    portal: str
    statement: str
    param_formats: list[int]
    params: list[bytes | None]
    result_formats: list[int]


def parse_bind(data: bytes | memoryview) -> Bind:
    r = _Reader(data, "Bind")
    portal, statement = r.cstr(), r.cstr()
    param_formats = [r.i16() for _ in range(r.count())]
    params = [r.value() for _ in range(r.count())]
    result_formats = [r.i16() for _ in range(r.count())]
    r.end()
    return Bind(portal, statement, param_formats, params, result_formats)


def _kind_and_name(data: bytes | memoryview, what: str) -> tuple[str, str]:
    r = _Reader(data, what)
    kind = r.byte()
    if kind not in ("S", "P"):
        raise ProtocolViolation(f"{what}: kind must be 'S' or 'P', got {kind!r}")
    name = r.cstr()
    r.end()
    return kind, name


def parse_describe(data: bytes | memoryview) -> tuple[str, str]:
    return _kind_and_name(data, "Describe")


def parse_close(data: bytes | memoryview) -> tuple[str, str]:
    return _kind_and_name(data, "Close")


def parse_execute(data: bytes | memoryview) -> tuple[str, int]:
    r = _Reader(data, "Execute")
    portal, max_rows = r.cstr(), r.i32()
    r.end()
    return portal, max_rows


@dataclass(frozen=True, slots=True)
class CopyResponse:
    format: int  # 0 text, 1 binary (overall)
    column_formats: list[int]


def parse_copy_response(data: bytes | memoryview) -> CopyResponse:
    """CopyInResponse / CopyOutResponse / CopyBothResponse body."""
    r = _Reader(data, "CopyResponse")
    fmt = r.raw(1)[0]
    cols = [r.i16() for _ in range(r.count())]
    r.end()
    return CopyResponse(fmt, cols)


def parse_command_complete(data: bytes | memoryview) -> str:
    r = _Reader(data, "CommandComplete")
    tag = r.cstr()
    r.end()
    return tag
