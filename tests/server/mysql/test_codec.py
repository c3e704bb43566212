"""Byte-level tests of the MySQL packet framer, packet encoder and length-encoded values."""

from __future__ import annotations

import pytest

from hoop.server.mysql.codec import (
    MAX_CHUNK,
    PacketFramer,
    ProtocolViolation,
    encode_packet,
    first_seq,
    packet_count,
    read_lenenc_int,
    read_lenenc_str,
    read_nul_str,
    write_lenenc_int,
    write_lenenc_str,
)

# COM_QUERY "SELECT 1" as a client sends it, seq 0.
SELECT_1 = b"\x09\x00\x00\x00\x03SELECT 1"


def test_encode_small_packet_bytes() -> None:
    assert encode_packet(b"\x03SELECT 1", 0) == SELECT_1
    assert encode_packet(b"", 7) == b"\x00\x00\x00\x07"
    assert encode_packet(b"x", 255)[3] == 255
    assert encode_packet(b"x", 256)[3] == 0  # sequence ids wrap


def test_framer_yields_packet_fed_one_byte_at_a_time() -> None:
    f = PacketFramer()
    for b in SELECT_1[:-1]:
        f.feed(bytes((b,)))
        assert f.next() is None
    f.feed(SELECT_1[-1:])
    assert f.next() == (0, b"\x03SELECT 1")
    assert f.next() is None and f.buffered == 0


def test_framer_several_packets_in_one_feed_and_leftover() -> None:
    f = PacketFramer()
    f.feed(encode_packet(b"a", 1) + encode_packet(b"", 2) + encode_packet(b"bc", 3) + b"\x05\x00")
    assert [f.next(), f.next(), f.next(), f.next()] == [(1, b"a"), (2, b""), (3, b"bc"), None]
    assert f.take_rest() == b"\x05\x00" and f.buffered == 0


