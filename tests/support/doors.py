"""The PostgreSQL, MySQL and SSH exec doors of one gateway, driven the same way, and what the
gateway stored about a session reduced to a shape that can be compared across doors.

Each `Door` runs one statement (an SQL statement, or the command of an `ssh` exec) in a
session of its own through the real client: psycopg, PyMySQL or OpenSSH's `ssh`. It knows a
statement that runs, one the rule `no-drop` blocks, one the rule `hold-writes` holds (with a
check of whether it ran on the server), one that runs for 20 s, and how to take the upstream
away from under a running statement on the server side.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import signal
import sqlite3
import subprocess
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pymysql

from hoop.core.store.records import DECISIONS
from support import mariadb, postgres
from support.gateway import GatewayProcess, write_config
from support.rules import rule_toml
from support.servers import free_port
from support.sshd import Sshd, ssh_connection_toml
from support.waiting import eventually

# One rule of each action, written for SQL and for shell commands alike, so that the stored
# rule names are the same whatever door a statement came through.
RULES = rule_toml("no-drop", statements=["drop", "command rm"]) + rule_toml(
    "hold-writes", "review", statements=["delete", "command touch"], approvers=["dba"], timeout="60s"
)
TABLE = "CREATE TABLE uniform_t (id int PRIMARY KEY)"
_numbers = itertools.count(1)


def uniform_gateway(root: Path, alice_key: str, target: dict[str, str], database: str, sshd: Sshd) -> GatewayProcess:
    """A gateway (not started) with the three doors: connection `pg` to the PostgreSQL
    `target`, `my` to the MariaDB `database`, `web` to `sshd` as root (shells allowed
    explicitly: its commands are under the rules); alice (dev) logs in
    with `alice_key` at the SSH door, bob (dba) approves."""
    body = f"""
[[users]]
name = "alice"
groups = ["dev"]
ssh_keys = ["{alice_key}"]

[[users]]
name = "bob"
groups = ["dev", "dba"]
"""
    body += (
        ssh_connection_toml("web", sshd, 'shell = "allow"')  # the rules cover it; shells are wanted too
        + postgres.pg_connection_toml(target)
        + mariadb.mysql_connection_toml(database)
        + RULES
    )
    gw = write_config(root, body, listen={door: free_port() for door in ("postgres", "mysql", "ssh")})
    gw.env["HOOP_TEST_PG_PASSWORD"] = target["password"]
    return gw


@dataclass
class Answer:
    """What the client saw: whether the statement succeeded, the error or stderr it got, and
    the door's code for it (SQLSTATE, MySQL error number or exit status)."""

    ok: bool
    said: str = ""
    code: str = ""


class Door:
    protocol: str  # the `protocol` its sessions are stored with
    # Statements the client library sends on its own as it connects (PyMySQL's SET NAMES):
    # recorded like any other, left out of the comparison.
    setup: frozenset[str] = frozenset()
    refused: str  # the code of the door's refusal: a blocked or denied statement
    allowed: str
    blocked: str

    def __init__(self, gw: GatewayProcess) -> None:
        self.gw = gw
        self.pool = ThreadPoolExecutor(4)

    def ask(self, text: str) -> Answer:
        """Open a session, run `text`, close the session."""
        raise NotImplementedError

    def start(self, text: str) -> Future[Answer]:
        """`ask` in the background, for statements that wait (held, long-running)."""
        return self.pool.submit(self.ask, text)

    def held(self) -> tuple[str, Path | int]:
        """A statement `hold-writes` holds, and what `ran` needs to tell whether it ran."""
        raise NotImplementedError

    def ran(self, what: Path | int) -> bool:
        raise NotImplementedError

    def long(self) -> str:
        """A statement of its own text that runs for 20 s."""
        raise NotImplementedError

    def running(self, text: str) -> int:
        """Wait until the server runs `text`; the id of what runs it (backend, thread, process)."""
        raise NotImplementedError

    def cut(self, text: str) -> None:
        """End, on the server side, the upstream of the session running `text`."""
        raise NotImplementedError

    def via(self, gw: GatewayProcess) -> Door:
        """This door of another gateway with the same configuration."""
        door = copy.copy(self)
        door.gw, door.pool = gw, ThreadPoolExecutor(4)
        return door


