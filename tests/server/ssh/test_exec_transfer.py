"""Non-interactive use through the gateway with the real OpenSSH client: exec, policy, scp,
sftp, forwarding refusals and the target's host key."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import threading
import time

import pytest
from support.servers import missing


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End an `ssh -N` client; it sometimes sits out SIGTERM while a channel closes."""
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def audit_actions(gateway, action_prefix: str, at_least: int = 1) -> list[dict]:
    """The audit events whose action starts with the prefix, read again (up to 10 s) until
    there are `at_least`: the journal writes in batches, every 0.2 s."""
    deadline = time.monotonic() + 10
    time.sleep(0.3)  # what was just done reaches the store first
    while True:
        db = sqlite3.connect(gateway.dir / "data" / "hoop.db")
        db.row_factory = sqlite3.Row
        rows = [dict(r) for r in db.execute("SELECT * FROM audit ORDER BY rowid")]
        db.close()
        found = [r for r in rows if str(r["action"]).startswith(action_prefix)]
        if len(found) >= at_least or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_gateway_log_has_no_library_warnings(gateway):
    """Operators read this log: warnings raised while the SSH libraries import (asyncssh names
    DSA types that newer cryptography releases deprecate) would bury what the gateway says."""
    ran = gateway.ssh("alice+web1", "true")
    assert ran.returncode == 0, ran.stderr
    log = (gateway.dir / "gateway.log").read_text(errors="replace")
    assert "Warning:" not in log, log[:3000]


def test_exec_passes_stdout_stderr_and_exit_status(gateway):
    r = gateway.ssh("alice+web1", "echo out; echo err >&2; exit 7")
    assert (r.returncode, r.stdout, r.stderr) == (7, b"out\n", b"err\n")


def test_exec_is_byte_exact_both_ways(gateway):
    blob = os.urandom(3 * 1024 * 1024)
    r = gateway.ssh("alice+web1", "cat", input=blob)
    assert r.returncode == 0
    assert r.stdout == blob


def test_exec_with_key_from_environment(gateway):
    r = gateway.ssh("alice+web3", "id -un")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"root\n"


def test_exec_with_target_password(gateway):
    if gateway.sshd.password_user is None:
        missing("needs root to create the password target user")
    r = gateway.ssh("alice+web2", "id -un")
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().strip() == gateway.sshd.password_user


