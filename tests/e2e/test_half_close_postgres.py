"""A PostgreSQL client that sends its statements and then shuts down its sending side
(`shutdown(SHUT_WR)`, as batch tools do) gets every answer through the gateway, as it does from
the server directly. The gateway then closes both sides; the session ends `closed` with every
statement recorded."""

from __future__ import annotations

import socket
import struct

import pytest
from support.doors import Records
from support.pgwire import SYNC, RawClient, bind, execute, parse, query
from support.postgres import connect_target, on_server
from support.rules import rule_toml
from support.waiting import eventually

pytestmark = pytest.mark.needs_postgres

N = 100
RULES = rule_toml("hold-deletes", "review", statements=["delete"], approvers=["dba"], timeout="60s")


@pytest.fixture
def gw(make_gateway):  # type: ignore[no-untyped-def]
    gateway = make_gateway(RULES)
    gateway.alice = gateway.token("alice")
    gateway.records = Records(gateway)
    return gateway


def client(gw) -> RawClient:  # type: ignore[no-untyped-def]
    return RawClient(gw.ports["postgres"], "alice", gw.alice, "pg")


def rest_until_closed(c: RawClient) -> bytes:
    """Whatever the gateway still sends before it closes the connection (which must be soon)."""
    c.sock.settimeout(10)
    out = c.buf
    while chunk := c.sock.recv(65536):
        out += chunk
    return out


def ended(gw, last: int) -> tuple[dict, list[dict]]:  # type: ignore[no-untyped-def, type-arg]
    """The one session after `last` once it has ended, and its statements in order."""

    def check() -> tuple[dict, list[dict]]:  # type: ignore[type-arg]
        session = gw.records.session_after(last)
        assert session["status"] != "open", session
        return session, gw.records.query(
            "SELECT text, decision, error FROM statements WHERE session_id = ? ORDER BY seq", session["id"]
        )

    return eventually(check)


def recorded(gw, session_id: int) -> str:  # type: ignore[no-untyped-def]
    """The session's recording as its statement (q) and result (r) frames, once it is complete."""
    frames = gw.records.stored(session_id).frames
    assert len(frames) == 2 * N, frames
    return frames


def test_pipelined_simple_queries_then_half_close(gw) -> None:  # type: ignore[no-untyped-def]
    last = gw.records.last_id()
    c = client(gw)
    c.send(*(query(f"SELECT {i} AS n".encode()) for i in range(N)))
    c.sock.shutdown(socket.SHUT_WR)
    reply = c.until_ready(N)
    assert reply.tags == ["SELECT 1"] * N and not reply.errors
    assert [r[0] for r in reply.rows] == [str(i).encode() for i in range(N)]
    assert rest_until_closed(c) == b""  # a clean close: no error after the answers
    session, statements = ended(gw, last)
    assert session["status"] == "closed"
    assert [s["text"] for s in statements] == [f"SELECT {i} AS n" for i in range(N)]
    assert all(s["decision"] == "allow" and not s["error"] for s in statements)
    assert eventually(lambda: recorded(gw, session["id"])) == "qr" * N  # each statement and its result


def test_pipelined_extended_protocol_then_half_close(gw) -> None:  # type: ignore[no-untyped-def]
    last = gw.records.last_id()
    c = client(gw)
    c.send(*(parse(f"SELECT {i} AS n".encode()) + bind() + execute() + SYNC for i in range(N)))
    c.sock.shutdown(socket.SHUT_WR)
    reply = c.until_ready(N)
    assert reply.tags == ["SELECT 1"] * N and not reply.errors
    assert [r[0] for r in reply.rows] == [str(i).encode() for i in range(N)]
    assert rest_until_closed(c) == b""
    session, statements = ended(gw, last)
    assert session["status"] == "closed"
    assert [s["text"] for s in statements] == [f"SELECT {i} AS n" for i in range(N)]


