"""No single point of failure: real `hoop serve` processes sharing one PostgreSQL store.

A gateway killed outright leaves the others serving; after the heartbeat timeout they mark
its sessions interrupted and expire its held statements (once), and the audit chain still
verifies. A gateway frozen past the timeout that comes back denies what it held. A store
whose server restarts makes every gateway refuse, naming the store, and then recover alone.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from support.gateway import USERS_TOML, GatewayProcess, write_config
from support.postgres import connect_target, on_server, pg_connection_toml
from support.servers import free_port, port_open
from support.waiting import eventually

pytestmark = pytest.mark.needs_postgres

PG_BIN = Path("/usr/lib/postgresql/15/bin")
TIMEOUT = 3  # [gateway] heartbeat_timeout, seconds: short, so the tests wait little
RULES = """
[[rules]]
name = "hold-updates"
action = "review"
statements = ["update"]
tables = ["loss_accounts"]
approvers = ["dba"]
timeout = "60s"
"""


@contextmanager
def store_database(fleet: list[GatewayProcess], port: int = 5432) -> Iterator[str]:
    """A store database of its own on the server at `port`; its DSN, password from
    ${HOOP_STORE_PASSWORD}. The gateways of `fleet` are stopped before it is dropped."""
    name = f"hoop_store_{os.getpid()}_{secrets.token_hex(3)}"
    admin = f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://postgres:${{HOOP_STORE_PASSWORD}}@127.0.0.1:{port}/{name}"
    finally:
        stop_all(fleet)
        try:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        except psycopg.OperationalError:
            pass  # a throwaway cluster already stopped


class Cluster:
    """A throwaway PostgreSQL cluster on a free loopback port, which a test may stop and start."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="hoop-store-cluster-"))
        self.port = free_port()
        os.chmod(self.dir, 0o777)
        self.data = self.dir / "data"
        self._run(PG_BIN / "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _run(self, *argv: object) -> None:
        cmd = [str(a) for a in argv]
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.dir}"
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-o", options, "-l", self.dir / "log", "-w", "start")

    def stop(self) -> None:
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        if port_open("127.0.0.1", self.port, 0.2):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def accounts(pg_target: dict[str, str]) -> dict[str, str]:
    with connect_target(pg_target) as conn:
        conn.execute("DROP TABLE IF EXISTS loss_accounts")
        conn.execute("CREATE TABLE loss_accounts (id int PRIMARY KEY, balance int)")
        conn.execute("INSERT INTO loss_accounts VALUES (1, 0), (2, 0)")
    return pg_target


@pytest.fixture
def fleet(tmp_path: Path, pg_target: dict[str, str]) -> Iterator[list[GatewayProcess]]:
    """Gateways made by `gateway()`, stopped (or killed) at the end."""
    made: list[GatewayProcess] = []
    yield made
    stop_all(made)


def stop_all(fleet: list[GatewayProcess]) -> None:
    for gw in fleet:
        if gw.proc is not None and gw.proc.poll() is None:
            os.kill(gw.proc.pid, signal.SIGCONT)  # one a test froze
        gw.stop()


def gateway(
    fleet: list[GatewayProcess], tmp_path: Path, target: dict[str, str], store: str, name: str, password: str
) -> GatewayProcess:
    root = tmp_path / f"{name}-{len(fleet)}"
    root.mkdir()
    settings = f'store = "{store}"\nname = "{name}"\nheartbeat_timeout = "{TIMEOUT}s"\n'
    listen = {"postgres": free_port(), "http": free_port()}
    gw = write_config(root, USERS_TOML + pg_connection_toml(target) + RULES, listen=listen, settings=settings)
    gw.env.update(HOOP_TEST_PG_PASSWORD=target["password"], HOOP_STORE_PASSWORD=password)
    fleet.append(gw)
    gw.start()
    return gw


def held_update(gw: GatewayProcess, token: str, sql: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["psql", f"host=127.0.0.1 port={gw.ports['postgres']} user=alice dbname=pg sslmode=disable", "-X", "-c", sql],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PGPASSWORD": token},
    )


def approvals(gw: GatewayProcess) -> list[dict[str, object]]:
    return json.loads(gw.cli("approvals", "--json", "--all").stdout)  # type: ignore[no-any-return]


def sessions(gw: GatewayProcess) -> list[dict[str, object]]:
    return json.loads(gw.cli("sessions", "--json").stdout)  # type: ignore[no-any-return]


def pending_one(gw: GatewayProcess) -> dict[str, object]:
    def check() -> dict[str, object]:
        pending = [a for a in approvals(gw) if a["status"] == "pending"]
        assert len(pending) == 1, pending
        return pending[0]

    return eventually(check, timeout=15)


