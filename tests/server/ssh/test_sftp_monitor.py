"""The SFTP observer frames packets split at any byte and counts transfer sizes."""

from __future__ import annotations

import struct

from hoop.server.ssh.sftp import SftpMonitor


def pkt(kind: int, body: bytes) -> bytes:
    return struct.pack(">I", len(body) + 1) + bytes([kind]) + body


def s(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


def test_upload_event_with_packets_split_anywhere():
    events = []
    mon = SftpMonitor(lambda action, **d: events.append((action, d)))
    open_ = pkt(3, struct.pack(">I", 1) + s(b"/tmp/f") + struct.pack(">I", 0x1A) + b"\0" * 4)
    for i in range(len(open_)):
        mon.feed_client(open_[i : i + 1])
    mon.feed_target(pkt(102, struct.pack(">I", 1) + s(b"H1")))
    client = pkt(6, struct.pack(">I", 2) + s(b"H1") + struct.pack(">Q", 0) + s(b"x" * 70000))
    client += pkt(4, struct.pack(">I", 3) + s(b"H1"))
    for i in range(0, len(client), 997):
        mon.feed_client(client[i : i + 997])
    assert events == [("ssh.transfer", {"direction": "upload", "path": "/tmp/f", "size": 70000})]
