"""Messages a PostgreSQL client sends (frontend messages), built sans-IO.

The gateway builds them when it logs in upstream, cancels a running query, or sends in place
of a refused statement one that fails with a marker; tests build them to play a client.
Parsing the ones clients send to the gateway is codec.py's job, next to the backend messages.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from hoop.server.postgres.codec import (
    CANCEL_REQUEST_CODE,
    GSSENC_REQUEST_CODE,
    NULL_VALUE,
    PROTOCOL_3_0,
    SSL_REQUEST_CODE,
    cstr,
    message,
    text_bytes,
)

_I32 = struct.Struct("!i")
_U32 = struct.Struct("!I")
_I16 = struct.Struct("!h")
_COUNT = struct.Struct("!H")  # the protocol's item counts are unsigned 16-bit


def startup_message(params: dict[str, str], version: int = PROTOCOL_3_0) -> bytes:
    payload = _I32.pack(version) + b"".join(cstr(k) + cstr(v) for k, v in params.items()) + b"\0"
    return _I32.pack(len(payload) + 4) + payload


def ssl_request() -> bytes:
    return _I32.pack(8) + _I32.pack(SSL_REQUEST_CODE)


def gssenc_request() -> bytes:
    return _I32.pack(8) + _I32.pack(GSSENC_REQUEST_CODE)


def cancel_request(pid: int, key: int) -> bytes:
    return struct.pack("!iiii", 16, CANCEL_REQUEST_CODE, pid, key)


def password_message(password: bytes) -> bytes:
    """PasswordMessage for cleartext or md5 auth (the NUL terminator is added here)."""
    return message(b"p", password + b"\0")


def sasl_initial_response(mechanism: str, data: bytes | None) -> bytes:
    tail = _I32.pack(-1) if data is None else _I32.pack(len(data)) + data
    return message(b"p", cstr(mechanism) + tail)


def sasl_response(data: bytes) -> bytes:
    return message(b"p", data)


def query(sql: str) -> bytes:
    return message(b"Q", cstr(sql))


def terminate() -> bytes:
    return message(b"X")


def sync() -> bytes:
    return message(b"S")


def parse(name: str, sql: str, param_oids: Sequence[int] = ()) -> bytes:
    oids = b"".join(_U32.pack(o) for o in param_oids)
    return message(b"P", cstr(name) + cstr(sql) + _COUNT.pack(len(param_oids)) + oids)


def bind(
    portal: str,
    statement: str,
    params: Sequence[bytes | None] = (),
    param_formats: Sequence[int] = (),
    result_formats: Sequence[int] = (),
) -> bytes:
    parts = [cstr(portal), cstr(statement), _COUNT.pack(len(param_formats))]
    parts += [_I16.pack(f) for f in param_formats]
    parts.append(_COUNT.pack(len(params)))
    parts += [NULL_VALUE if p is None else _I32.pack(len(p)) + p for p in params]
    parts.append(_COUNT.pack(len(result_formats)))
    parts += [_I16.pack(f) for f in result_formats]
    return message(b"B", b"".join(parts))


def describe(kind: str, name: str) -> bytes:
    return message(b"D", text_bytes(kind) + cstr(name))


def execute(portal: str = "", max_rows: int = 0) -> bytes:
    return message(b"E", cstr(portal) + _I32.pack(max_rows))


def close(kind: str, name: str) -> bytes:
    return message(b"C", text_bytes(kind) + cstr(name))
