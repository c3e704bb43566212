"""A client of the PostgreSQL door sees its real backend: the PID in BackendKeyData is the
upstream backend's, so `backend_pid`, `pg_backend_pid()` and notification PIDs agree, while the
cancel key stays the gateway's own secret. A cancel is acknowledged (the cancel socket closed)
only once the server has handled it, as the server itself does, so a late cancel never hits
the next statement. Everything runs through a real `hoop serve` against the real server.
"""

from __future__ import annotations

import secrets
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from support.postgres import pg_connection_toml

pytestmark = pytest.mark.needs_postgres

CANCEL_CODE = 80877102


@pytest.fixture
def gw(make_gateway):  # type: ignore[no-untyped-def]
    g = make_gateway()
    g.issue_tokens("alice", "bob")
    return g


def _connect(gw: Any, user: str = "alice") -> psycopg.Connection[Any]:
    return psycopg.connect(gw.dsn(user, gw.tokens[user]), autocommit=True)


class SlowCancels:
    """A loopback TCP hop in front of the real server that holds each CancelRequest for
    `delay` seconds before passing it on (other connections pass at once): a server slow to
    act on a cancel, so that acknowledging one too early shows every time."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        with client, socket.create_connection(("127.0.0.1", 5432)) as server:
            first = client.recv(65536)
            if len(first) == 16 and struct.unpack("!ii", first[:8]) == (16, CANCEL_CODE):
                time.sleep(self.delay)
            server.sendall(first)
            threading.Thread(target=_pump, args=(server, client), daemon=True).start()
            _pump(client, server)

    def close(self) -> None:
        self.listener.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


@pytest.fixture
def slow_cancels() -> Iterator[SlowCancels]:
    hop = SlowCancels(0.3)
    yield hop
    hop.close()


def test_a_cancelled_idle_session_runs_its_next_statement(gw) -> None:  # type: ignore[no-untyped-def]
    hit = 0
    with _connect(gw) as conn:
        for _ in range(50):
            conn.cancel_safe(timeout=10)
            try:
                conn.execute("SELECT 1").fetchone()
            except psycopg.errors.QueryCanceled:
                hit += 1
    assert hit == 0, f"{hit} of 50 statements were cancelled by the cancel sent before them"


def test_a_cancel_is_acknowledged_once_the_server_has_acted(make_gateway, pg_target, slow_cancels) -> None:  # type: ignore[no-untyped-def]
    """libpq waits for the cancel socket to close before it returns, so that a cancel cannot
    hit the next statement; the gateway closes it only once the server has closed its own.
    Against a server slow to act on cancels, an early acknowledgement shows every time."""
    gw = make_gateway(connections=pg_connection_toml(pg_target).replace("port = 5432", f"port = {slow_cancels.port}"))
    hit = 0
    with psycopg.connect(gw.dsn("alice", gw.token("alice")), autocommit=True) as conn:
        for _ in range(5):
            conn.cancel_safe(timeout=10)
            try:
                conn.execute("SELECT pg_sleep(0.5)")  # long enough for an early-acknowledged cancel to land
            except psycopg.errors.QueryCanceled:
                hit += 1
    assert hit == 0, f"{hit} of 5 statements were cancelled by the cancel sent before them"


def test_backend_pid_is_the_servers_and_agrees_everywhere(gw, pg_admin) -> None:  # type: ignore[no-untyped-def]
    with _connect(gw) as conn:
        pid = conn.info.backend_pid
        assert conn.execute("SELECT pg_backend_pid()").fetchone() == (pid,)
        channel = f"ch_{secrets.token_hex(4)}"
        conn.execute(f"LISTEN {channel}")
        conn.execute(f"NOTIFY {channel}, 'mine'")
        note = next(conn.notifies(timeout=5, stop_after=1))
        assert (note.channel, note.payload, note.pid) == (channel, "mine", pid)
        # the server, asked outside the gateway, knows that PID as this session's backend
        row = pg_admin.execute("SELECT datname FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
        assert row is not None and row[0].startswith("hoop_t_")


def _raw_cancel(gw: Any, pid: int, key: int) -> None:
    with socket.create_connection(("127.0.0.1", gw.ports["postgres"]), timeout=10) as s:
        s.sendall(struct.pack("!iiii", 16, CANCEL_CODE, pid, key))
        s.recv(1)  # the gateway closes the socket once the cancel is handled


def _sleep_in_thread(conn: psycopg.Connection[Any], seconds: float) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(conn.execute(f"SELECT 'slept', pg_sleep({seconds})").fetchone())
        except psycopg.Error as exc:
            outcome.append(exc)

    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.5)  # the statement is running upstream
    return t, outcome


def test_a_cancel_needs_the_gateways_key_not_just_the_pid(gw) -> None:  # type: ignore[no-untyped-def]
    with _connect(gw) as conn:
        t, outcome = _sleep_in_thread(conn, 2)
        _raw_cancel(gw, conn.info.backend_pid, secrets.randbits(31))  # right PID, guessed key
        t.join(10)
        assert outcome == [("slept", "")]
        t, outcome = _sleep_in_thread(conn, 10)
        conn.cancel_safe(timeout=10)  # the key the gateway handed out
        t.join(10)
        assert len(outcome) == 1 and isinstance(outcome[0], psycopg.errors.QueryCanceled)
        assert conn.execute("SELECT 'usable'").fetchone() == ("usable",)


def _gone(pg_admin: Any, pid: int) -> bool:
    deadline = time.monotonic() + 5
    while pg_admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _simple(conn: psycopg.Connection[Any], sql: str) -> str:
    """Run `sql` as one Query message (the simple protocol); its SQLSTATE, or "" on success."""
    res = conn.pgconn.exec_(sql.encode())
    return (res.error_field(psycopg.pq.DiagnosticField.SQLSTATE) or b"").decode()


def test_a_session_may_signal_its_own_backend_by_its_pid(gw, pg_admin) -> None:  # type: ignore[no-untyped-def]
    with _connect(gw) as conn:
        pid = conn.info.backend_pid
        assert _simple(conn, f"SELECT pg_cancel_backend({pid})") == "57014"  # the server cancels it itself
        assert conn.execute("SELECT 'usable'").fetchone() == ("usable",)
        assert _simple(conn, f"SELECT pg_terminate_backend({pid})") in ("57P01", "")
    assert _gone(pg_admin, pid), "the backend outlived pg_terminate_backend of its own PID"


@pytest.mark.parametrize(
    "form",
    ["select pg_catalog.pg_{}_backend(pg_backend_pid());", "SELECT pg_{}_backend(%s)"],
    ids=["pg_backend_pid", "parameter"],
)
def test_a_session_may_signal_its_own_backend_as_drivers_do(gw, pg_admin, form: str) -> None:  # type: ignore[no-untyped-def]
    with _connect(gw) as conn:
        pid = conn.info.backend_pid
        args = (pid,) if "%s" in form else None
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute(form.format("cancel"), args)
        assert conn.execute("SELECT 'usable'").fetchone() == ("usable",)
        with pytest.raises(psycopg.OperationalError):
            conn.execute(form.format("terminate"), args)
    assert _gone(pg_admin, pid), "the backend outlived pg_terminate_backend of its own PID"


def test_signalling_another_backend_stays_refused(gw, pg_admin) -> None:  # type: ignore[no-untyped-def]
    other = pg_admin.execute("SELECT pg_backend_pid()").fetchone()[0]
    with _connect(gw, "bob") as bob, _connect(gw) as alice:
        alice_pid = alice.info.backend_pid
        for sql in (
            f"SELECT pg_terminate_backend({other})",
            f"SELECT pg_cancel_backend({alice_pid})",
            f"SELECT pg_terminate_backend({alice_pid}); SELECT 1",
            f"SELECT pg_terminate_backend({bob.info.backend_pid} + 0)",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="builtin-other-sessions"):
                bob.execute(sql)
        for pid in (alice_pid, other):  # a prepared statement's parameter, judged at Bind
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="builtin-other-sessions"):
                bob.execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert alice.execute("SELECT 'alive'").fetchone() == ("alive",)
    assert pg_admin.execute("SELECT 'admin alive'").fetchone() == ("admin alive",)


def test_a_user_may_end_another_of_their_own_sessions(gw, pg_admin) -> None:  # type: ignore[no-untyped-def]
    """As a pool ending a broken connection does: the PID is a backend of the same user's
    session on the same connection."""
    with _connect(gw) as one, psycopg.connect(gw.dsn("alice", gw.tokens["alice"])) as two:
        pid = two.info.backend_pid
        assert one.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
        assert _gone(pg_admin, pid)
        # the server's own FATAL error and nothing after it, as direct (libpq counts results)
        with pytest.raises(psycopg.OperationalError, match="terminating connection due to administrator command"):
            two.execute("SELECT 2")


def test_a_shadowing_pg_backend_pid_cannot_aim_the_signal_elsewhere(gw, pg_admin) -> None:  # type: ignore[no-untyped-def]
    """`pg_backend_pid()` is sent as the session's own PID: a function of that name earlier on
    the search_path, returning another backend's PID, is never called."""
    victim = psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test", autocommit=True)
    victim_pid = victim.info.backend_pid
    try:
        with _connect(gw) as conn:
            pid = conn.info.backend_pid
            conn.execute(f"CREATE FUNCTION public.pg_backend_pid() RETURNS int LANGUAGE sql AS 'SELECT {victim_pid}'")
            conn.execute("SET search_path = public, pg_catalog")
            assert conn.execute("SELECT pg_backend_pid()").fetchone() == (victim_pid,)  # the shadow is in place
            with pytest.raises(psycopg.OperationalError):
                conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        assert _gone(pg_admin, pid)
        assert victim.execute("SELECT 'victim alive'").fetchone() == ("victim alive",)
    finally:
        victim.close()
        with _connect(gw) as conn:
            conn.execute("DROP FUNCTION IF EXISTS public.pg_backend_pid()")