@pytest.mark.parametrize("ends", ["with the statements", "once approvers see the request"])
def test_statement_held_when_the_client_ends_its_input_is_abandoned_not_run(gw, pg_target, ends: str) -> None:  # type: ignore[no-untyped-def]
    """Approval needs a client that can still be told the outcome; one that has closed its side
    may be gone for good, so the held statement never runs (as when it disconnects), and every
    other statement it sent is answered in order. The request is closed `abandoned` whether
    the input ends before it is written or while approvers see it."""
    with connect_target(pg_target) as conn:
        conn.execute("DROP TABLE IF EXISTS half_t; CREATE TABLE half_t (id int); INSERT INTO half_t VALUES (1)")
    last = gw.records.last_id()
    c = client(gw)
    c.send(query(b"SELECT 'before'"), query(b"DELETE FROM half_t WHERE id = 1"), query(b"SELECT 'after'"))
    if ends == "once approvers see the request":
        eventually(lambda: pending_request(gw))
    c.sock.shutdown(socket.SHUT_WR)
    reply = c.until_ready(3)
    assert reply.rows == [[b"before"], [b"after"]]
    [error] = reply.errors
    assert error["C"] == "57014" and "abandoned" in error["M"] and "ended its input" in error["M"], error
    assert rest_until_closed(c) == b""
    assert on_server(pg_target, "SELECT count(*) FROM half_t") == [(1,)]
    session, statements = ended(gw, last)
    assert session["status"] == "closed"
    assert [(s["text"], s["decision"]) for s in statements] == [
        ("SELECT 'before'", "allow"),
        ("DELETE FROM half_t WHERE id = 1", "review:abandoned"),
        ("SELECT 'after'", "allow"),
    ]
    approvals = gw.records.query("SELECT status FROM approvals WHERE session_id = ?", session["id"])
    assert approvals == [{"status": "abandoned"}]


def pending_request(gw) -> None:  # type: ignore[no-untyped-def]
    assert gw.records.query("SELECT id FROM approvals WHERE status = 'pending'"), "no request pending yet"


def test_copy_from_stdin_cut_by_the_end_of_input_closes_at_once(gw, pg_target) -> None:  # type: ignore[no-untyped-def]
    """The server waits for COPY data the client can no longer send: nothing is left to answer."""
    with connect_target(pg_target) as conn:
        conn.execute("DROP TABLE IF EXISTS half_copy; CREATE TABLE half_copy (id int)")
    last = gw.records.last_id()
    c = client(gw)
    c.send(query(b"SELECT 'first'"), query(b"COPY half_copy FROM STDIN"))
    c.sock.shutdown(socket.SHUT_WR)
    assert c.until_ready(1).rows == [[b"first"]]
    rest_until_closed(c)  # the CopyInResponse, then the close
    session, statements = ended(gw, last)
    assert session["status"] == "closed"
    assert [s["text"] for s in statements] == ["SELECT 'first'", "COPY half_copy FROM STDIN"]
    assert statements[1]["error"]  # it did not finish


def test_copy_from_stdin_with_its_data_then_half_close_loads_every_row(gw, pg_target) -> None:  # type: ignore[no-untyped-def]
    with connect_target(pg_target) as conn:
        conn.execute("DROP TABLE IF EXISTS half_copy; CREATE TABLE half_copy (id int)")
    c = client(gw)
    data = b"".join(b"d" + struct.pack("!I", 4 + len(line)) + line for line in (b"%d\n" % i for i in range(N)))
    c.send(query(b"COPY half_copy FROM STDIN"), data, b"c" + struct.pack("!I", 4), query(b"SELECT 'after'"))
    c.sock.shutdown(socket.SHUT_WR)
    reply = c.until_ready(2)
    assert reply.tags == [f"COPY {N}", "SELECT 1"] and reply.rows == [[b"after"]], reply
    assert rest_until_closed(c) == b""
    assert on_server(pg_target, "SELECT count(*) FROM half_copy") == [(N,)]


def test_input_ending_inside_a_message_ends_the_session_after_the_answers(gw) -> None:  # type: ignore[no-untyped-def]
    """The unfinished message is dropped (it can never be finished), as when a client vanishes
    in the middle of one; what came before it is answered."""
    last = gw.records.last_id()
    c = client(gw)
    c.send(query(b"SELECT 'whole'"), b"Q" + struct.pack("!I", 100) + b"SELECT")
    c.sock.shutdown(socket.SHUT_WR)
    assert c.until_ready(1).rows == [[b"whole"]]
    assert rest_until_closed(c) == b""
    session, statements = ended(gw, last)
    assert session["status"] == "closed"
    assert [s["text"] for s in statements] == ["SELECT 'whole'"]