def test_split_payload_round_trip_and_sequence() -> None:
    payload = bytes(range(256)) * ((MAX_CHUNK * 2 + 10) // 256 + 1)
    payload = payload[: MAX_CHUNK * 2 + 10]
    wire = encode_packet(payload, 3)
    assert packet_count(len(payload)) == 3
    assert len(wire) == len(payload) + 3 * 4
    assert wire[:4] == b"\xff\xff\xff\x03"
    assert wire[4 + MAX_CHUNK : 8 + MAX_CHUNK] == b"\xff\xff\xff\x04"
    assert wire[8 + 2 * MAX_CHUNK : 12 + 2 * MAX_CHUNK] == b"\x0a\x00\x00\x05"
    f = PacketFramer()
    f.feed(wire[:-1])
    assert f.next() is None  # incomplete until the last chunk's last byte
    f.feed(wire[-1:] + encode_packet(b"next", 6))
    seq, got = f.next()  # type: ignore[misc]
    assert seq == 5 and got == payload  # seq of the last chunk: the reply follows it
    assert f.next() == (6, b"next")
    assert encode_packet(got, first_seq(seq, len(got))) == wire  # framed again exactly as it came


def test_first_seq_undoes_the_framers_last_seq() -> None:
    for size, start in [(10, 0), (MAX_CHUNK, 0), (MAX_CHUNK * 2 + 10, 254)]:  # 1, 2 and 3 wire packets
        f = PacketFramer()
        f.feed(encode_packet(b"q" * size, start))
        last, payload = f.next()  # type: ignore[misc]
        assert last == (start + packet_count(size) - 1) & 0xFF
        assert first_seq(last, len(payload)) == start


def test_payload_of_exactly_max_chunk_ends_with_empty_packet() -> None:
    payload = b"z" * MAX_CHUNK
    wire = encode_packet(payload, 0)
    assert packet_count(MAX_CHUNK) == 2
    assert wire[-4:] == b"\x00\x00\x00\x01" and len(wire) == MAX_CHUNK + 8
    f = PacketFramer()
    f.feed(wire[: MAX_CHUNK + 4])
    assert f.next() is None  # the empty terminator has not arrived yet
    f.feed(wire[MAX_CHUNK + 4 :])
    assert f.next() == (1, payload)


def test_split_chunks_with_wrong_sequence_are_rejected() -> None:
    f = PacketFramer()
    f.feed(b"\xff\xff\xff\x00" + b"a" * MAX_CHUNK + b"\x01\x00\x00\x05b")
    with pytest.raises(ProtocolViolation, match="sequence"):
        f.next()


def test_reassembly_limit_enforced_before_buffering_everything() -> None:
    f = PacketFramer(max_payload_total=MAX_CHUNK + 100)
    f.feed(b"\xff\xff\xff\x00" + b"a" * MAX_CHUNK + b"\xff\xff\xff\x01")
    with pytest.raises(ProtocolViolation, match="exceeds"):
        f.next()


def test_split_complete_passes_contiguous_packets_with_offsets() -> None:
    f = PacketFramer()
    wire = encode_packet(b"\x00\x01", 1) + encode_packet(b"hello", 2)
    f.feed(wire + b"\x03\x00\x00\x03ab")  # third packet incomplete
    data, marks = f.split_complete()  # type: ignore[misc]
    assert data == wire
    assert marks == [(1, 4, 6), (2, 10, 15)]
    assert [data[a:b] for _, a, b in marks] == [b"\x00\x01", b"hello"]
    assert f.split_complete() is None
    f.feed(b"c")
    assert f.next() == (3, b"abc")  # raw and logical modes mix


def test_feed_compacts_without_losing_bytes() -> None:
    f = PacketFramer()
    got = []
    for i in range(2000):
        f.feed(encode_packet(bytes([i & 0xFF]) * (i % 50), i))
        got.append(f.next())
    assert got == [(i & 0xFF, bytes([i & 0xFF]) * (i % 50)) for i in range(2000)]


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (0, b"\x00"),
        (250, b"\xfa"),
        (251, b"\xfc\xfb\x00"),
        (0xFFFF, b"\xfc\xff\xff"),
        (0x10000, b"\xfd\x00\x00\x01"),
        (0xFFFFFF, b"\xfd\xff\xff\xff"),
        (0x1000000, b"\xfe\x00\x00\x00\x01\x00\x00\x00\x00"),
        (2**64 - 1, b"\xfe" + b"\xff" * 8),
    ],
)
def test_lenenc_int_boundaries(value: int, wire: bytes) -> None:
    assert write_lenenc_int(value) == wire
    assert read_lenenc_int(b"!" + wire + b"?", 1) == (value, 1 + len(wire))


def test_lenenc_null_invalid_and_truncated() -> None:
    assert read_lenenc_int(b"\xfb", 0) == (None, 1)
    assert read_lenenc_str(b"\xfbrest", 0) == (None, 1)
    with pytest.raises(ProtocolViolation):
        read_lenenc_int(b"\xff", 0)
    for bad in (b"\xfc\x01", b"\xfd\x01\x02", b"\xfe\x01"):
        with pytest.raises(ProtocolViolation, match="truncated"):
            read_lenenc_int(bad, 0)
    with pytest.raises(ProtocolViolation):
        read_lenenc_str(b"\x05abc", 0)
    with pytest.raises(ValueError):
        write_lenenc_int(-1)


def test_lenenc_and_nul_strings() -> None:
    long = b"x" * 300
    assert write_lenenc_str(b"def") == b"\x03def"
    assert write_lenenc_str(long)[:3] == b"\xfc\x2c\x01"
    assert read_lenenc_str(write_lenenc_str(long) + b"tail", 0) == (long, 303)
    assert read_nul_str(b"ab\x00cd\x00", 3) == (b"cd", 6)
    assert read_nul_str(memoryview(b"root\x00"), 0) == (b"root", 5)
    with pytest.raises(ProtocolViolation):
        read_nul_str(b"no terminator", 0)
