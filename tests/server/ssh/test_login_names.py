"""The SSH door's login name is `USER` (the lobby) or `USER+CONNECTION`. A name that names no
one (empty, white space, a control or invisible character, too long, more than one `+`) is
refused before any credential is checked, with the reason as the SSH disconnect message, and
audited as a login failure with that reason. Driven by the real OpenSSH client with a token as
the password (an empty user name used to mean "whoever owns this token")."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support.waiting import eventually
from test_sessions import _query


def _last_ids(gateway: Any) -> tuple[int, int]:
    """The newest session and audit event, to look only at what comes after."""
    sessions = _query(gateway, "SELECT coalesce(max(id), 0) AS m FROM sessions")[0]["m"]
    events = _query(gateway, "SELECT coalesce(max(id), 0) AS m FROM audit")[0]["m"]
    return int(sessions), int(events)


def _failures_after(gateway: Any, event: int, reason: str) -> list[dict[str, Any]]:
    def audited() -> list[dict[str, Any]]:
        rows = _query(gateway, "SELECT * FROM audit WHERE id > ? AND action = 'login.failure'", (event,))
        found = [r for r in rows if json.loads(r["detail"]).get("reason") == reason]
        assert found, f"no login.failure with reason {reason!r} among {rows}"
        return found

    return eventually(audited)


def _ssh_with_token(gateway: Any, tmp_path: Path, login: str, *command: str) -> subprocess.CompletedProcess[bytes]:
    """`ssh login@gateway command` with alice's token as the password."""
    askpass = tmp_path / f"askpass-{secrets.token_hex(4)}.sh"
    askpass.write_text(f"#!/bin/sh\necho '{gateway.token('alice')}'\n")
    askpass.chmod(0o700)
    env = {**os.environ, "SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": ":0"}
    args = gateway.ssh_args("", key=False)[:-1] + ["-l", login, "127.0.0.1", *command]
    return subprocess.run(args, capture_output=True, env=env, timeout=30, stdin=subprocess.DEVNULL)


REFUSED = [
    ("+web1", "no user name given"),  # the anonymous exec of the report
    ("", "no user name given"),  # the lobby form
    (" alice+web1", "the user name contains white space"),
    ("alice +web1", "the user name contains white space"),
    ("alice+", "no connection name given"),
    ("alice+web1+web3", "the login name has more than one '+'"),
    ("a" * 256 + "+web1", "the user name is longer than 255 characters"),
]


@pytest.mark.parametrize(("login", "reason"), REFUSED, ids=[r for _, r in REFUSED])
def test_a_login_name_that_names_no_one_is_refused_with_the_reason(gateway, tmp_path, login: str, reason: str):
    marker = Path(f"/tmp/hoop-anonymous-{secrets.token_hex(4)}")
    sessions, events = _last_ids(gateway)
    r = _ssh_with_token(gateway, tmp_path, login, f"touch {marker}")
    assert r.returncode == 255, r
    assert reason.encode() in r.stderr and b"log in as USER or USER+CONNECTION" in r.stderr, r.stderr
    assert not marker.exists(), "the command ran"
    [failure] = _failures_after(gateway, events, reason)
    assert failure["actor"] == "-" and failure["target"] == "ssh"
    assert json.loads(failure["detail"])["user"] == login[:256]  # (a longer one is cut there)
    assert not _query(gateway, "SELECT * FROM sessions WHERE id > ?", (sessions,))


def test_the_same_token_logs_in_under_the_users_own_name(gateway, tmp_path):
    """The control: the refusals above are about the name, not the token or the client."""
    r = _ssh_with_token(gateway, tmp_path, "alice+web1", "echo via-token")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"via-token\n"


def test_a_name_refused_by_the_ssh_layer_is_audited_too(gateway, tmp_path):
    """asyncssh refuses some names itself before the gateway sees them (here one of 1024 bytes
    or more; also names that are not UTF-8 or hold characters SASLprep prohibits, which
    OpenSSH's client will not send); the login failure is audited all the same."""
    _, events = _last_ids(gateway)
    r = _ssh_with_token(gateway, tmp_path, "a" * 1100 + "+web1", "true")
    assert r.returncode == 255, r
    assert b"Username too long" in r.stderr, r.stderr
    [failure] = _failures_after(gateway, events, "Username too long")
    assert failure["actor"] == "-" and failure["target"] == "ssh"
