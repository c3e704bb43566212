"""SSH sessions as the session kit records them, through the real OpenSSH client and target:
how each one ends (closed, killed, upstream-lost), the lobby as a session of its own, and the
one statement record of an exec, held or not."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
import time
from typing import Any

from _pty import Term
from support.waiting import eventually

from hoop.core.terminal import cast_path


def _query(gateway: Any, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    db = sqlite3.connect(gateway.dir / "data" / "hoop.db")
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute(sql, params)]
    finally:
        db.close()


def _last_id(gateway: Any) -> int:
    return int(_query(gateway, "SELECT coalesce(max(id), 0) AS m FROM sessions")[0]["m"])


def _new_session(gateway: Any, after: int, connection: str, status: str | None = None) -> dict[str, Any]:
    """The first session after id `after` on `connection` ("" for the lobby), once stored
    (with `status`, when given)."""

    def stored() -> dict[str, Any]:
        rows = _query(
            gateway, "SELECT * FROM sessions WHERE id > ? AND connection = ? ORDER BY id", (after, connection)
        )
        assert rows, f"no session on {connection!r} after {after}"
        if status is not None:
            assert rows[0]["status"] == status, rows[0]
        return rows[0]

    return eventually(stored, timeout=15)


def _nonempty(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    assert rows, "not stored yet"
    return rows


def _contains(text: str, part: str) -> str:
    assert part in text, text[-2000:]
    return text


def _statements(gateway: Any, session_id: int) -> list[dict[str, Any]]:
    return _query(gateway, "SELECT * FROM statements WHERE session_id = ? ORDER BY seq", (session_id,))


def _audited(gateway: Any, action: str, session_id: int) -> list[dict[str, Any]]:
    rows = _query(gateway, "SELECT detail FROM audit WHERE action = ?", (action,))
    return [d for d in (json.loads(r["detail"]) for r in rows) if d.get("session") == session_id]


def _kill(gateway: Any, session_id: int, reason: str) -> None:
    out = gateway.run_hoop("kill", str(session_id), "--reason", reason, "--token", gateway.token("bob"))
    assert out.returncode == 0, out.stderr


def _pending(gateway: Any, statement: str) -> int:
    def held() -> int:
        out = gateway.run_hoop("approvals", "--json")
        rows = json.loads(out.stdout or "[]") if out.returncode == 0 else []
        pending = [r for r in rows if r["status"] == "pending" and r["statement"] == statement]
        assert pending, "the exec was not held"
        return int(pending[0]["id"])

    return eventually(held, timeout=20)


def test_lobby_is_a_listed_recorded_session(gateway):
    before = _last_id(gateway)
    t = Term(gateway.ssh_args("alice", "-t"))
    try:
        t.expect(r"hoop alice> ")
        lobby = _new_session(gateway, before, "", status="open")
        assert (lobby["user"], lobby["protocol"]) == ("alice", "ssh")
        listed = gateway.run_hoop("sessions")
        assert listed.returncode == 0, listed.stderr
        line = next(row for row in listed.stdout.splitlines() if row.split()[0] == str(lobby["id"]))
        assert "(lobby)" in line and "open" in line, line
        t.send("whoami\r")
        t.expect(r"from: ")
        t.send("exit\r")
        assert t.wait() == 0
    finally:
        t.close()
    _new_session(gateway, before, "", status="closed")
    cast = cast_path(gateway.recordings, lobby["id"])
    eventually(lambda: _contains(cast.read_text(), "user: alice"))
    replay = gateway.run_hoop("replay", str(lobby["id"]), "--text")
    assert replay.returncode == 0, replay.stderr
    assert "Signed in as alice" in replay.stdout and "user: alice" in replay.stdout


def test_killing_the_lobby_ends_it_with_the_reason(gateway):
    before = _last_id(gateway)
    t = Term(gateway.ssh_args("alice", "-t"))
    try:
        t.expect(r"hoop alice> ")
        lobby = _new_session(gateway, before, "", status="open")
        _kill(gateway, lobby["id"], "end of the day")
        t.expect(r"session ended by the gateway: end of the day")
        assert t.wait() != 0
    finally:
        t.close()
    _new_session(gateway, before, "", status="killed")


def test_killed_exec_is_killed_with_one_statement(gateway):
    before = _last_id(gateway)
    client = subprocess.Popen(
        gateway.ssh_args("alice+web1") + ["sleep 30"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        session = _new_session(gateway, before, "web1", status="open")
        eventually(lambda: _nonempty(_audited(gateway, "ssh.target", session["id"])))  # the command runs
        started = time.monotonic()
        _kill(gateway, session["id"], "runaway")
        _, err = client.communicate(timeout=15)
    finally:
        if client.poll() is None:
            client.kill()
    assert time.monotonic() - started < 10
    assert client.returncode == 126
    assert b"session ended by the gateway: runaway" in err
    _new_session(gateway, before, "web1", status="killed")
    (statement,) = eventually(lambda: _nonempty(_statements(gateway, session["id"])))
    assert (statement["text"], statement["decision"]) == ("sleep 30", "allow")
    assert "runaway" in statement["error"]


def test_exec_on_an_unreachable_target_is_upstream_lost(gateway):
    before = _last_id(gateway)
    r = gateway.ssh("alice+down", "true")
    assert r.returncode == 255
    assert b"hoop: cannot reach down" in r.stderr
    session = _new_session(gateway, before, "down", status="upstream-lost")
    (statement,) = eventually(lambda: _nonempty(_statements(gateway, session["id"])))
    assert statement["decision"] == "allow" and "cannot reach down" in statement["error"]


def test_target_lost_mid_exec_is_upstream_lost(gateway):
    """The target's sshd for this login dies while the command runs."""
    before = _last_id(gateway)
    r = gateway.ssh("alice+web1", "echo started; sleep 0.5; kill -9 $PPID; sleep 5")
    assert r.stdout.startswith(b"started")
    assert r.returncode != 0
    session = _new_session(gateway, before, "web1", status="upstream-lost")
    (statement,) = eventually(lambda: _nonempty(_statements(gateway, session["id"])))
    assert statement["decision"] == "allow" and statement["error"] == "the target went away"