def test_a_killed_gateway_leaves_the_other_serving_and_its_work_ended_once(
    fleet: list[GatewayProcess], tmp_path: Path, accounts: dict[str, str]
) -> None:
    password = f"CANARY-store-{secrets.token_hex(6)}"
    with store_database(fleet) as store:
        a = gateway(fleet, tmp_path, accounts, store, "gw-a", password)
        b = gateway(fleet, tmp_path, accounts, store, "gw-b", password)
        # A third process taking a live gateway's name is refused, naming it.
        root = tmp_path / "impostor"
        root.mkdir()
        impostor = write_config(root, USERS_TOML, settings=f'store = "{store}"\nname = "gw-b"\n')
        impostor.env["HOOP_STORE_PASSWORD"] = password
        with pytest.raises(RuntimeError, match=r"gateway name 'gw-b' is held by a running gateway"):
            impostor.start()

        token = a.token("alice")  # issued through A, used on both
        idle = psycopg.connect(a.dsn("alice", token), autocommit=True)
        idle.execute("SELECT 1")
        held = held_update(a, token, "UPDATE loss_accounts SET balance = 7 WHERE id = 1")
        request = pending_one(b)
        assert request["status"] == "pending"
        eventually(lambda: _assert_open_on(b, "gw-a", 2))
        killed_at = time.monotonic()
        assert a.proc is not None
        a.proc.kill()  # SIGKILL: no goodbye, no journal flush
        a.proc.wait()
        held.communicate(timeout=10)
        idle.close()

        # B serves throughout.
        assert "1" in b.psql("alice", token, "SELECT 1").stdout

        def ended() -> None:
            mine = [s for s in sessions(b) if s["gateway"] == "gw-a"]
            assert mine and all(s["status"] == "interrupted" and s["ended"] for s in mine), mine
            decided = next(x for x in approvals(b) if x["id"] == request["id"])
            assert decided["status"] == "expired", decided

        eventually(ended, timeout=TIMEOUT + 15)
        assert time.monotonic() - killed_at >= TIMEOUT - 0.5  # not before the timeout
        events = b.audit("--action", "gateway.lost", until=lambda ev: len(ev) >= 1)
        time.sleep(TIMEOUT)  # B keeps beating: it must not report A lost again
        events = b.audit("--action", "gateway.lost", until=lambda ev: False, timeout=0)
        assert len(events) == 1, events
        [lost] = events
        assert lost["actor"] == "gateway" and lost["target"] == "gw-a"
        assert lost["detail"]["sessions_interrupted"] == 2 and lost["detail"]["approvals_expired"] == 1, lost
        # The held statement never ran, and nobody can approve it now.
        assert on_server(accounts, "SELECT balance FROM loss_accounts WHERE id = 1") == [(0,)]
        bob = b.token("bob")
        late = b.cli("approve", str(request["id"]), "--token", bob, check=False)
        assert late.returncode != 0 and "no longer pending" in late.stderr + late.stdout
        assert "1" in b.psql("alice", token, "SELECT 1").stdout
        verify = b.cli("audit", "verify", check=False)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        # A restarted under its name on this machine takes it back at once.
        a.start()
        assert "1" in a.psql("alice", token, "SELECT 1").stdout
        for gw in (a, b):
            assert password not in gw.log() and all(password not in out for out in gw.outputs)


def _assert_open_on(gw: GatewayProcess, name: str, count: int) -> None:
    mine = [s for s in sessions(gw) if s["gateway"] == name and s["status"] == "open"]
    assert len(mine) >= count, mine


def test_a_gateway_frozen_past_the_timeout_denies_what_it_held(
    fleet: list[GatewayProcess], tmp_path: Path, accounts: dict[str, str]
) -> None:
    with store_database(fleet) as store:
        a = gateway(fleet, tmp_path, accounts, store, "gw-a", "x")
        b = gateway(fleet, tmp_path, accounts, store, "gw-b", "x")
        token, bob = a.token("alice"), a.token("bob")
        held = held_update(a, token, "UPDATE loss_accounts SET balance = 9 WHERE id = 2")
        request = pending_one(b)
        assert a.proc is not None
        os.kill(a.proc.pid, signal.SIGSTOP)  # as if cut off: no heartbeat, nothing decided
        try:
            eventually(lambda: _assert_status(b, request["id"], "expired"), timeout=TIMEOUT + 15)
        finally:
            os.kill(a.proc.pid, signal.SIGCONT)
        # Back, A learns it was declared lost: the held statement is denied, never run.
        out, err = held.communicate(timeout=15)
        assert "UPDATE 1" not in out, out
        assert "gw-a was lost" in err, err
        late = a.cli("approve", str(request["id"]), "--token", bob, check=False)
        assert late.returncode != 0 and "no longer pending" in late.stderr + late.stdout
        time.sleep(0.5)
        assert on_server(accounts, "SELECT balance FROM loss_accounts WHERE id = 2") == [(0,)]
        rejoined = a.audit("--action", "gateway.rejoin", until=lambda ev: len(ev) == 1)
        assert len(rejoined) == 1, rejoined
        # It serves again, and nobody calls it lost a second time.
        assert "1" in a.psql("alice", token, "SELECT 1").stdout
        time.sleep(TIMEOUT)
        assert len(b.audit("--action", "gateway.lost", until=lambda ev: False, timeout=0)) == 1


