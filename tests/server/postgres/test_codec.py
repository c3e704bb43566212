"""Byte-level tests of the sans-IO PostgreSQL codec."""

from __future__ import annotations

import struct

import pytest

from hoop.server.postgres import codec, frontend
from hoop.server.postgres.codec import Bind, Field
from hoop.server.postgres.framing import MessageFramer, MessageTooLarge, ProtocolViolation


def _body(msg: bytes) -> bytes:
    return msg[5:]


# --------------------------------------------------------------------------- framing

STREAM = [
    codec.row_description([Field("a"), Field("b", 16384, 2, 23, 4, -1, 1)]),
    codec.data_row([b"1", None]),
    codec.data_row([b"", b"x" * 300]),
    codec.command_complete("SELECT 2"),
    codec.ready_for_query(b"I"),
]


def test_framer_returns_whole_messages_in_order() -> None:
    f = MessageFramer()
    f.feed(b"".join(STREAM))
    got = [(t, bytes(mv)) for t, mv in f]
    assert got == [(m[0], m) for m in STREAM]
    assert f.next() is None and f.pending() == 0


def test_framer_byte_by_byte_feed() -> None:
    f = MessageFramer()
    got = []
    for byte in b"".join(STREAM):
        f.feed(bytes([byte]))
        while (msg := f.next()) is not None:
            got.append(bytes(msg[1]))
    assert got == STREAM


def test_framer_views_survive_later_feeds_while_held() -> None:
    # A held view must never observe bytes being shifted under it.
    f = MessageFramer()
    first, second = frontend.query("select 1"), frontend.query("select 2")
    f.feed(first + second[:3])
    _, view = f.next()
    f.feed(second[3:])
    assert bytes(view) == first
    assert bytes(f.next()[1]) == second
    # Same while the buffer is a growing bytearray (message straddling three feeds).
    third = frontend.query("select 3")
    f.feed(third[:2])
    f.feed(third[2:6])
    f.feed(third[6:] + first[:1])
    _, held = f.next()
    f.feed(first[1:])
    assert bytes(held) == third and bytes(f.next()[1]) == first


def test_framer_partial_header_waits() -> None:
    f = MessageFramer()
    f.feed(b"Q\x00\x00")
    assert f.next() is None
    assert f.pending() == 3


@pytest.mark.parametrize("length", [0, 3])
def test_framer_rejects_length_below_four(length: int) -> None:
    f = MessageFramer()
    f.feed(b"Q" + struct.pack("!I", length) + b"xxxx")
    with pytest.raises(ProtocolViolation, match="invalid message length"):
        f.next()


def test_framer_rejects_oversized_before_buffering_it() -> None:
    f = MessageFramer(max_message=1024)
    f.feed(b"D" + struct.pack("!I", 1025))
    with pytest.raises(MessageTooLarge, match="exceeds the limit of 1024"):
        f.next()
    # The default limit is 64 MiB.
    g = MessageFramer()
    g.feed(b"D" + struct.pack("!I", 64 * 1024 * 1024 + 1))
    with pytest.raises(MessageTooLarge):
        g.next()


def test_split_complete_offsets_and_incomplete_tail() -> None:
    f = MessageFramer()
    data = b"".join(STREAM)
    f.feed(data + frontend.query("tail")[:4])
    view, msgs = f.split_complete()
    assert bytes(view) == data
    assert [(t, bytes(view[s:e])) for t, s, e in msgs] == [(m[0], m) for m in STREAM]
    assert f.pending() == 4


def test_split_complete_watch_lists_only_watched_types() -> None:
    f = MessageFramer()
    f.feed(b"".join(STREAM))
    view, msgs = f.split_complete(watch=frozenset({ord("T"), ord("Z")}))
    assert [t for t, _, _ in msgs] == [ord("T"), ord("Z")]
    # the untouched run between the watched messages is one slice
    run = bytes(view[msgs[0][2] : msgs[1][1]])
    assert run == b"".join(STREAM[1:4])


def test_split_complete_hands_out_valid_prefix_before_raising() -> None:
    f = MessageFramer()
    good = frontend.sync()
    f.feed(good + b"Q" + struct.pack("!I", 2))
    view, msgs = f.split_complete()
    assert bytes(view) == good and len(msgs) == 1
    with pytest.raises(ProtocolViolation):
        f.split_complete()


def test_take_rest_returns_unconsumed_bytes() -> None:
    f = MessageFramer()
    f.feed(frontend.sync() + b"leftover")
    f.next()
    assert f.take_rest() == b"leftover"
    assert f.pending() == 0