class Postgres(Door):
    protocol, refused = "postgres", "42501"
    allowed, blocked = "SELECT 1", "DROP TABLE uniform_t"

    def __init__(self, gw: GatewayProcess, target: dict[str, str], admin: psycopg.Connection[Any]) -> None:
        super().__init__(gw)
        self.target, self.admin = target, admin
        with postgres.connect_target(target) as conn:
            conn.execute("DROP TABLE IF EXISTS uniform_t")
            conn.execute(TABLE)
            conn.execute("INSERT INTO uniform_t SELECT generate_series(1, 1000)")

    def ask(self, text: str) -> Answer:
        try:
            with psycopg.connect(self.gw.dsn("alice", self.gw.tokens["alice"]), autocommit=True) as conn:
                conn.execute(text)
        except psycopg.Error as exc:
            return Answer(False, str(exc), exc.sqlstate or "")
        return Answer(True)

    def held(self) -> tuple[str, int]:
        n = next(_numbers)
        return f"DELETE FROM uniform_t WHERE id = {n}", n

    def ran(self, what: Path | int) -> bool:
        return postgres.on_server(self.target, f"SELECT count(*) FROM uniform_t WHERE id = {what}") == [(0,)]

    def long(self) -> str:
        return f"SELECT {next(_numbers)}, pg_sleep(20)"

    def running(self, text: str) -> int:
        def backend() -> int:
            rows = self.admin.execute("SELECT pid FROM pg_stat_activity WHERE query = %s", (text,)).fetchall()
            assert len(rows) == 1, f"no backend runs {text!r}"
            return int(rows[0][0])

        return eventually(backend)

    def cut(self, text: str) -> None:
        self.admin.execute("SELECT pg_terminate_backend(%s)", (self.running(text),))


class Mysql(Door):
    protocol, refused = "mysql", "1142"
    setup = frozenset({"SET NAMES utf8mb4"})
    allowed, blocked = "SELECT 1", "DROP TABLE uniform_t"

    def __init__(self, gw: GatewayProcess, database: str) -> None:
        super().__init__(gw)
        self.database = database
        mariadb.on_server(database, TABLE)
        mariadb.on_server(database, "INSERT INTO uniform_t SELECT seq FROM seq_1_to_1000")

    def ask(self, text: str) -> Answer:
        try:
            conn = mariadb.through(self.gw)
            try:
                with conn.cursor() as cur:
                    cur.execute(text)
            finally:
                conn.close()
        except pymysql.err.MySQLError as exc:
            code, said = (exc.args + ("", ""))[:2]
            return Answer(False, str(said), str(code))
        return Answer(True)

    def held(self) -> tuple[str, int]:
        n = next(_numbers)
        return f"DELETE FROM uniform_t WHERE id = {n}", n

    def ran(self, what: Path | int) -> bool:
        return mariadb.on_server(self.database, f"SELECT count(*) FROM uniform_t WHERE id = {what}") == ((0,),)

    def long(self) -> str:
        return f"SELECT {next(_numbers)}, SLEEP(20)"

    def running(self, text: str) -> int:
        def thread() -> int:
            rows = mariadb.on_server("information_schema", f"SELECT id FROM processlist WHERE info = '{text}'")
            assert len(rows) == 1, f"no thread runs {text!r}"
            return int(rows[0][0])

        return eventually(thread)

    def cut(self, text: str) -> None:
        mariadb.on_server("information_schema", f"KILL {self.running(text)}")


