"""Deterministic data for TUI tests: a store with sessions, statements, approvals and rules at
fixed times, recordings on disk, and a control endpoint double that records what it was asked.

Times are fixed (NOW) and the app is given `now=lambda: NOW`, so snapshots do not drift.
"""

from __future__ import annotations

import io
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support.inert import C1_CSI, HOSTILE_RULE, HOSTILE_USER, MARKUP, OSC52, REVERSED, STATEMENT

from hoop.control_client import ControlClient, ControlError, GatewayUnavailable
from hoop.core import recording
from hoop.core.rulebook import RuleBook
from hoop.core.store.sqlite import SqliteStore
from hoop.core.terminal import CastWriter
from hoop.tui.app import HoopApp
from hoop.tui.data import GatewayLink, History

NOW = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC

os.environ["TZ"] = "UTC"
time.tzset()


def _session(
    store: SqliteStore,
    sid: int,
    user: str,
    conn: str,
    proto: str,
    started: float,
    ended: float | None,
    statements: int = 0,
    blocked: int = 0,
    held: int = 0,
    recording_path: str = "",
) -> None:
    store.conn.execute(
        "INSERT INTO sessions(id, user, connection, protocol, client_addr, started, ended, status, statements, "
        "blocked, held, recording) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            sid,
            user,
            conn,
            proto,
            "127.0.0.1:5000",
            started,
            ended,
            "open" if ended is None else "closed",
            statements,
            blocked,
            held,
            recording_path,
        ),
    )


def _statement(
    store: SqliteStore,
    sid: int,
    seq: int,
    started: float,
    text: str,
    decision: str = "allow",
    rule: str = "",
    rows: int | None = 1,
    error: str = "",
) -> None:
    store.conn.execute(
        "INSERT INTO statements(session_id, seq, started, duration_ms, text, decision, rule, rows, error) "
        "VALUES (?,?,?,?,?,?,?,?,?)",
        (sid, seq, started, 1.5, text, decision, rule, rows, error),
    )


def _approval(
    store: SqliteStore,
    aid: int,
    sid: int,
    user: str,
    text: str,
    created: float,
    status: str = "pending",
    decided: float | None = None,
    decisions: list[str] | None = None,
) -> None:
    store.conn.execute(
        "INSERT INTO approvals(id, session_id, user, connection, statement, rule, reason, approvers, required, "
        "status, created, expires, decided, decisions) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            aid,
            sid,
            user,
            "pg",
            text,
            "hold-writes",
            f"update on {text.split()[1]} needs review by dba",
            json.dumps(["dba"]),
            1,
            status,
            created,
            created + 300,
            decided,
            json.dumps(decisions or []),
        ),
    )


def write_db_recording(path: Path, sid: int, frames: list[tuple[float, str, dict[str, Any]]]) -> None:
    head = recording.header(sid, "postgres", "alice", "pg", NOW - 600)
    lines = [json.dumps(head)] + [recording.encode_frame(t, k, d) for t, k, d in frames]
    path.write_text("\n".join(lines) + "\n")


def write_cast(path: Path, chunks: list[str], *, step: float = 0.5, keyframe_every: float = 10.0) -> None:
    """A terminal recording: each chunk is output at `step` seconds after the previous one."""
    start = NOW - 3600
    for old in (path, path.with_suffix(".keyframes.jsonl")):
        old.unlink(missing_ok=True)
    writer = CastWriter(path, 60, 12, started=start, keyframe_every=keyframe_every)
    for i, chunk in enumerate(chunks):
        writer.output(chunk.encode(), now=start + (i + 1) * step)
    writer.close()