def test_next_startup_and_limits() -> None:
    f = MessageFramer()
    msg = frontend.startup_message({"user": "alice", "database": "db"})
    for b in frontend.ssl_request() + msg:
        f.feed(bytes([b]))
    ssl = f.next_startup()
    assert codec.parse_startup(ssl[4:]).kind == "ssl"
    assert bytes(f.next_startup()) == msg
    bad = MessageFramer()
    bad.feed(struct.pack("!I", 20000) + b"\0" * 8)
    with pytest.raises(MessageTooLarge):
        bad.next_startup()
    short = MessageFramer()
    short.feed(struct.pack("!I", 4) + b"\0" * 4)
    with pytest.raises(ProtocolViolation):
        short.next_startup()


# --------------------------------------------------------------------------- startup phase


def test_parse_startup_kinds() -> None:
    params = {"user": "u", "application_name": "psql"}
    s = codec.parse_startup(frontend.startup_message(params)[4:])
    assert (s.kind, s.version, s.params) == ("startup", 196608, params)
    assert codec.parse_startup(frontend.gssenc_request()[4:]).kind == "gssenc"
    c = codec.parse_startup(frontend.cancel_request(4242, -7)[4:])
    assert (c.kind, c.pid, c.key) == ("cancel", 4242, -7)
    assert frontend.cancel_request(1, 2) == struct.pack("!iiii", 16, 80877102, 1, 2)
    assert frontend.ssl_request() == bytes.fromhex("0000000804d2162f")


def test_parse_startup_rejects_garbage() -> None:
    with pytest.raises(ProtocolViolation, match="protocol 2.0"):
        codec.parse_startup(struct.pack("!i", 2 << 16) + b"\0")
    with pytest.raises(ProtocolViolation, match="NUL terminator"):
        codec.parse_startup(struct.pack("!i", 196608) + b"user\0alice")
    with pytest.raises(ProtocolViolation, match="truncated"):
        codec.parse_startup(struct.pack("!i", 80877102) + b"\0\0")


# --------------------------------------------------------------------------- backend messages


def test_exact_bytes_of_simple_backend_messages() -> None:
    assert codec.authentication_ok() == b"R\0\0\0\x08\0\0\0\0"
    assert codec.authentication_cleartext_password() == b"R\0\0\0\x08\0\0\0\x03"
    assert codec.ready_for_query(b"T") == b"Z\0\0\0\x05T"
    assert codec.empty_query_response() == b"I\0\0\0\x04"
    assert codec.backend_key_data(1, 2) == b"K\0\0\0\x0c\0\0\0\x01\0\0\0\x02"
    with pytest.raises(ValueError):
        codec.ready_for_query(b"X")


def test_authentication_and_sasl_payloads() -> None:
    code, payload = codec.parse_authentication(_body(codec.authentication_md5_password(b"salt")))
    assert (code, payload) == (5, b"salt")
    code, payload = codec.parse_authentication(_body(codec.authentication_sasl(["SCRAM-SHA-256"])))
    assert code == 10 and codec.parse_sasl_mechanisms(payload) == ["SCRAM-SHA-256"]


def test_error_and_notice_round_trip() -> None:
    msg = codec.error_response("FATAL", "28P01", "denied", detail="d", hint="h")
    assert msg[0:1] == b"E"
    fields = codec.parse_error_fields(_body(msg))
    assert fields == {"S": "FATAL", "V": "FATAL", "C": "28P01", "M": "denied", "D": "d", "H": "h"}
    notice = codec.notice_response("WARNING", "01000", "careful")
    assert notice[0:1] == b"N" and codec.parse_error_fields(_body(notice))["M"] == "careful"
    with pytest.raises(ProtocolViolation):
        codec.parse_error_fields(b"Mno terminator")
    with pytest.raises(ValueError):
        codec.error_response("ERROR", "123", "bad sqlstate")


def test_parameter_status_and_key_data() -> None:
    assert codec.parse_parameter_status(_body(codec.parameter_status("TimeZone", "UTC"))) == (
        "TimeZone",
        "UTC",
    )
    assert codec.parse_backend_key_data(_body(codec.backend_key_data(99, -5))) == (99, -5)
    with pytest.raises(ProtocolViolation, match="trailing"):
        codec.parse_backend_key_data(_body(codec.backend_key_data(1, 2)) + b"x")


