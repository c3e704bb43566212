"""A MySQL client that sends its commands and then shuts down its sending side
(`shutdown(SHUT_WR)`, as batch tools do) gets every answer through the gateway, as it does from
the server directly. The gateway then closes both sides; the session ends `closed` with every
statement recorded.

PyMySQL logs in; the commands are then written by hand on its socket (each a COM_QUERY with
sequence id 0) and the answers read back with its own packet reader."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from support.doors import Records
from support.gateway import ALICE, GatewayProcess
from support.mariadb import ROOT, mysql_connection_toml, mysql_gateway, on_server, through, throwaway_database
from support.rules import rule_toml
from support.waiting import eventually

pytestmark = pytest.mark.needs_mariadb

N = 100
RULES = rule_toml("hold-deletes", "review", statements=["delete"], approvers=["dba"], timeout="60s")
PYMYSQL_SETUP = "SET NAMES utf8mb4"  # sent by PyMySQL as it connects: recorded like any other


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with throwaway_database("hoop_half", "CREATE TABLE half_t (id int)") as name:
        yield name


@pytest.fixture
def gw(tmp_path: Path, database: str) -> Iterator[GatewayProcess]:
    loader = mysql_connection_toml(database, name="loader", extra="allow_local_infile = true\n")
    loader += '[[rules]]\nname = "builtin-server-files"\naction = "block"\nenabled = false\n'  # let LOAD DATA run
    with mysql_gateway(tmp_path, ALICE + mysql_connection_toml(database) + loader + RULES) as gateway:
        yield gateway


def pipelined_then_half_close(conn: pymysql.Connection, statements: list[str]) -> list[Any]:
    """Send every statement at once, shut down the sending side, then read one answer per
    statement: its rows, or the (code, message) of its error."""
    sock = conn._sock
    assert sock is not None
    sock.sendall(b"".join(struct.pack("<I", len(s) + 1)[:3] + b"\0\x03" + s.encode() for s in statements))
    sock.shutdown(socket.SHUT_WR)
    answers: list[Any] = []
    for _ in statements:
        conn._next_seq_id = 1  # each answer's first packet
        try:
            conn._read_query_result()
            answers.append(conn._result.rows)  # type: ignore[union-attr]
        except pymysql.err.MySQLError as exc:
            answers.append(exc.args)
    return answers


def rest_until_closed(conn: pymysql.Connection) -> bytes:
    """Whatever the other side still sends before it closes the connection (which must be soon)."""
    assert conn._sock is not None and conn._rfile is not None
    conn._sock.settimeout(10)
    return bytes(conn._rfile.read())


def ended(gw: GatewayProcess, last: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The one session after `last` once it has ended, and its statements in order (without
    PyMySQL's own)."""
    records = Records(gw)

    def check() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        session = records.session_after(last)
        assert session["status"] != "open", session
        statements = records.query(
            "SELECT text, decision, error FROM statements WHERE session_id = ? ORDER BY seq", session["id"]
        )
        return session, [s for s in statements if s["text"] != PYMYSQL_SETUP]

    return eventually(check)


def recorded(gw: GatewayProcess, session_id: int) -> str:
    """The session's recording as its statement (q) and result (r) frames, once it is complete."""
    frames = Records(gw).stored(session_id, frozenset({PYMYSQL_SETUP})).frames
    assert len(frames) == 2 * N, frames
    return frames


STATEMENTS = [f"SELECT {i} AS n" for i in range(N)]
ANSWERS = [((i,),) for i in range(N)]


def test_direct_server_answers_every_pipelined_query_after_half_close(database: str) -> None:
    """The control: what a client gets from MariaDB itself."""
    conn = pymysql.connect(**ROOT, database=database)
    assert pipelined_then_half_close(conn, STATEMENTS) == ANSWERS


