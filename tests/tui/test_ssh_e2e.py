"""End to end over SSH: the real OpenSSH client, in a real terminal (tmux), opens the TUI
through the gateway (`ssh -t bob+tui@gateway`) and approves a held psql statement by
keystrokes; the screen is read back with `tmux capture-pane`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from typing import Any

import pytest
from support.gateway import has_actions
from support.servers import free_port, missing
from test_e2e import REVIEW, start_psql

pytestmark = [pytest.mark.needs_postgres, pytest.mark.needs_sshd]


class Tmux:
    def __init__(self, name: str, argv: list[str], cols: int = 120, rows: int = 40) -> None:
        self.name = name
        subprocess.run(
            ["tmux", "new-session", "-d", "-s", name, "-x", str(cols), "-y", str(rows), " ".join(argv)], check=True
        )

    def screen(self) -> str:
        out = subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name], capture_output=True, text=True)
        return out.stdout

    def keys(self, *keys: str, literal: bool = False) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *(["-l"] if literal else []), *keys], check=True)

    def expect(self, text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never appeared; screen:\n{self.screen()}")

    def resize(self, cols: int, rows: int) -> None:
        subprocess.run(["tmux", "resize-window", "-t", self.name, "-x", str(cols), "-y", str(rows)], check=True)

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


def ssh_argv(port: int, user: str, target: str = "+tui") -> list[str]:
    return [
        "ssh",
        "-t",
        "-F",
        "/dev/null",
        "-p",
        str(port),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "PubkeyAuthentication=no",
        "-o",
        "PreferredAuthentications=password",
        f"{user}{target}@127.0.0.1",
    ]


def login(term: Tmux, token: str) -> None:
    term.expect("password:")
    term.keys(token, literal=True)
    term.keys("Enter")


@pytest.fixture
def tmux_ok() -> None:
    if not shutil.which("tmux") or not shutil.which("ssh"):
        missing("tmux and the OpenSSH client are needed (scripts/test.sh installs them)")


def test_ssh_tui_approves_held_statement(make_gateway: Any, tmux_ok: None) -> None:
    gw = make_gateway(REVIEW, listen={"postgres": free_port(), "ssh": free_port()})
    alice, bob = gw.token("alice"), gw.token("bob")
    assert (
        gw.psql(
            "alice", alice, "create table ssh_t(id int primary key, v int); insert into ssh_t values (1, 1)"
        ).returncode
        == 0
    )
    held = start_psql(gw, alice, "update ssh_t set v = 5 where id = 1")
    term = Tmux(f"hoop-tui-{os.getpid()}", ssh_argv(gw.ports["ssh"], "bob") + ["; sleep 30"])
    try:
        login(term, bob)
        term.expect("signed in as bob")
        screen = term.expect("pending")
        assert "ssh_t" in screen  # the evidence: the table the statement touches
        term.resize(90, 30)  # window size changes reach the TUI through the PTY
        term.expect("4 Recordings")
        term.keys("a")
        term.expect("Approve request #")  # asked first
        term.keys("y")
        out, err = held.communicate(timeout=20)
        assert held.returncode == 0 and "UPDATE 1" in out, err
        term.expect("approved")
        term.keys("q")
        deadline = time.monotonic() + 10
        while (
            time.monotonic() < deadline
            and "hoop-tui" in subprocess.run(["tmux", "ls"], capture_output=True, text=True).stdout
        ):
            time.sleep(0.2)
    finally:
        if held.poll() is None:
            held.kill()
        term.close()
    audit = json.dumps(gw.audit(until=has_actions("tui.open", "approval.approve")))
    assert '"tui.open"' in audit and '"approval.approve"' in audit


def test_ssh_tui_refuses_a_user_without_a_role(make_gateway: Any, tmux_ok: None) -> None:
    gw = make_gateway(REVIEW, listen={"postgres": free_port(), "ssh": free_port()})
    term = Tmux(f"hoop-tui-a-{os.getpid()}", ssh_argv(gw.ports["ssh"], "alice") + ["; sleep 30"])
    try:
        login(term, gw.token("alice"))
        term.expect("the console is for admins, auditors and approvers")
    finally:
        term.close()


def console_in_the_lobby(gw: Any, name: str) -> Tmux:
    """bob in the built-in session (the lobby), running `tui` there."""
    term = Tmux(f"hoop-tui-{name}-{os.getpid()}", ssh_argv(gw.ports["ssh"], "bob", target="") + ["; sleep 30"])
    try:
        login(term, gw.token("bob"))
        term.expect("Type 'help'")
        term.keys("tui", literal=True)
        term.keys("Enter")
        term.expect("signed in as bob")
    except BaseException:
        term.close()
        raise
    return term


def test_tui_command_in_the_builtin_session_returns_to_the_prompt(make_gateway: Any, tmux_ok: None) -> None:
    gw = make_gateway(REVIEW, listen={"postgres": free_port(), "ssh": free_port()})
    term = console_in_the_lobby(gw, "b")
    try:
        term.expect("4 Recordings")
        term.keys("1")
        term.expect("(lobby)")  # this very session, live in the Sessions area
        term.keys("q")
        deadline = time.monotonic() + 15  # the console closed: the session's prompt is back
        while not term.screen().rstrip().endswith("hoop bob>"):
            assert time.monotonic() < deadline, term.screen()
            time.sleep(0.1)
        assert "4 Recordings" not in term.screen()
        term.keys("whoami", literal=True)
        term.keys("Enter")
        term.expect("dba")
    finally:
        term.close()


def test_killing_the_lobby_while_its_console_runs_revokes_the_consoles_token(make_gateway: Any, tmux_ok: None) -> None:
    gw = make_gateway(REVIEW, listen={"postgres": free_port(), "ssh": free_port()})
    term = console_in_the_lobby(gw, "k")
    try:
        consoles = [t for t in json.loads(gw.cli("token", "list", "--json").stdout) if t["note"] == "ssh tui session"]
        assert [t["revoked"] for t in consoles] == [None]  # the console's own token, live while it runs
        lobby = [s for s in json.loads(gw.cli("sessions", "--json").stdout) if s["connection"] == ""][0]
        gw.cli("kill", str(lobby["id"]), "--reason", "end of shift", "--token", gw.token("carol"))
        term.expect("session ended by the gateway: end of shift")
        deadline = time.monotonic() + 10
        while True:
            tokens = {t["id"]: t for t in json.loads(gw.cli("token", "list", "--json").stdout)}
            if tokens[consoles[0]["id"]]["revoked"] is not None:
                break
            assert time.monotonic() < deadline, "the console's token is still valid after its session was killed"
            time.sleep(0.2)
    finally:
        term.close()
