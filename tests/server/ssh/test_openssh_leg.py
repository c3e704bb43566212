"""On a connection with `ssh_client = "openssh"` (web3 here), channels without a terminal reach
the target through an OpenSSH `ssh` child of the gateway, which holds the key in memory only;
terminals keep the asyncssh leg, and so does every channel of a connection without it."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from test_exec_transfer import audit_actions


def _ssh_children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            if Path(f"/proc/{child}/comm").read_text().strip() == "ssh":
                found.append(int(child))
    return found


def test_exec_runs_through_an_ssh_child_holding_no_key_on_disk_or_in_argv(gateway):
    assert gateway.ssh("alice+web3", "true").returncode == 0  # first contact pins the host key
    client = subprocess.Popen(
        gateway.ssh_args("alice+web3") + ["sleep 1.5; echo done; echo oops >&2; exit 4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 5
    children: list[int] = []
    while not children and time.monotonic() < deadline:
        children = _ssh_children(gateway.proc.pid)
        time.sleep(0.05)
    assert children, "no ssh child of the gateway while the command ran"
    argv = Path(f"/proc/{children[0]}/cmdline").read_bytes().split(b"\0")
    key_arg = argv[argv.index(b"-i") + 1].decode()
    assert key_arg.startswith(f"/proc/{gateway.proc.pid}/fd/")
    assert os.readlink(key_arg).startswith("/memfd:hoop-target-key")  # in memory, not a file
    secret = gateway.sshd.target_key.read_bytes()
    body = b"".join(secret.splitlines()[1:-1])
    assert body[:40] not in b"".join(argv) and b"PRIVATE KEY" not in b"".join(argv)
    environ = Path(f"/proc/{children[0]}/environ").read_bytes()
    assert b"HOOP_TEST_KEY" not in environ and b"HOOP_TEST_PASSWORD" not in environ  # the gateway's secrets stay
    out, err = client.communicate(timeout=30)
    assert (client.returncode, out, err) == (4, b"done\n", b"oops\n")
    legs = [json.loads(e["detail"]).get("leg") for e in audit_actions(gateway, "ssh.target")]
    assert "openssh" in legs


def test_connections_without_the_setting_use_the_builtin_leg(gateway):
    gateway.ssh("alice+web1", "true")
    before = len(audit_actions(gateway, "ssh.target"))
    client = subprocess.Popen(gateway.ssh_args("alice+web1") + ["sleep 1; echo done"], stdout=subprocess.PIPE)
    time.sleep(0.5)
    assert not _ssh_children(gateway.proc.pid)
    assert client.communicate(timeout=30)[0] == b"done\n"
    legs = [json.loads(e["detail"]).get("leg") for e in audit_actions(gateway, "ssh.target", before + 1)[before:]]
    assert legs == ["asyncssh"]


def test_terminal_sessions_keep_the_asyncssh_leg(gateway):
    gateway.ssh("alice+web3", "true")
    before = len(audit_actions(gateway, "ssh.target"))
    r = gateway.ssh("alice+web3", "tty", extra=("-tt",))
    assert r.returncode == 0 and b"/dev/pts/" in r.stdout
    legs = [json.loads(e["detail"]).get("leg") for e in audit_actions(gateway, "ssh.target", before + 1)[before:]]
    assert legs == ["asyncssh"]


def test_a_client_that_leaves_takes_its_ssh_child_with_it(gateway):
    gateway.ssh("alice+web3", "true")
    client = subprocess.Popen(gateway.ssh_args("alice+web3") + ["sleep 30"], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while not _ssh_children(gateway.proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _ssh_children(gateway.proc.pid)
    client.kill()
    client.wait()
    deadline = time.monotonic() + 5
    while _ssh_children(gateway.proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _ssh_children(gateway.proc.pid), "the target leg outlived its client"