def test_pipelined_queries_then_half_close(gw: GatewayProcess) -> None:
    last = Records(gw).last_id()
    conn = through(gw)
    assert pipelined_then_half_close(conn, STATEMENTS) == ANSWERS
    assert rest_until_closed(conn) == b""  # a clean close: no error after the answers
    session, statements = ended(gw, last)
    assert session["status"] == "closed"
    assert [s["text"] for s in statements] == STATEMENTS
    assert all(s["decision"] == "allow" and not s["error"] for s in statements)
    assert eventually(lambda: recorded(gw, session["id"])) == "qr" * N  # each statement and its result


def test_statement_held_when_the_client_ends_its_input_is_abandoned_not_run(gw: GatewayProcess, database: str) -> None:
    """Approval needs a client that can still be told the outcome; one that has closed its side
    may be gone for good, so the held statement never runs (as when it disconnects), and every
    other command it sent is answered in order."""
    on_server(database, "INSERT INTO half_t VALUES (1)")
    last = Records(gw).last_id()
    conn = through(gw)
    before, held, after = "SELECT 'before'", "DELETE FROM half_t WHERE id = 1", "SELECT 'after'"
    answers = pipelined_then_half_close(conn, [before, held, after])
    assert answers[0] == (("before",),) and answers[2] == (("after",),)
    code, message = answers[1]
    assert code == 1317 and "abandoned" in message and "ended its input" in message, answers[1]
    assert rest_until_closed(conn) == b""
    assert on_server(database, "SELECT count(*) FROM half_t WHERE id = 1") == ((1,),)
    session, statements = ended(gw, last)
    assert session["status"] == "closed"
    assert [(s["text"], s["decision"]) for s in statements] == [
        (before, "allow"),
        (held, "review:abandoned"),
        (after, "allow"),
    ]
    approvals = Records(gw).query("SELECT status FROM approvals WHERE session_id = ?", session["id"])
    assert approvals == [{"status": "abandoned"}]


def test_local_infile_cut_by_the_end_of_input_closes_at_once(gw: GatewayProcess) -> None:
    """The server waits for a file the client can no longer send: nothing is left to answer."""
    last = Records(gw).last_id()
    conn = through(gw, database="loader", local_infile=True)
    sock = conn._sock
    assert sock is not None
    load = "LOAD DATA LOCAL INFILE '/no/such/file' INTO TABLE half_t"
    sock.sendall(b"".join(struct.pack("<I", len(s) + 1)[:3] + b"\0\x03" + s.encode() for s in ("SELECT 1", load)))
    sock.shutdown(socket.SHUT_WR)
    conn._next_seq_id = 1
    conn._read_query_result()
    assert conn._result is not None and conn._result.rows == ((1,),)
    request = b"\xfb/no/such/file"  # the server's request for the file, then the close
    assert rest_until_closed(conn) == len(request).to_bytes(3, "little") + b"\x01" + request
    session, statements = ended(gw, last)
    assert session["status"] == "closed"
    assert [s["text"] for s in statements] == ["SELECT 1", load]
    assert statements[1]["error"]  # it did not finish


def test_input_ending_inside_a_packet_ends_the_session_after_the_answers(gw: GatewayProcess) -> None:
    """The unfinished packet is dropped (it can never be finished), as when a client vanishes
    in the middle of one; what came before it is answered."""
    last = Records(gw).last_id()
    conn = through(gw)
    sock = conn._sock
    assert sock is not None
    whole = b"SELECT 'whole'"
    sock.sendall(struct.pack("<I", len(whole) + 1)[:3] + b"\0\x03" + whole + b"\x40\0\0\0\x03SELECT")
    sock.shutdown(socket.SHUT_WR)
    conn._next_seq_id = 1
    conn._read_query_result()
    assert conn._result is not None and conn._result.rows == (("whole",),)
    assert rest_until_closed(conn) == b""
    session, statements = ended(gw, last)
    assert session["status"] == "closed"
    assert [s["text"] for s in statements] == ["SELECT 'whole'"]
