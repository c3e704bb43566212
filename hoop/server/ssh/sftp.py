"""Transfer events from an SFTP byte stream the gateway relays without changing it.

The SFTP subsystem channel is relayed byte for byte to the target's own SFTP server (so every
client, including OpenSSH 9's `scp`, which speaks SFTP, works as against the target). This
observer frames both directions (uint32 length + type) and keeps only packet headers:
OPEN names a path, the HANDLE reply binds it to a handle, READ/DATA and WRITE count bytes per
handle, and CLOSE emits one `ssh.transfer` audit event (direction, path, size). Payloads are
skipped without copying.
"""

from __future__ import annotations

import struct
from typing import Any, Callable

FXP_OPEN, FXP_CLOSE, FXP_READ, FXP_WRITE = 3, 4, 5, 6
FXP_REMOVE, FXP_MKDIR, FXP_RMDIR, FXP_RENAME = 13, 14, 15, 18
FXP_HANDLE, FXP_DATA = 102, 103
HEAD_MAX = 4096 + 64  # enough for a path or a handle plus the fixed fields


class _Framer:
    """Calls `on_packet(type, head)` with the first HEAD_MAX bytes of each packet body."""

    def __init__(self, on_packet: Callable[[int, bytes], None]) -> None:
        self.on_packet = on_packet
        self.buf = bytearray()
        self.length: int | None = None  # body length of the current packet, once known
        self.want = 0  # body bytes to keep (the head)
        self.skip = 0  # payload bytes of the current packet still to pass over

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        i, n = 0, len(view)
        while i < n:
            if self.skip:
                k = min(self.skip, n - i)
                self.skip -= k
                i += k
                continue
            if self.length is None:
                take = min(4 - len(self.buf), n - i)
                self.buf += view[i : i + take]
                i += take
                if len(self.buf) < 4:
                    return
                self.length = struct.unpack_from(">I", self.buf)[0]
                self.want = min(self.length, HEAD_MAX)
                self.buf.clear()
            take = min(self.want - len(self.buf), n - i)
            self.buf += view[i : i + take]
            i += take
            if len(self.buf) < self.want:
                return
            head = bytes(self.buf)
            self.buf.clear()
            self.skip = self.length - self.want
            self.length = None
            if head:
                self.on_packet(head[0], head[1:])


def _string(buf: bytes, pos: int) -> tuple[bytes, int]:
    n = struct.unpack_from(">I", buf, pos)[0]
    return buf[pos + 4 : pos + 4 + n], pos + 4 + n


class SftpMonitor:
    """Observes one SFTP session; `audit(action, **detail)` records events."""

    def __init__(self, audit: Callable[..., None]) -> None:
        self.audit = audit
        self.opens: dict[int, str] = {}  # request id -> path
        self.reads: dict[int, bytes] = {}  # request id -> handle
        self.files: dict[bytes, list[Any]] = {}  # handle -> [path, read, written]
        self.client = _Framer(self._client_packet)
        self.target = _Framer(self._target_packet)
        self.transfers: list[dict[str, Any]] = []

    def feed_client(self, data: bytes) -> None:
        self.client.feed(data)

    def feed_target(self, data: bytes) -> None:
        self.target.feed(data)

    def _client_packet(self, kind: int, body: bytes) -> None:
        try:
            if kind == FXP_OPEN:
                rid = struct.unpack_from(">I", body)[0]
                path, _ = _string(body, 4)
                self.opens[rid] = path.decode("utf-8", "replace")
            elif kind == FXP_READ:
                rid = struct.unpack_from(">I", body)[0]
                self.reads[rid] = _string(body, 4)[0]
            elif kind == FXP_WRITE:
                handle, pos = _string(body, 4)
                length = struct.unpack_from(">I", body, pos + 8)[0]
                if handle in self.files:
                    self.files[handle][2] += length
            elif kind == FXP_CLOSE:
                handle, _ = _string(body, 4)
                self._closed(handle)
            elif kind in (FXP_REMOVE, FXP_MKDIR, FXP_RMDIR, FXP_RENAME):
                path, _ = _string(body, 4)
                name = {FXP_REMOVE: "remove", FXP_MKDIR: "mkdir", FXP_RMDIR: "rmdir", FXP_RENAME: "rename"}[kind]
                self.audit("ssh.sftp." + name, path=path.decode("utf-8", "replace"))
        except struct.error:
            pass  # a malformed packet is the target's to reject; we only observe

    def _target_packet(self, kind: int, body: bytes) -> None:
        try:
            if kind == FXP_HANDLE:
                rid = struct.unpack_from(">I", body)[0]
                path = self.opens.pop(rid, None)
                if path is not None:
                    self.files[_string(body, 4)[0]] = [path, 0, 0]
            elif kind == FXP_DATA:
                rid = struct.unpack_from(">I", body)[0]
                handle = self.reads.pop(rid, None)
                if handle in self.files:
                    self.files[handle][1] += struct.unpack_from(">I", body, 4)[0]
            elif len(body) >= 4:
                rid = struct.unpack_from(">I", body)[0]
                self.opens.pop(rid, None)
                self.reads.pop(rid, None)
        except struct.error:
            pass

    def _closed(self, handle: bytes) -> None:
        entry = self.files.pop(handle, None)
        if entry is None:
            return
        path, read, written = entry
        direction = "upload" if written else "download" if read else "open"
        event = {"direction": direction, "path": path, "size": written or read}
        self.transfers.append(event)
        self.audit("ssh.transfer", **event)

    def finish(self) -> None:
        for handle in list(self.files):
            self._closed(handle)