def _assert_status(gw: GatewayProcess, approval_id: object, status: str) -> None:
    row = next(x for x in approvals(gw) if x["id"] == approval_id)
    assert row["status"] == status, row


def _children(pid: int, marker: str) -> list[int]:
    """The child processes of `pid` whose command line holds `marker`."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if marker.encode() in cmdline:
                found.append(int(child))
    return found


def _readyz(gw: GatewayProcess) -> tuple[int, str]:
    url = f"http://127.0.0.1:{gw.ports['http']}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_a_store_restart_is_refused_clearly_then_recovered_without_restarting(
    fleet: list[GatewayProcess], tmp_path: Path, accounts: dict[str, str]
) -> None:
    cluster = Cluster()
    try:
        cluster.start()
        password = f"CANARY-store-{secrets.token_hex(6)}"
        with store_database(fleet, cluster.port) as store:
            where = f"postgresql://127.0.0.1:{cluster.port}/{store.rsplit('/', 1)[1]}"
            a = gateway(fleet, tmp_path, accounts, store, "gw-a", password)
            b = gateway(fleet, tmp_path, accounts, store, "gw-b", password)
            pids = [gw.proc.pid for gw in (a, b) if gw.proc is not None]
            token = a.token("alice")
            conns = [psycopg.connect(gw.dsn("alice", token), autocommit=True) for gw in (a, b)]
            for conn in conns:
                conn.execute("SELECT 1")

            cluster.stop()
            for gw, conn in zip((a, b), conns, strict=True):

                def refused(gw: GatewayProcess = gw, conn: psycopg.Connection[object] = conn) -> str:
                    try:
                        conn.execute("SELECT 1")
                    except psycopg.errors.InsufficientPrivilege as exc:
                        return str(exc)
                    raise AssertionError(f"{gw.config} still runs statements")

                message = eventually(refused, timeout=30)
                assert "unavailable" in message and where in message, message
                login = gw.psql("alice", token, "SELECT 1")
                assert login.returncode != 0 and where in login.stderr and "unavailable" in login.stderr, login
                status, body = _readyz(gw)
                assert status == 503 and where in body, body
            # A journal writer started while the store is down (the first one died) waits for
            # the store, answering why, rather than exiting and being started over and over.
            assert a.proc is not None
            [writer] = _children(a.proc.pid, "journal_writer")
            os.kill(writer, signal.SIGKILL)
            time.sleep(3)
            assert a.log().count("journal writer exited") == 1, a.log()
            # A gateway started meanwhile refuses to start, naming the store.
            root = tmp_path / "late"
            root.mkdir()
            late = write_config(root, USERS_TOML, settings=f'store = "{store}"\nname = "gw-late"\n')
            late.env["HOOP_STORE_PASSWORD"] = password
            with pytest.raises(RuntimeError, match=f"cannot start: the store at {where} cannot be reached"):
                late.start()
            assert password not in late.log()

            cluster.start()
            for gw, conn in zip((a, b), conns, strict=True):

                def serves(conn: psycopg.Connection[object] = conn) -> None:
                    try:
                        assert conn.execute("SELECT 42").fetchone() == (42,)
                    except psycopg.errors.InsufficientPrivilege as exc:
                        raise AssertionError(str(exc)) from None

                eventually(serves, timeout=60)
                assert "42" in gw.psql("alice", token, "SELECT 42").stdout
                assert _readyz(gw)[0] == 200
            assert [gw.proc.pid for gw in (a, b) if gw.proc is not None and gw.proc.poll() is None] == pids
            for conn in conns:
                conn.close()
            events = a.audit("--action", "store.unavailable", until=lambda ev: len(ev) >= 2)
            assert all(where in e["detail"]["problem"] for e in events), events
            assert not b.audit("--action", "gateway.lost", until=lambda ev: False, timeout=0)
            verify = a.cli("audit", "verify", check=False)
            assert verify.returncode == 0, verify.stdout + verify.stderr
            for gw in (a, b):
                assert password not in gw.log() and all(password not in out for out in gw.outputs)
    finally:
        stop_all(fleet)
        cluster.remove()
