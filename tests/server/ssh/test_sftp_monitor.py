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


def test_download_counted_from_data_headers_whatever_the_chunking():
    """READ/DATA pairs in one stream, cut at every size from 1 byte to whole packets: the
    observer reads only DATA headers, so the size is the sum of payload lengths."""
    payloads = [b"a" * 32768, b"b" * 5, b"", b"c" * 40000]
    client = pkt(3, struct.pack(">I", 1) + s(b"/srv/big") + struct.pack(">I", 1) + b"\0" * 4)
    target = pkt(102, struct.pack(">I", 1) + s(b"HANDLE-0"))
    for rid, data in enumerate(payloads, start=10):
        client += pkt(5, struct.pack(">I", rid) + s(b"HANDLE-0") + struct.pack(">QI", 0, 32768))
        target += pkt(103, struct.pack(">I", rid) + s(data))
    close = pkt(4, struct.pack(">I", 99) + s(b"HANDLE-0"))
    for step in (1, 3, 4, 5, 9, 4096, len(target)):
        events = []
        mon = SftpMonitor(lambda action, events=events, **d: events.append((action, d)))
        mon.feed_client(client)
        for i in range(0, len(target), step):
            mon.feed_target(target[i : i + step])
        mon.feed_client(close)
        assert events == [
            ("ssh.transfer", {"direction": "download", "path": "/srv/big", "size": sum(map(len, payloads))})
        ], step