class Ssh(Door):
    """`ssh alice+web@gateway COMMAND`: an exec session; the target is a throwaway sshd on this
    machine, so its processes are ours to find and kill."""

    protocol, refused = "ssh", "126"
    allowed, blocked = "echo hello", "rm -f /tmp/hoop-uniform-never"

    def __init__(self, gw: GatewayProcess, key: Path) -> None:
        super().__init__(gw)
        self.key = key
        self.files: list[Path] = []

    def argv(self, *args: str) -> list[str]:
        """`ssh` with alice's key to the gateway's SSH door, then `args`."""
        argv = ["ssh", "-F", "/dev/null", "-p", str(self.gw.ports["ssh"]), "-i", str(self.key)]
        for option in ("StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "LogLevel=ERROR"):
            argv += ["-o", option]
        return argv + ["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", *args]

    def ask(self, text: str) -> Answer:
        argv = self.argv("alice+web@127.0.0.1", text)
        ran = subprocess.run(argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        return Answer(ran.returncode == 0, ran.stderr, str(ran.returncode))

    def held(self) -> tuple[str, Path]:
        path = Path(f"/tmp/hoop-uniform-{os.getpid()}-{next(_numbers)}")
        self.files.append(path)
        return f"touch {path}", path

    def ran(self, what: Path | int) -> bool:
        return Path(str(what)).exists()

    def long(self) -> str:
        return f"sleep 20.{next(_numbers):03d}"

    def running(self, text: str) -> int:
        return eventually(lambda: _process(text.split()))

    def cut(self, text: str) -> None:
        """Kill the sshd process serving the exec, then the command it ran."""
        command = self.running(text)
        os.kill(_ancestor(command, "sshd"), signal.SIGKILL)
        os.kill(command, signal.SIGKILL)

    def cleanup(self) -> None:
        for path in self.files:
            path.unlink(missing_ok=True)


def _process(argv: list[str]) -> int:
    """The pid of the process whose command line is `argv`."""
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().split(b"\0")[:-1] == [
                a.encode() for a in argv
            ]:
                return int(entry.name)
        except OSError:
            continue
    raise AssertionError(f"no process runs {argv}")


def _ancestor(pid: int, name: str) -> int:
    """The nearest ancestor of `pid` whose name starts with `name`."""
    while pid > 1:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
        comm, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
        if comm.startswith(name):
            return pid
        pid = int(rest[1])
    raise AssertionError(f"no {name} process above {pid}")


# -- what the gateway stored -------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    """A session's stored records, reduced to what must not depend on the door: its status,
    its statements as (decision, rule, whether an error was recorded), the kit's audit actions
    about it in order (`session.end` with its reason) and its recording's q/r frames."""

    status: str
    statements: tuple[tuple[str, str, bool], ...]
    audit: tuple[str, ...]
    frames: str


# The kit's audit vocabulary; doors add events of their own beside it (ssh.target,
# session.terminate when a SQL client says goodbye, ...), which are not compared.
KIT_ACTIONS = ("session.start", "session.kill", "session.end", "statement", "approval.")


class Records:
    """The gateway's SQLite store and recordings, read directly."""

    def __init__(self, gw: GatewayProcess) -> None:
        self.db = gw.root / "data" / "hoop.db"

    def query(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute(sql, args)]
        finally:
            conn.close()

    def last_id(self) -> int:
        return int(self.query("SELECT coalesce(max(id), 0) AS m FROM sessions")[0]["m"])

    def session_after(self, last: int) -> dict[str, Any]:
        """The one session stored after session `last` (waiting for the journal to write it)."""

        def one() -> dict[str, Any]:
            rows = self.query("SELECT * FROM sessions WHERE id > ?", last)
            assert len(rows) == 1, f"sessions stored: {rows}"
            return rows[0]

        return eventually(one)

    def stored(self, sid: int, setup: frozenset[str] = frozenset()) -> Stored:
        """A session's stored records, without the statements in `setup` (and their audit
        events and recording frames)."""
        [session] = self.query("SELECT status, recording FROM sessions WHERE id = ?", sid)
        statements = self.query(
            "SELECT text, decision, rule, error FROM statements WHERE session_id = ? ORDER BY seq", sid
        )
        approvals = {r["id"] for r in self.query("SELECT id FROM approvals WHERE session_id = ?", sid)}
        audit = []
        for event in self.query("SELECT action, detail FROM audit ORDER BY id"):
            detail = json.loads(event["detail"])
            ours = detail.get("session") == sid or detail.get("approval") in approvals
            if event["action"] == "statement" and detail.get("text") in setup:
                continue
            if ours and event["action"].startswith(KIT_ACTIONS):
                audit.append(event["action"] + (f" {detail.get('reason')}" if event["action"] == "session.end" else ""))
        path = Path(session["recording"])
        frames = [json.loads(line) for line in path.read_text().splitlines()[1:]] if path.exists() else []
        kinds, skip_result = [], False
        for _, kind, data in frames:
            if kind == "q" and data.get("text") in setup:
                skip_result = True
            elif kind == "r" and skip_result:
                skip_result = False
            elif kind in "qr":
                kinds.append(kind)
        assert {s["decision"] for s in statements} <= set(DECISIONS), statements  # the one vocabulary
        return Stored(
            session["status"],
            tuple((s["decision"], s["rule"], bool(s["error"])) for s in statements if s["text"] not in setup),
            tuple(audit),
            "".join(kinds),
        )
