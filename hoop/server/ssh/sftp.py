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
from collections.abc import Callable
from typing import Any

FXP_OPEN, FXP_CLOSE, FXP_READ, FXP_WRITE = 3, 4, 5, 6
FXP_REMOVE, FXP_MKDIR, FXP_RMDIR, FXP_RENAME = 13, 14, 15, 18
FXP_HANDLE, FXP_DATA = 102, 103
HEAD_MAX = 4096 + 64  # enough for a path or a handle plus the fixed fields
# How much of a packet body the observer needs, by type: DATA needs only its request id and
# payload length, WRITE its id, handle (<= 256 bytes), offset and length. Their payloads (the
# bulk of every transfer) are passed over by length without being copied or looked at.
HEAD_BY_TYPE = {FXP_DATA: 1 + 4 + 4, FXP_WRITE: 1 + 4 + 4 + 256 + 8 + 4}


class _Framer:
    """Calls `on_packet(type, head)` with the first bytes of each packet body the observer
    needs (HEAD_BY_TYPE, else up to HEAD_MAX); the rest of the packet is skipped by length."""

    def __init__(self, on_packet: Callable[[int, bytes], None]) -> None:
        self.on_packet = on_packet
        self.buf = bytearray()
        self.length: int | None = None  # body length of the current packet, once known
        self.want = 0  # body bytes to keep (the head); 1 until the type byte is known
        self.skip = 0  # payload bytes of the current packet still to pass over

    def feed(self, data: bytes) -> None:
        n = len(data)
        i = 0
        buf = self.buf
        while i < n:
            if self.skip:
                k = min(self.skip, n - i)
                self.skip -= k
                i += k
                continue
            if self.length is None:
                if not buf and n - i >= 5:  # common case: length and type in one piece
                    self.length = length = int.from_bytes(data[i : i + 4], "big")
                    if length == 0:
                        i += 4
                        self.length = None
                        continue
                    self.want = min(length, HEAD_BY_TYPE.get(data[i + 4], HEAD_MAX))
                    i += 4
                else:
                    take = min(4 - len(buf), n - i)
                    buf += data[i : i + take]
                    i += take
                    if len(buf) < 4:
                        return
                    self.length = int.from_bytes(buf, "big")
                    buf.clear()
                    if self.length == 0:
                        self.length = None
                        continue
                    self.want = 1  # decide the head size once the type byte is in
            take = min(self.want - len(buf), n - i)
            buf += data[i : i + take]
            i += take
            if len(buf) == 1 and self.want == 1 and self.length > 1:
                self.want = min(self.length, HEAD_BY_TYPE.get(buf[0], HEAD_MAX))
                continue
            if len(buf) < self.want:
                return
            head = bytes(buf)
            buf.clear()
            self.skip = self.length - self.want
            self.length = None
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
