"""The TUI attached to gateway B of two sharing one PostgreSQL store watches a live psql
session that gateway A carries (its statements appear) and kills it through B."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from support.cluster import cluster, json_rows, wait_for
from support.gateway import users_toml
from support.sshd import keygen, ssh_connection_toml, throwaway_sshd
from test_ssh_e2e import Tmux
from textual.widgets import RichLog
from tui_fixtures import settle

from hoop.control_client import ControlClient, ControlError
from hoop.core.secrets import Secret
from hoop.tui.app import HoopApp
from hoop.tui.data import GatewayLink, History
from hoop.tui.screens.sessions import WatchScreen

pytestmark = pytest.mark.needs_postgres

# bob (dba) approves for this rule, so he watches and may kill sessions on its connections.
REVIEW = '[[rules]]\nname = "hold-updates"\naction = "review"\nstatements = ["update"]\napprovers = ["dba"]\n'


def log_text(app: HoopApp) -> str:
    return "\n".join(str(line.text) for line in app.screen.query_one(RichLog).lines)


async def until(pilot: Any, condition: Any, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        await settle(pilot, 1)
        await pilot.pause(0.2)


async def test_the_tui_on_b_watches_and_kills_a_session_on_a(
    tmp_path: Path, pg_admin: Any, pg_target: dict[str, str]
) -> None:
    with cluster(tmp_path, pg_admin, pg_target, REVIEW) as two:
        a, b = two["a"], two["b"]
        alice, bob = a.token("alice"), a.token("bob")
        victim = subprocess.Popen(
            ["psql", f"host=127.0.0.1 port={a.ports['postgres']} user=alice dbname=pg sslmode=disable", "-X"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PGPASSWORD": alice},
        )
        assert victim.stdin is not None
        try:
            victim.stdin.write("SELECT 'before-watching' AS marker;\n")
            victim.stdin.flush()
            session = wait_for(
                lambda: [s for s in json_rows(b, "sessions") if s["gateway"] == "a" and s["status"] == "open"],
                what="A's session in the store",
            )[0]
            history = History.open(Secret(two.dsn), tmp_path / "recordings")
            link = GatewayLink(ControlClient(b.root / "data" / "control.sock", bob))
            app = HoopApp(history, link, poll=0.5, start="sessions")
            async with app.run_test(size=(120, 40)) as pilot:
                await settle(pilot)
                table = app.screen.query_one("#sessions")
                await until(pilot, lambda: str(session["id"]) in app.screen.rows, "A's session listed on B")
                table.move_cursor(row=table.get_row_index(str(session["id"])))
                await pilot.press("enter")
                await until(pilot, lambda: isinstance(app.screen, WatchScreen), "the watch screen")
                await until(pilot, lambda: "before-watching" in log_text(app), "the earlier statement")
                victim.stdin.write("SELECT 'while-watched' AS marker;\n")
                victim.stdin.flush()
                await until(pilot, lambda: "while-watched" in log_text(app), "a statement run on A")
                await pilot.press("k")
                await pilot.pause()
                await pilot.press(*"watched from b", "enter")
                await until(
                    pilot,
                    lambda: any(s["id"] == session["id"] and s["ended"] for s in json_rows(a, "sessions")),
                    "the session ended",
                )
            history.store.close()
            _, err = victim.communicate("SELECT 'after-the-kill';\n", timeout=10)
        finally:
            victim.kill()
        assert "terminated by an administrator: watched from b" in err
        ended = [s for s in json_rows(b, "sessions") if s["id"] == session["id"]]
        assert ended[0]["status"] == "killed"
        kills = a.audit("--action", "session.kill", until=bool)
        assert kills[0]["actor"] == "bob" and kills[0]["detail"]["via"] == "b"


@pytest.mark.needs_sshd
def test_a_moderated_shell_on_a_runs_while_its_moderator_watches_through_b(
    tmp_path: Path, pg_admin: Any, pg_target: dict[str, str]
) -> None:
    (tmp_path / "sshd").mkdir()
    with throwaway_sshd(tmp_path / "sshd") as sshd:
        alice_pub = keygen(tmp_path / "alice_key")
        body = f'\n[[users]]\nname = "alice"\ngroups = ["dev"]\nssh_keys = ["{alice_pub}"]\n'
        body += users_toml({"bob": ["ops"], "carol": ["dev"]})
        body += ssh_connection_toml("mod", sshd, 'shell = "moderated"', 'shell_approvers = ["ops"]')
        with cluster(tmp_path, pg_admin, pg_target, body=body, doors=("ssh",)) as two:
            a, b = two["a"], two["b"]
            a.issue_tokens("alice", "bob", "carol")
            ssh = [
                *("ssh", "-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"),
                *("-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"),
                *("-i", str(tmp_path / "alice_key"), "-p", str(a.ports["ssh"]), "-tt", "alice+mod@127.0.0.1"),
            ]
            term = Tmux(f"hoop-cluster-mod-{os.getpid()}", [*ssh, "; echo ssh-exit-$?; sleep 30"])
            watching = threading.Event()
            try:
                match = re.search(r"watches session (\d+)", term.expect("in hoop tui"))
                assert match is not None
                session_id = int(match.group(1))
                # B knows the session once A's journal has stored it (batched every 0.2 s)
                wait_for(lambda: any(r["id"] == session_id for r in json_rows(b, "sessions")), what="A's session")
                sock = b.root / "data" / "control.sock"
                for user, why in (("alice", "your own session"), ("carol", "outside what you may watch")):
                    with pytest.raises(ControlError, match=why):
                        ControlClient(sock, a.tokens[user]).call("moderate", id=session_id)
                bob = ControlClient(sock, a.tokens["bob"])
                watching.set()

                def renew() -> None:  # as the TUI's watch screen does, every second
                    while watching.is_set():
                        bob.call("moderate", id=session_id)
                        time.sleep(1)

                threading.Thread(target=renew, daemon=True).start()
                term.expect("moderated by bob")
                assert bob.call("moderate", id=session_id)["moderators"] == ["bob"]
                term.keys("echo mod-$((6*7))", "Enter")
                term.expect("mod-42")
                watching.clear()
                bob.call("moderate", id=session_id, leave=True)
                term.expect("paused: no moderator is watching")
                bob.call("kill", id=session_id, reason="enough")
                term.expect("ended by the gateway: enough")
            finally:
                watching.clear()
                term.close()
            events = a.audit("--limit", "1000", until=lambda ev: {"session.kill"} <= {e["action"] for e in ev})
            actions = {e["action"] for e in events}
            assert {"session.moderate.join", "session.moderate.leave", "session.moderate.pause"} <= actions