def test_token_as_password_login(gateway, tmp_path):
    token = gateway.token("alice")
    askpass = tmp_path / "askpass.sh"
    askpass.write_text(f"#!/bin/sh\necho '{token}'\n")
    askpass.chmod(0o700)
    env = {**os.environ, "SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": ":0"}
    args = gateway.ssh_args("alice+web1", key=False) + ["echo via-token"]
    r = subprocess.run(args, capture_output=True, env=env, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"via-token\n"


def test_unknown_connection_is_refused(gateway):
    r = gateway.ssh("alice+nope", "true")
    assert r.returncode != 0
    assert b"no such connection" in r.stderr


def test_blocked_command_hidden_after_semicolon(gateway):
    marker = "/tmp/hoop-block-canary"
    subprocess.run(["touch", marker], check=True)
    r = gateway.ssh("alice+web1", f"ls; rm -rf {marker}")
    assert r.returncode == 126
    assert b"hoop: refused: rule no-rm blocks" in r.stderr
    assert os.path.exists(marker), "the blocked command must not run"
    assert r.stdout == b""


def test_held_exec_is_approved_from_another_process(gateway):
    bob = gateway.token("bob")
    result: dict = {}

    def run() -> None:
        result["r"] = gateway.ssh("alice+web1", "hostname", timeout=60)

    t = threading.Thread(target=run)
    t.start()
    approval = None
    for _ in range(100):
        out = gateway.run_hoop("approvals", "--json")
        rows = json.loads(out.stdout or "[]") if out.returncode == 0 else []
        pending = [r for r in rows if r["status"] == "pending" and r["statement"] == "hostname"]
        if pending:
            approval = pending[0]["id"]
            break
        time.sleep(0.2)
    assert approval is not None, "the exec was not held"
    decided = gateway.run_hoop("approve", str(approval), "--token", bob)
    assert decided.returncode == 0, decided.stderr
    t.join(60)
    r = result["r"]
    assert r.returncode == 0, r.stderr
    assert f"held for approval #{approval}".encode() in r.stderr
    assert r.stdout.strip() == subprocess.run(["hostname"], capture_output=True).stdout.strip()


def test_scp_up_and_down_and_recorded(gateway, tmp_path):
    src = tmp_path / "up.bin"
    src.write_bytes(os.urandom(700_000))
    base = gateway.ssh_args("alice+web1")
    opts = base[1:-1]  # drop "ssh" and the destination
    scp_opts = [o if o != "-p" else "-P" for o in opts]
    up = subprocess.run(
        ["scp", *scp_opts, str(src), "alice+web1@127.0.0.1:/tmp/hoop-scp-up.bin"], capture_output=True, timeout=60
    )
    assert up.returncode == 0, up.stderr
    with open("/tmp/hoop-scp-up.bin", "rb") as fh:
        assert fh.read() == src.read_bytes()
    down = tmp_path / "down.bin"
    r = subprocess.run(
        ["scp", *scp_opts, "alice+web1@127.0.0.1:/tmp/hoop-scp-up.bin", str(down)], capture_output=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert down.read_bytes() == src.read_bytes()
    events = audit_actions(gateway, "ssh.transfer")
    details = [json.loads(e["detail"]) if isinstance(e.get("detail"), str) else e for e in events]
    assert any(
        d.get("direction") == "upload" and d.get("path") == "/tmp/hoop-scp-up.bin" and d.get("size") == 700_000
        for d in details
    ), details
    assert any(d.get("direction") == "download" and d.get("size") == 700_000 for d in details), details


def test_sftp_listing(gateway, tmp_path):
    (tmp_path / "batch").write_text("ls -1 /etc/ssh\n")
    opts = [o for o in gateway.ssh_args("alice+web1")[1:-1]]
    opts = [o if o != "-p" else "-P" for o in opts]
    r = subprocess.run(
        ["sftp", *opts, "-b", str(tmp_path / "batch"), "alice+web1@127.0.0.1"], capture_output=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert b"sshd_config" in r.stdout


def test_file_transfer_refused_where_not_allowed(gateway, tmp_path):
    opts = [o if o != "-p" else "-P" for o in gateway.ssh_args("locked")[1:-1]]
    (tmp_path / "f").write_text("x")
    r = subprocess.run(
        ["scp", *opts, str(tmp_path / "f"), "alice+locked@127.0.0.1:/tmp/x"], capture_output=True, timeout=30
    )
    assert r.returncode != 0
    assert b"file transfer is not allowed" in r.stderr


def test_port_forward_refused_and_audited(gateway):
    port = 0
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = gateway.ssh_args(
        "alice+web1", "-o", "ExitOnForwardFailure=yes", "-N", "-L", f"127.0.0.1:{port}:127.0.0.1:{gateway.sshd.port}"
    )
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        with socket.create_connection(("127.0.0.1", port), 2) as c:
            c.settimeout(5)
            assert c.recv(100) == b"", "no SSH banner may come through a refused forward"
    finally:
        _stop(proc)
    assert audit_actions(gateway, "ssh.refused.port_forwarding")


def test_port_forward_allowed_goes_through_the_target(gateway):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Forward to the target's own sshd: the banner proves the tunnel reached it.
    args = gateway.ssh_args(
        "alice+tunnel", "-o", "ExitOnForwardFailure=yes", "-N", "-L", f"127.0.0.1:{port}:127.0.0.1:{gateway.sshd.port}"
    )
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        banner = b""
        for _ in range(50):
            try:
                with socket.create_connection(("127.0.0.1", port), 2) as c:
                    c.settimeout(5)
                    banner = c.recv(100)
                    break
            except OSError:
                time.sleep(0.1)
        assert banner.startswith(b"SSH-2.0-OpenSSH"), banner
    finally:
        _stop(proc)
    assert audit_actions(gateway, "ssh.port_forward")


@pytest.mark.parametrize("name", ["locked", "locked2"])  # the built-in and the OpenSSH target leg
def test_changed_target_host_key_is_refused(gateway, name):
    db = sqlite3.connect(gateway.dir / "data" / "hoop.db")
    before = len(audit_actions(gateway, "ssh.hostkey.mismatch", at_least=0))
    gateway.ssh(f"alice+{name}", "true")  # first contact records the key
    time.sleep(0.3)
    fake_key = gateway.dir / f"fake-{name}"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(fake_key)], check=True)
    fake = fake_key.with_suffix(".pub").read_text().strip()
    with db:
        n = db.execute("UPDATE host_keys SET key = ? WHERE connection = ?", (fake, name)).rowcount
    db.close()
    assert n == 1
    r = gateway.ssh(f"alice+{name}", "true")
    assert r.returncode == 255
    assert b"host key" in r.stderr and b"does not match" in r.stderr
    assert b"REMOTE HOST IDENTIFICATION" not in r.stderr  # Hoop's words, not the target leg's ssh
    assert len(audit_actions(gateway, "ssh.hostkey.mismatch", at_least=before + 1)) == before + 1