def test_row_description_round_trip() -> None:
    fields = [
        Field("id", 16384, 1, 23, 4, -1, 0),
        Field("naïve", 4_000_000_000, 2, 1043, -1, 36, 1),
    ]
    assert codec.parse_row_description(_body(codec.row_description(fields))) == fields
    with pytest.raises(ProtocolViolation, match="truncated"):
        codec.parse_row_description(_body(codec.row_description(fields))[:-3])


def test_data_row_round_trip_and_rebuild() -> None:
    values = [b"42", None, b"", b"\x00\xff binary"]
    msg = codec.data_row(values)
    parsed = codec.parse_data_row(_body(msg))
    assert parsed == values
    parsed[0] = b"***"
    assert codec.parse_data_row(_body(codec.data_row(parsed)))[0] == b"***"
    with pytest.raises(ProtocolViolation, match="invalid value length"):
        codec.parse_data_row(struct.pack("!hi", 1, -2))
    with pytest.raises(ProtocolViolation, match="truncated"):
        codec.parse_data_row(struct.pack("!hi", 1, 10) + b"abc")
    for bad, problem in [
        (b"\x00", "truncated"),  # no column count
        (struct.pack("!h", -1), "negative count"),
        (struct.pack("!hi", 2, 1) + b"x" + b"\x00\x00", "truncated"),  # second length cut short
        (struct.pack("!hi", 1, 1) + b"xy", "1 unexpected trailing bytes"),
    ]:
        with pytest.raises(ProtocolViolation, match=problem):
            codec.parse_data_row(memoryview(bad))
    wide = [b"v" * 70_000, None, b"\x00"]  # a value past 64 KiB, a NULL, a NUL byte
    assert codec.parse_data_row(memoryview(codec.data_row(wide))[5:]) == wide


def test_command_complete_and_copy_response() -> None:
    assert codec.parse_command_complete(_body(codec.command_complete("INSERT 0 3"))) == "INSERT 0 3"
    copy = codec.parse_copy_response(struct.pack("!bhhh", 0, 2, 0, 0))
    assert (copy.format, copy.column_formats) == (0, [0, 0])
    with pytest.raises(ProtocolViolation):
        codec.parse_copy_response(struct.pack("!bh", 0, 2))


# --------------------------------------------------------------------------- frontend messages


def test_query_text_is_returned_as_the_clients_bytes() -> None:
    # The text is decoded later, under the session's client_encoding: the codec keeps bytes.
    assert codec.parse_query(_body(frontend.query("select 'ü'"))) == "select 'ü'".encode()
    raw = b"select '\xff'\0"
    assert codec.parse_query(raw) == raw[:-1]
    with pytest.raises(ProtocolViolation, match="NUL terminator"):
        codec.parse_query(b"select 1")
    with pytest.raises(ValueError, match="NUL"):
        frontend.query("select '\0'")


def test_extended_protocol_round_trips() -> None:
    p = frontend.parse("s1", "select $1::int", [23])
    assert codec.parse_parse(_body(p)) == ("s1", b"select $1::int", [23])
    many = frontend.parse("", "select 1", [25] * 65535)  # the count is unsigned
    assert len(codec.parse_parse(_body(many))[2]) == 65535
    b = frontend.bind("p1", "s1", [b"7", None], param_formats=[0], result_formats=[1, 0])
    assert codec.parse_bind(_body(b)) == Bind("p1", "s1", [0], [b"7", None], [1, 0])
    assert codec.parse_describe(_body(frontend.describe("S", "s1"))) == ("S", "s1")
    assert codec.parse_execute(_body(frontend.execute("p1", 10))) == ("p1", 10)
    assert codec.parse_close(_body(frontend.close("P", "p1"))) == ("P", "p1")
    with pytest.raises(ProtocolViolation, match="kind must be"):
        codec.parse_describe(b"Xname\0")
    assert frontend.sync() == b"S\0\0\0\x04" and frontend.terminate() == b"X\0\0\0\x04"


def test_password_and_sasl_messages() -> None:
    assert frontend.password_message(b"secret") == b"p\0\0\0\x0bsecret\0"
    sasl = frontend.sasl_initial_response("SCRAM-SHA-256", b"n,,n=,r=abc")
    assert sasl[5:] == b"SCRAM-SHA-256\0" + struct.pack("!i", 11) + b"n,,n=,r=abc"
    assert frontend.sasl_response(b"c=biws") == b"p\0\0\0\x0ac=biws"