def build_store(root: Path) -> History:
    """Sessions 1-6, statements, two pending approvals and one decided, rules, recordings."""
    recordings = root / "recordings"
    recordings.mkdir(parents=True, exist_ok=True)
    store = SqliteStore(root / "data" / "hoop.db")
    with store.lock:
        _session(store, 1, "alice", "pg", "postgres", NOW - 7200, NOW - 7000, 3, 1, 0, str(recordings / "1.hoop.jsonl"))
        _session(store, 2, "carol", "pg", "postgres", NOW - 5400, NOW - 5300, 1)
        _session(store, 3, "alice", "web1", "ssh", NOW - 3600, NOW - 3500, 2)
        _session(store, 4, "dave", "mysql1", "mysql", NOW - 1800, NOW - 1700, 1)
        _session(store, 5, "alice", "pg", "postgres", NOW - 600, None, 4, 0, 2)
        _session(store, 6, "bob", "pg", "postgres", NOW - 120, None, 1, 0, 0)
        _statement(store, 1, 1, NOW - 7190, "select id, email from customers limit 2", rows=2)
        _statement(
            store,
            1,
            2,
            NOW - 7180,
            "delete from orders",
            "block",
            "unbounded-writes",
            None,
            "blocked by rule unbounded-writes",
        )
        _statement(store, 1, 3, NOW - 7170, "update orders set total = 0 where id = 7", rows=1)
        _statement(store, 3, 1, NOW - 3590, "ls -la", rows=None)
        _statement(store, 3, 2, NOW - 3580, "cat /etc/hostname", rows=None)
        _statement(store, 5, 1, NOW - 590, "select count(*) from orders", rows=1)
        _statement(
            store,
            5,
            2,
            NOW - 500,
            "update orders set status = 'void' where id = 42",
            "review",
            "hold-writes",
            rows=None,
        )
        _approval(
            store,
            1,
            2,
            "carol",
            "update invoices set paid = true where id = 9",
            NOW - 5350,
            "approved",
            NOW - 5340,
            ["bob"],
        )
        _approval(store, 2, 5, "alice", "update orders set status = 'void' where id = 42", NOW - 240)
        _approval(store, 3, 5, "alice", "update customers set email = 'x@y.z' where id = 3", NOW - 30)
    # Decided requests are listed for 10 minutes; request 1 is older than that.
    book = RuleBook(store)
    book.save(
        "guard",
        {
            "name": "hold-writes",
            "action": "review",
            "statements": ["update", "delete"],
            "approvers": ["dba"],
            "timeout": "5m",
        },
        "hoop.toml",
    )
    book.save("guard", {"name": "no-drop", "action": "block", "statements": ["drop", "truncate"]}, "hoop.toml")
    book.save("mask", {"name": "pii", "columns": ["*.email"], "detectors": ["email"], "style": "partial"}, "bob")
    store.conn.execute("UPDATE rules SET created = ?", (NOW - 86400,))
    store.upsert_user("alice", ["dev"], "config")
    store.upsert_user("bob", ["dev", "dba"], "config")
    write_db_recording(
        recordings / "1.hoop.jsonl",
        1,
        [
            (0.0, "e", {"event": "start"}),
            (10.0, "q", {"text": "select id, email from customers limit 2", "decision": "allow", "rule": ""}),
            (
                10.01,
                "r",
                {
                    "tag": "SELECT 2",
                    "rows": 2,
                    "ms": 1.2,
                    "error": "",
                    "columns": ["id", "email"],
                    "sample": [["1", "a***@example.com"], ["2", "b***@example.com"]],
                },
            ),
            (20.0, "q", {"text": "delete from orders", "decision": "block", "rule": "unbounded-writes"}),
            (20.0, "r", {"tag": "", "rows": None, "ms": 0.1, "error": "blocked by rule unbounded-writes"}),
            (30.0, "q", {"text": "update orders set total = 0 where id = 7", "decision": "allow", "rule": ""}),
            (30.02, "r", {"tag": "UPDATE 1", "rows": 1, "ms": 2.0, "error": ""}),
            (200.0, "e", {"event": "end"}),
        ],
    )
    write_cast(
        recordings / "3.cast",
        [
            "root@web1:~# ",
            "ls -la\r\n",
            "total 8\r\nfile.txt\r\n",
            "root@web1:~# ",
            "cat /etc/hostname\r\n",
            "web1\r\n",
            "root@web1:~# ",
        ],
    )
    return History(store, recordings)


HOSTILE_CONN = "pg\x1b[2K[/]"
SHOWN_CONN = r"pg\x1b[2K[/]"
SERVER_ERROR = f"ERROR: relation {OSC52} does not exist [/]"
EDITOR_RULE = f"rev{REVERSED}{C1_CSI}"  # a name the rule editor's TOML must escape


