"""A raw PostgreSQL wire client for tests that need exact bytes or pipelining.

libpq and psql re-encode text and wait for each answer; attacks on the gateway's reading of
text send bytes as they are and several messages in one write. This client speaks just
enough of the protocol (startup, cleartext password, simple and extended query) and returns
every backend message it reads.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field


def _msg(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!I", len(body) + 4) + body


def query(sql: bytes) -> bytes:
    return _msg(b"Q", sql + b"\0")


def parse(sql: bytes, name: bytes = b"") -> bytes:
    return _msg(b"P", name + b"\0" + sql + b"\0" + struct.pack("!H", 0))


def bind(statement: bytes = b"", portal: bytes = b"") -> bytes:
    return _msg(b"B", portal + b"\0" + statement + b"\0" + struct.pack("!HHH", 0, 0, 0))


def execute(portal: bytes = b"") -> bytes:
    return _msg(b"E", portal + b"\0" + struct.pack("!I", 0))


SYNC = _msg(b"S", b"")


@dataclass
class Reply:
    """What the server (or gateway) answered up to a ReadyForQuery."""

    tags: list[str] = field(default_factory=list)  # CommandComplete tags
    errors: list[dict[str, str]] = field(default_factory=list)  # ErrorResponse fields by code
    notices: list[str] = field(default_factory=list)
    rows: list[list[bytes | None]] = field(default_factory=list)
    parameters: dict[str, str] = field(default_factory=dict)


class RawClient:
    def __init__(self, port: int, user: str, password: str, database: str, **params: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buf = b""
        startup = b"".join(f"{k}\0{v}\0".encode() for k, v in {"user": user, "database": database, **params}.items())
        body = struct.pack("!I", 196608) + startup + b"\0"
        self.sock.sendall(struct.pack("!I", len(body) + 4) + body)
        kind, payload = self._read()
        if kind == b"E":
            raise ConnectionError(_fields(payload).get("M", "login failed"))
        assert kind == b"R", kind
        self.sock.sendall(_msg(b"p", password.encode() + b"\0"))
        self.login = self.until_ready()
        if self.login.errors:
            raise ConnectionError(self.login.errors[0].get("M", "login failed"))

    def _read(self) -> tuple[bytes, bytes]:
        while len(self.buf) < 5 or len(self.buf) < 1 + struct.unpack("!I", self.buf[1:5])[0]:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk
        size = struct.unpack("!I", self.buf[1:5])[0]
        kind, payload, self.buf = self.buf[:1], self.buf[5 : 1 + size], self.buf[1 + size :]
        return kind, payload

    def send(self, *messages: bytes) -> None:
        self.sock.sendall(b"".join(messages))

    def until_ready(self, count: int = 1) -> Reply:
        """Read until `count` ReadyForQuery messages have arrived."""
        reply = Reply()
        while count:
            kind, payload = self._read()
            if kind == b"Z":
                count -= 1
            elif kind == b"C":
                reply.tags.append(payload.rstrip(b"\0").decode())
            elif kind == b"E":
                reply.errors.append(_fields(payload))
                if reply.errors[-1].get("S") == "FATAL":
                    return reply
            elif kind == b"N":
                reply.notices.append(_fields(payload).get("M", ""))
            elif kind == b"D":
                reply.rows.append(_row(payload))
            elif kind == b"S":
                name, value, _ = payload.split(b"\0", 2)
                reply.parameters[name.decode()] = value.decode()
        return reply

    def run(self, sql: bytes) -> Reply:
        self.send(query(sql))
        return self.until_ready()

    def close(self) -> None:
        try:
            self.sock.sendall(_msg(b"X", b""))
        except OSError:
            pass
        self.sock.close()


def _fields(payload: bytes) -> dict[str, str]:
    out = {}
    for part in payload.split(b"\0"):
        if part:
            out[chr(part[0])] = part[1:].decode("utf-8", "replace")
    return out


def _row(payload: bytes) -> list[bytes | None]:
    (n,) = struct.unpack("!H", payload[:2])
    pos, values = 2, []
    for _ in range(n):
        (size,) = struct.unpack("!i", payload[pos : pos + 4])
        pos += 4
        values.append(None if size < 0 else payload[pos : pos + size])
        pos += max(size, 0)
    return values
