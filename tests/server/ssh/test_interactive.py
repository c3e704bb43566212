"""Interactive use through a real PTY: the built-in session, connect to SSH and PostgreSQL,
direct terminals, recordings (asciinema, keyframes) and the credential canary."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

import pytest
from _pty import Term
from support.waiting import eventually

from hoop.core.terminal import CastReader


def builtin(gateway, user: str = "alice", *extra: str) -> Term:
    return Term(gateway.ssh_args(user, "-t", *extra))


def test_builtin_session_commands(gateway):
    assert gateway.ssh("alice+web1", "true").returncode == 0  # a session for `sessions` to show
    eventually(lambda: _sessions_of(gateway, "web1"))
    t = builtin(gateway)
    try:
        t.expect(r"hoop alice> ")
        t.send("help\r")
        t.expect(r"connect NAME")
        t.expect(r"hoop alice> ")
        t.send("whoami\r")
        t.expect(r"user: alice")
        t.expect(r"groups: dev")
        t.send("list\r")
        t.expect(r"web1\s+ssh\s+reachable")
        t.expect(r"db\s+postgres\s+reachable")
        t.send("bogus\r")
        t.expect(r"unknown command 'bogus'")
        # line editing: type, move left, insert, and history recall
        t.send("whoam\x1b[D\x1b[Ci\r")
        t.expect(r"user: alice")
        t.send("\x1b[A\r")
        t.expect(r"user: alice")
        t.send("some half line\x03")
        t.expect(r"\^C")
        t.expect(r"hoop alice> ")
        t.send("sessions\r")
        t.expect(r"ID\s+STARTED")
        t.expect(r"web1\s+ssh")
        t.send("exit\r")
        assert t.wait() == 0
    finally:
        t.close()


def test_connect_ssh_from_builtin_is_recorded(gateway):
    t = builtin(gateway)
    try:
        t.expect(r"hoop alice> ")
        t.send("connect web1\r")
        t.expect(r"[#$] ")
        t.send("echo hello-$((6*7))\r")
        t.expect(r"hello-42")
        t.send("exit\r")
        t.expect(r"connection to web1 closed")
        t.expect(r"hoop alice> ")
        t.send("exit\r")
        t.wait()
    finally:
        t.close()

    def recorded() -> None:
        assert "hello-42" in _latest_cast(gateway).read_text()
        observed = _statements(gateway, "observed")
        assert any("echo hello-$((6*7))" in s for s in observed), observed

    eventually(recorded)


def test_connect_postgres_sql_shell(gateway):
    t = builtin(gateway)
    try:
        t.expect(r"hoop alice> ")
        t.send("connect db\r")
        t.expect(r"db=> ")
        t.send("select 6*7 as answer,\r")
        t.expect(r"db-> ")
        t.send("'x' as label;\r")
        t.expect(r"answer \| label")
        t.expect(r"42 +\| x")
        t.expect(r"\(1 row\)")
        t.send("select nope;\r")
        t.expect(r"ERROR: .*nope")
        t.send("\\q\r")
        t.expect(r"hoop alice> ")
        t.send("exit\r")
        t.wait()
    finally:
        t.close()


def test_direct_interactive_and_replay(gateway):
    t = Term(gateway.ssh_args("alice+web1", "-t"), cols=90, rows=20)
    try:
        t.expect(r"[#$] ")
        t.send("for i in $(seq 1 5); do echo line-$i; done\r")
        t.expect(r"line-5")
        time.sleep(1.2)
        t.send("echo second-half\r")
        t.expect(r"second-half\s")
        t.send("exit 3\r")
        assert t.wait() == 3
    finally:
        t.close()

    def finished() -> Path:  # this session's recording, with its closing keyframe
        cast = _latest_cast(gateway)
        assert "second-half" in cast.read_text() and len(CastReader(cast).keyframes) >= 2
        return cast

    cast = eventually(finished)
    if shutil.which("asciinema"):
        player = Term(["asciinema", "cat", str(cast)])  # it insists on a terminal
        try:
            player.expect(r"second-half")
            assert player.wait() == 0
        finally:
            player.close()
    elif __import__("os").environ.get("CI"):
        pytest.fail("asciinema is not installed")
    reader = CastReader(cast)
    assert reader.header["width"] == 90 and reader.header["height"] == 20
    assert len(reader.keyframes) >= 2, "keyframes at command boundaries and at the end"
    middle = reader.keyframes[len(reader.keyframes) // 2]
    screen, used = reader.screen_at(middle.t + 0.01)
    assert used is not None and used.offset > reader.events_offset, "seeking must start from a keyframe"
    total = sum(1 for _ in reader.events())
    assert reader.replayed < total
    full, _ = reader.screen_at(reader.duration())
    assert any("second-half" in line for line in full)
    text = gateway.run_hoop("replay", cast.stem, "--text")
    assert text.returncode == 0, text.stderr
    assert "second-half" in text.stdout


def test_canary_credentials_never_leak(gateway):
    """Run sessions with all three credential kinds, then search every output and file."""
    outputs = [gateway.ssh("alice+web1", "echo a").stdout, gateway.ssh("alice+web3", "echo b").stdout]
    if gateway.sshd.password_user:
        outputs.append(gateway.ssh("alice+web2", "echo c").stdout + gateway.ssh("alice+web2", "echo c").stderr)
    t = Term(gateway.ssh_args("alice+web3", "-t"))
    try:
        t.expect(r"[#$] ")
        t.send("exit\r")
        t.wait()
        outputs.append(t.raw)
    finally:
        t.close()
    time.sleep(0.5)
    key = gateway.sshd.target_key.read_text()
    key_body = "".join(key.strip().splitlines()[1:-1])
    # Slices from the middle of the key (its start is the same for every OpenSSH key).
    canaries = [gateway.env["HOOP_TEST_PASSWORD"].encode(), key_body[100:140].encode(), key_body[160:200].encode()]
    files = [
        p
        for p in gateway.dir.rglob("*")
        if p.is_file() and p.suffix not in (".toml",) and p.name != "alice_key" and not p.name.startswith("fake-")
    ]
    for blob in outputs + [p.read_bytes() for p in files]:
        for canary in canaries:
            assert canary not in blob


def _latest_cast(gateway) -> Path:
    casts = sorted(gateway.recordings.glob("*.cast"), key=lambda p: int(p.stem))
    assert casts, "no terminal recording written"
    return casts[-1]


def _sessions_of(gateway, connection: str) -> int:
    db = sqlite3.connect(gateway.dir / "data" / "hoop.db")
    (n,) = db.execute("SELECT count(*) FROM sessions WHERE connection = ?", (connection,)).fetchone()
    db.close()
    assert n, f"no session of {connection} stored yet"
    return int(n)


def _statements(gateway, decision: str) -> list[str]:
    db = sqlite3.connect(gateway.dir / "data" / "hoop.db")
    rows = [r[0] for r in db.execute("SELECT text FROM statements WHERE decision = ?", (decision,))]
    db.close()
    return rows
