"""Shells held for approval (`shell = "review"`) and shells that run only while a moderator
watches them in the TUI (`shell = "moderated"`), with the real OpenSSH client in a real
terminal (tmux) through the gateway to a throwaway sshd, and the TUI driven by Pilot as the
moderator."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.gateway import GatewayProcess, has_actions, users_toml, write_config
from support.servers import free_port
from support.sshd import Sshd, keygen, ssh_connection_toml, throwaway_sshd
from test_pilot import status_text
from test_ssh_e2e import Tmux
from textual.widgets import DataTable
from tui_fixtures import gateway_app, settle

from hoop.control_client import ControlClient, ControlError
from hoop.tui.screens.sessions import WatchScreen

pytestmark = [pytest.mark.needs_sshd]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    with throwaway_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture(scope="module")
def gw(sshd: Sshd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    root = tmp_path_factory.mktemp("shellterms")
    alice_pub = keygen(root / "alice_key")
    body = f'\n[[users]]\nname = "alice"\ngroups = ["dev"]\nssh_keys = ["{alice_pub}"]\n'
    body += users_toml({"bob": ["ops"], "carol": ["dev"]})
    body += ssh_connection_toml("held", sshd, 'shell = "review"', 'shell_approvers = ["ops"]')
    body += ssh_connection_toml("mod", sshd, 'shell = "moderated"', 'shell_approvers = ["ops"]')
    body += ssh_connection_toml(
        "lonely", sshd, 'shell = "moderated"', 'shell_approvers = ["ops"]', 'shell_timeout = "2s"'
    )
    body += ssh_connection_toml("plain", sshd, 'shell = "deny"')
    gateway = write_config(root, body, listen={"ssh": free_port()})
    gateway.start()
    gateway.issue_tokens("bob", "alice", "carol")
    yield gateway
    gateway.stop()


def alice_ssh(gw: GatewayProcess, login: str, *command: str, tty: str = "-tt") -> list[str]:
    return [
        *("ssh", "-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"),
        *("-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"),
        *("-i", str(gw.root / "alice_key"), "-p", str(gw.ports["ssh"]), tty, f"{login}@127.0.0.1", *command),
    ]


def terminal(gw: GatewayProcess, name: str, login: str, *command: str) -> Tmux:
    # `; sleep` keeps the pane (and what the gateway last said) readable after ssh ends.
    return Tmux(f"hoop-{name}-{os.getpid()}", [*alice_ssh(gw, login, *command), "; echo ssh-exit-$?; sleep 30"])


def approval_id(term: Tmux) -> str:
    match = re.search(r"held for approval #(\d+)", term.expect("held for approval #"))
    assert match is not None
    return match.group(1)


# -- review ------------------------------------------------------------------------------------


def test_a_held_shell_starts_only_once_approved(gw: GatewayProcess, tmp_path: Path) -> None:
    term = terminal(gw, "held", "alice+held")
    try:
        held = approval_id(term)
        assert "shell:held" in term.screen()  # the rule that holds it names the connection
        term.keys(f"touch {tmp_path}/typed-while-held", "Enter")  # not a shell yet: nothing runs
        own = gw.cli("approve", held, check=False, env={"HOOP_TOKEN": gw.tokens["alice"]})
        assert own.returncode != 0 and "your own request" in own.stderr, own.stderr
        carol = gw.cli("approve", held, check=False, env={"HOOP_TOKEN": gw.tokens["carol"]})
        assert carol.returncode != 0 and "only members of ops" in carol.stderr, carol.stderr
        gw.cli("approve", held, env={"HOOP_TOKEN": gw.tokens["bob"]})
        term.expect("approved")
        term.keys("echo shell-$((6*7))", "Enter")
        term.expect("shell-42")
        assert not (tmp_path / "typed-while-held").exists()
        term.keys("exit", "Enter")
        term.expect("ssh-exit-0")
    finally:
        term.close()


def test_a_denied_shell_never_starts(gw: GatewayProcess) -> None:
    term = terminal(gw, "denied", "alice+held")
    try:
        held = approval_id(term)
        gw.cli("deny", held, "--reason", "not during the freeze", env={"HOOP_TOKEN": gw.tokens["bob"]})
        screen = term.expect("ssh-exit-")
        assert "not started" in screen and "not during the freeze" in screen, screen
        assert "ssh-exit-1" in screen, screen
    finally:
        term.close()


def test_a_command_with_a_terminal_is_held_like_a_shell(gw: GatewayProcess) -> None:
    term = terminal(gw, "heldexec", "alice+held", "echo exec-$((6*7))")
    try:
        held = approval_id(term)
        gw.cli("approve", held, env={"HOOP_TOKEN": gw.tokens["bob"]})
        term.expect("exec-42")
    finally:
        term.close()
    # without a terminal, the same command is an exec the command rules judge: it runs at once
    r = subprocess.run(alice_ssh(gw, "alice+held", "echo exec-$((6*7))", tty="-T"), capture_output=True, timeout=30)
    assert (r.returncode, r.stdout) == (0, b"exec-42\n"), r.stderr


def test_deny_refuses_a_command_with_a_terminal_and_runs_it_without(gw: GatewayProcess) -> None:
    r = subprocess.run(alice_ssh(gw, "alice+plain", "vi"), capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 126, (r.stdout, r.stderr)
    assert b"a command with a terminal is a shell in all but name" in r.stderr + r.stdout, r.stderr
    r = subprocess.run(alice_ssh(gw, "alice+plain", "echo ok", tty="-T"), capture_output=True, timeout=30)
    assert (r.returncode, r.stdout) == (0, b"ok\n"), r.stderr


def test_connect_in_the_built_in_session_follows_the_same_policy(gw: GatewayProcess) -> None:
    term = terminal(gw, "lobby", "alice")
    try:
        term.expect("hoop alice>")
        term.keys("connect lonely", "Enter")  # moderated, and nobody comes
        term.expect("no moderator watched it within 2s")
        term.expect("hoop alice>")
        term.keys("connect held", "Enter")
        held = approval_id(term)
        gw.cli("approve", held, env={"HOOP_TOKEN": gw.tokens["bob"]})
        term.expect("approved")
        term.expect("~#")  # the target's prompt: the lobby relays keys once the terminal is open
        term.keys("echo lobby-$((6*7))", "Enter")
        term.expect("lobby-42")
    finally:
        term.close()


# -- moderated ---------------------------------------------------------------------------------


async def expect(term: Tmux, text: str, timeout: float = 20.0) -> str:
    """Wait for text on the user's terminal without stopping the TUI's event loop."""
    return await asyncio.to_thread(term.expect, text, timeout)


async def shows(pilot: Any, selector: str, text: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in (status := status_text(pilot.app, selector)):
        assert time.monotonic() < deadline, status
        await pilot.pause(0.1)


async def watch(pilot: Any, session_id: int) -> None:
    """From the Sessions area, open the session's watch screen with the keyboard."""
    app = pilot.app
    deadline = time.monotonic() + 15
    while True:
        await settle(pilot)
        table = app.screen.query_one("#sessions", DataTable)
        keys = [str(k.value) for k in table.rows]
        if str(session_id) in keys:
            break
        assert time.monotonic() < deadline, f"session {session_id} never listed: {keys}"
        await pilot.pause(0.2)
    table.move_cursor(row=keys.index(str(session_id)))
    table.focus()
    await pilot.press("enter")
    await settle(pilot)
    assert isinstance(app.screen, WatchScreen)