def add_hostile_rows(history: Any) -> None:
    """Session 7 (database, live) and 8 (terminal) of a hostile user, with a held statement."""
    store = history.store
    recordings = history.recordings_dir
    with store.lock:
        for sid, proto, ended in ((7, "postgres", None), (8, "ssh", NOW - 50)):
            store.conn.execute(
                "INSERT INTO sessions(id, user, connection, protocol, client_addr, started, ended, status, "
                "statements, blocked, held, recording) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (sid, HOSTILE_USER, HOSTILE_CONN, proto, "127.0.0.1:5001", NOW - 100, ended, "open", 1, 0, 1, ""),
            )
        store.conn.execute(
            "INSERT INTO statements(session_id, seq, started, duration_ms, text, decision, rule, rows, error) "
            "VALUES (?,?,?,?,?,?,?,?,?)",
            (7, 1, NOW - 90, 1.0, STATEMENT, "review", HOSTILE_RULE, None, SERVER_ERROR),
        )
        store.conn.execute(
            "INSERT INTO approvals(id, session_id, user, connection, statement, rule, reason, approvers, required, "
            "status, created, expires, decided, decisions) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                4,
                7,
                HOSTILE_USER,
                HOSTILE_CONN,
                STATEMENT,
                HOSTILE_RULE,
                f'update on "x[/]y" needs review by {MARKUP}',
                json.dumps(["dba", HOSTILE_USER]),
                1,
                "pending",
                NOW - 10,
                NOW + 290,
                None,
                json.dumps([]),
            ),
        )
    book = RuleBook(store)
    book.save(
        "guard",
        {"name": HOSTILE_RULE, "action": "review", "statements": ["update"], "approvers": ["dba"]},
        HOSTILE_USER,
    )
    book.save("guard", {"name": EDITOR_RULE, "action": "block", "statements": ["truncate"]}, "bob")
    write_db_recording(
        recordings / "7.hoop.jsonl",
        7,
        [
            (0.0, "e", {"event": "start", "user": HOSTILE_USER}),
            (1.0, "q", {"text": STATEMENT, "decision": "review", "rule": HOSTILE_RULE}),
            (
                1.5,
                "r",
                {"tag": "SELECT 1", "rows": 1, "ms": 1.0, "error": "", "columns": ["c[/]"], "sample": [[OSC52]]},
            ),
            (2.0, "r", {"tag": "", "rows": None, "ms": 0.1, "error": SERVER_ERROR}),
        ],
    )
    write_cast(
        recordings / "8.cast",
        [
            "root@web1:~# \x1bP1$qm\x1b\\\x1b[6n\x1b[c\x9b2J",
            f"{OSC52}\x1b]0;pwned-title\x07\x1b]8;;https://example.com\x07link\x1b]8;;\x07 ",
            "\x1b[31mred\x1b[0m visible-after\r\n",
        ],
    )


@dataclass
class FakeControl:
    """Stands in for the gateway's control endpoint in pilot tests: records each call and
    answers like the gateway (including its refusals)."""

    user: str = "bob"
    groups: tuple[str, ...] = ("dba", "dev")
    online: bool = True
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)
    roles: tuple[str, ...] = ("admin",)  # as the gateway's whoami answers (hoop/core/roles.py)
    scope: dict[str, list[str]] = field(default_factory=lambda: {"rules": [], "connections": []})

    def call(self, op: str, **params: Any) -> Any:
        if not self.online:
            raise GatewayUnavailable(
                "the gateway is not running (no control socket at data/control.sock); live actions are unavailable"
            )
        if op == "whoami":
            return {"user": self.user, "groups": list(self.groups), "roles": list(self.roles), "scope": self.scope}
        self.calls.append((op, params))
        if op in self.refuse:
            raise ControlError(self.refuse[op])
        if op == "approve":
            return {"id": params["id"], "status": "approved"}
        if op == "deny":
            return {"id": params["id"], "status": "denied"}
        if op == "kill":
            return {"id": params["id"], "status": "killed"}
        if op == "rules.save":
            return {"kind": params["kind"], "name": params["body"]["name"], "version": 2}
        if op == "rules.remove":
            return {"kind": params["kind"], "name": params["name"], "version": 2}
        raise ControlError(f"unknown operation {op!r}")


def gateway_app(gw: Any, token: str, **kw: Any) -> HoopApp:
    """The TUI on a running gateway (a GatewayProcess): its store, recordings and control
    socket, as the holder of `token`."""
    data = gw.root / "data"
    history = History.open(data / "hoop.db", gw.root / "recordings")
    return HoopApp(history, GatewayLink(ControlClient(data / "control.sock", token)), **kw)


async def new_rule_editor(pilot: Any) -> Any:
    """On the rules screen: open the editor of a new rule (key n); its TextArea."""
    await settle(pilot)
    await pilot.press("n")
    await settle(pilot)
    return pilot.app.screen.query_one("TextArea")


def screen_output(app: Any) -> tuple[str, str]:
    """The current screen as the terminal would receive it (escape sequences and all) and as
    the text a person reads on it."""
    from rich.console import Console

    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        color_system="truecolor",
        record=True,
        legacy_windows=False,
    )
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.file.getvalue(), console.export_text(styles=False)


async def settle(pilot: Any, rounds: int = 3) -> None:
    """Let workers finish and their messages be handled."""
    for _ in range(rounds):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