def test_blocked_exec_has_one_block_statement(gateway):
    before = _last_id(gateway)
    r = gateway.ssh("alice+web1", "rm -rf /tmp/hoop-nothing-here")
    assert r.returncode == 126 and b"hoop: refused:" in r.stderr
    session = _new_session(gateway, before, "web1", status="closed")
    rows = eventually(lambda: _nonempty(_statements(gateway, session["id"])))
    assert [(s["decision"], s["rule"]) for s in rows] == [("block", "no-rm")]


def _held(gateway: Any, decide: list[str]) -> tuple[subprocess.CompletedProcess[bytes], list[dict[str, Any]]]:
    """Run `hostname` (held by rule hold-hostname), decide with `hoop DECIDE ID ...` as bob."""
    before = _last_id(gateway)
    result: dict[str, subprocess.CompletedProcess[bytes]] = {}
    t = threading.Thread(target=lambda: result.setdefault("r", gateway.ssh("alice+web1", "hostname", timeout=60)))
    t.start()
    approval = _pending(gateway, "hostname")
    decided = gateway.run_hoop(decide[0], str(approval), *decide[1:], "--token", gateway.token("bob"))
    assert decided.returncode == 0, decided.stderr
    t.join(60)
    session = _new_session(gateway, before, "web1", status="closed")
    return result["r"], eventually(lambda: _nonempty(_statements(gateway, session["id"])))


def test_approved_exec_is_one_review_approved_statement(gateway):
    r, rows = _held(gateway, ["approve"])
    assert r.returncode == 0, r.stderr
    assert b"hoop: approved (approval #" in r.stderr
    assert [(s["text"], s["decision"], s["rule"], s["error"]) for s in rows] == [
        ("hostname", "review:approved", "hold-hostname", "")
    ]


def test_denied_exec_is_one_review_denied_statement(gateway):
    r, rows = _held(gateway, ["deny", "--reason", "not today"])
    assert r.returncode == 126
    assert b"hoop: not run: approval #" in r.stderr and b"not today" in r.stderr
    assert r.stdout == b""
    assert [(s["text"], s["decision"], s["rule"]) for s in rows] == [("hostname", "review:denied", "hold-hostname")]


def test_exec_killed_while_held_is_abandoned(gateway):
    before = _last_id(gateway)
    client = subprocess.Popen(
        gateway.ssh_args("alice+web1") + ["hostname"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        approval = _pending(gateway, "hostname")
        session = _new_session(gateway, before, "web1", status="open")
        _kill(gateway, session["id"], "not now")
        out, err = client.communicate(timeout=15)
    finally:
        if client.poll() is None:
            client.kill()
    assert client.returncode == 126 and out == b""
    assert b"session ended by the gateway: not now" in err
    _new_session(gateway, before, "web1", status="killed")
    rows = eventually(lambda: _nonempty(_statements(gateway, session["id"])))
    assert [(s["decision"], s["rule"]) for s in rows] == [("review:abandoned", "hold-hostname")]
    approvals = json.loads(gateway.run_hoop("approvals", "--all", "--json").stdout)
    assert next(a for a in approvals if a["id"] == approval)["status"] == "abandoned"