async def test_a_moderated_shell_runs_only_while_a_moderator_watches(gw: GatewayProcess, tmp_path: Path) -> None:
    term = terminal(gw, "mod", "alice+mod")
    try:
        screen = await expect(term, "this shell is moderated")
        match = re.search(r"watches session (\d+)", term.expect("in hoop tui"))
        assert match is not None, screen
        session_id = int(match.group(1))
        assert "one of ops" in term.screen()
        term.keys(f"touch {tmp_path}/before-anyone-watched", "Enter")  # discarded: not yet started

        # Only a moderator counts: neither the user herself nor someone outside ops.
        sock = gw.root / "data" / "control.sock"
        for user, why in (("alice", "your own session"), ("carol", "outside what you may watch")):
            with pytest.raises(ControlError, match=why):
                ControlClient(sock, gw.tokens[user]).call("moderate", id=session_id)

        app = gateway_app(gw, gw.tokens["bob"], poll=0.2, start="sessions")
        async with app.run_test(size=(120, 40)) as pilot:
            await watch(pilot, session_id)
            await expect(term, "moderated by bob")
            term.keys("echo mod-$((6*7))", "Enter")
            await expect(term, "mod-42")
            await shows(pilot, "#watch-status", "moderating (running)")  # renewed every second

            await pilot.press("escape")  # the last moderator leaves: the session pauses
            await settle(pilot)
            await expect(term, "paused: no moderator is watching")
            term.keys(f"touch {tmp_path}/while-paused", "Enter")
            await asyncio.sleep(1.5)

            await watch(pilot, session_id)  # back: it resumes
            await expect(term, "resumed: bob is moderating")
            term.keys("echo back-$((6*7))", "Enter")
            await expect(term, "back-42")

            await pilot.press("k")  # and the moderator ends it
            await settle(pilot)
            await pilot.press(*"enough", "enter")
            await settle(pilot)
            await expect(term, "ended by the gateway: enough")
        assert not (tmp_path / "before-anyone-watched").exists()
        assert not (tmp_path / "while-paused").exists()
    finally:
        term.close()
    steps = ("join", "leave", "pause", "resume")
    done = has_actions(*(f"session.moderate.{step}" for step in steps), "session.kill")
    events = gw.audit("--limit", "1000", until=done)
    assert done(events), events
    assert any(e["action"] == "session.kill" and e["actor"] == "bob" for e in events), events


def test_a_moderated_shell_nobody_watches_does_not_start(gw: GatewayProcess) -> None:
    term = terminal(gw, "lonely", "alice+lonely")
    try:
        screen = term.expect("ssh-exit-", timeout=20)
        assert "no moderator watched it within 2s" in screen and "ssh-exit-1" in screen, screen
    finally:
        term.close()
