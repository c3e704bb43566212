"""Shell policy and file transfer through the real OpenSSH client and a throwaway sshd.

- A connection whose commands are under rules refuses interactive shells by default (what is
  typed into a shell is never judged), and a piped script through `ssh -tt` does not run.
- A connection without command rules, or one with `shell = "allow"`, still gets a shell;
  `hoop check` warns about the latter.
- With `allow_file_transfer = false`, scp's server side and the SFTP server are refused
  whatever their path or wrapper; with it true, scp still works.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from _pty import Term
from support.gateway import GatewayProcess, has_actions, write_config
from support.servers import free_port, missing
from support.sshd import Sshd, keygen, ssh_connection_toml

RULES = """
[[rules]]
name = "no-shutdown"
action = "block"
commands = ["shutdown", "reboot"]
connections = ["web1", "open", "xfer"]
"""


@pytest.fixture(scope="module")
def gw(sshd: Sshd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    root = tmp_path_factory.mktemp("shellpolicy")
    alice_pub = keygen(root / "alice_key")
    body = f'\n[[users]]\nname = "alice"\ngroups = ["dev"]\nssh_keys = ["{alice_pub}"]\n'
    body += ssh_connection_toml("web1", sshd)  # under rules, default shell policy, no file transfer
    body += ssh_connection_toml("web1o", sshd, 'ssh_client = "openssh"')  # the same through an ssh child
    body += ssh_connection_toml("free", sshd)  # no command rule covers it
    body += ssh_connection_toml("open", sshd, 'shell = "allow"')
    body += ssh_connection_toml("xfer", sshd, "allow_file_transfer = true")
    gateway = write_config(root, body + RULES.replace('"xfer"]', '"xfer", "web1o"]'), listen={"ssh": free_port()})
    gateway.start()
    yield gateway
    gateway.stop()


def _args(gw: GatewayProcess, *extra: str) -> list[str]:
    return [
        *("-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"),
        *("-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"),
        *("-i", str(gw.root / "alice_key"), *extra),
    ]


def _ssh(gw: GatewayProcess, login: str, *command: str, tty: bool = False, input: bytes | None = None):
    args = ["ssh", *_args(gw, "-p", str(gw.ports["ssh"])), *(["-tt"] if tty else []), f"{login}@127.0.0.1"]
    return subprocess.run(args + list(command), input=input, capture_output=True, timeout=30)


# -- shells ------------------------------------------------------------------------------------


@pytest.mark.parametrize("connection", ["web1", "web1o"])
def test_a_shell_is_refused_where_command_rules_apply_and_a_piped_script_does_not_run(
    gw: GatewayProcess, tmp_path: Path, connection: str
) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "file").write_text("keep")
    r = _ssh(gw, f"alice+{connection}", tty=True, input=f"rm -rf {victim}\nexit\n".encode())
    assert r.returncode != 0
    out = (r.stdout + r.stderr).decode()
    assert f"shells are not allowed on {connection}: its commands are under rules" in out, out
    assert f"ssh alice+{connection}@" in out and "'COMMAND'" in out, out
    assert victim.is_dir() and (victim / "file").exists(), "the piped script must not run"
    refusals = gw.audit("--action", "ssh.refused.shell", until=has_actions("ssh.refused.shell"))
    assert has_actions("ssh.refused.shell")(refusals), refusals


def test_connect_from_the_built_in_session_is_refused_too(gw: GatewayProcess) -> None:
    term = Term(["ssh", *_args(gw, "-p", str(gw.ports["ssh"])), "-t", "alice@127.0.0.1"])
    try:
        term.expect("hoop alice>")
        term.send("connect web1\r")
        term.expect("shells are not allowed on web1: its commands are under rules")
        term.expect("hoop alice>")  # back at the prompt, never on the target
    finally:
        term.close()


def test_a_connection_without_command_rules_still_gets_a_shell(gw: GatewayProcess) -> None:
    r = _ssh(gw, "alice+free", tty=True, input=b"echo shell-$((6*7))\nexit\n")
    assert b"shell-42" in r.stdout, r.stdout + r.stderr


def test_shell_allow_explicitly_gives_a_shell_and_check_warns(gw: GatewayProcess) -> None:
    r = _ssh(gw, "alice+open", tty=True, input=b"echo shell-$((6*7))\nexit\n")
    assert b"shell-42" in r.stdout, r.stdout + r.stderr
    check = gw.cli("check")
    assert 'open: shell = "allow"' in check.stderr and "no-shutdown" in check.stderr, check.stderr
    assert "web1:" not in check.stderr and "free:" not in check.stderr, check.stderr


def test_exec_still_runs_where_shells_are_refused(gw: GatewayProcess) -> None:
    r = _ssh(gw, "alice+web1", "echo ran-$((6*7))")
    assert (r.returncode, r.stdout) == (0, b"ran-42\n"), r.stderr


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ('shell = "review"', "needs the groups who approve or moderate shells"),
        ('shell = "moderated"', "needs the groups who approve or moderate shells"),
        ('shell = "maybe"', "expected one of allow, review, moderated, deny"),
        ('shell = "deny"\nshell_approvers = ["ops"]', 'only shell = "review" or "moderated" has shell approvers'),
    ],
)
def test_shell_settings_that_cannot_work_are_refused_in_config(
    sshd: Sshd, tmp_path: Path, setting: str, expected: str
) -> None:
    config = write_config(tmp_path, ssh_connection_toml("web1", sshd, setting))
    out = config.cli("check", check=False)
    assert out.returncode != 0
    assert expected in out.stderr and "shell" in out.stderr, out.stderr


def test_check_warns_where_a_held_shell_leaves_commands_unheld(sshd: Sshd, tmp_path: Path) -> None:
    body = ssh_connection_toml("held", sshd, 'shell = "review"', 'shell_approvers = ["ops"]')
    body += ssh_connection_toml("guarded", sshd, 'shell = "moderated"', 'shell_approvers = ["ops"]')
    config = write_config(tmp_path, body + RULES.replace('"xfer"]', '"guarded"]'))
    check = config.cli("check")
    assert 'held: shell = "review" but no command rule covers it' in check.stderr, check.stderr
    assert "guarded:" not in check.stderr, check.stderr


# -- file transfer -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        "/usr/bin/scp -f /etc/hostname",
        "scp -f /etc/hostname",
        'sh -c "scp -f /etc/hostname"',
        "sudo -n /usr/bin/scp -t /tmp",
        "/usr/lib/openssh/sftp-server",
        "true; internal-sftp",
        "p=scp; $p -f /etc/hostname",
        "/usr/bin/sc? -f /etc/hostname",
    ],
)
@pytest.mark.parametrize("connection", ["web1", "web1o"])
def test_scp_and_sftp_server_sides_are_refused_whatever_the_spelling(
    gw: GatewayProcess, command: str, connection: str
) -> None:
    r = _ssh(gw, f"alice+{connection}", command, input=b"\0")
    assert r.returncode != 0
    assert b"allow_file_transfer = false" in r.stderr, r.stderr
    assert b"hostname" not in r.stdout and b"C0" not in r.stdout, r.stdout


def test_real_scp_and_sftp_are_refused(gw: GatewayProcess, tmp_path: Path) -> None:
    port = str(gw.ports["ssh"])
    legacy = subprocess.run(
        ["scp", "-O", *_args(gw, "-P", port), "alice+web1@127.0.0.1:/etc/hostname", str(tmp_path / "a")],
        capture_output=True,
        timeout=30,
    )
    assert legacy.returncode != 0 and not (tmp_path / "a").exists()
    modern = subprocess.run(
        ["scp", *_args(gw, "-P", port), "alice+web1@127.0.0.1:/etc/hostname", str(tmp_path / "b")],
        capture_output=True,
        timeout=30,
    )
    assert modern.returncode != 0 and not (tmp_path / "b").exists()
    sftp = subprocess.run(
        ["sftp", *_args(gw, "-P", port), "-b", "-", "alice+web1@127.0.0.1"],
        input=b"get /etc/hostname " + str(tmp_path / "c").encode() + b"\n",
        capture_output=True,
        timeout=30,
    )
    assert sftp.returncode != 0 and not (tmp_path / "c").exists()
    events = gw.audit("--action", "ssh.refused.file_transfer", until=lambda ev: len(ev) >= 3)
    assert len(events) >= 3


@pytest.mark.parametrize("legacy", [True, False])
def test_scp_still_works_where_file_transfer_is_allowed(gw: GatewayProcess, tmp_path: Path, legacy: bool) -> None:
    dest = tmp_path / "copy"
    r = subprocess.run(
        ["scp", *(["-O"] if legacy else []), *_args(gw, "-P", str(gw.ports["ssh"]))]
        + ["alice+xfer@127.0.0.1:/etc/hostname", str(dest)],
        capture_output=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    assert dest.read_bytes() == Path("/etc/hostname").read_bytes()


def test_sftp_server_started_by_exec_is_refused_or_watched_like_the_subsystem(
    gw: GatewayProcess, tmp_path: Path
) -> None:
    """`sftp -s /path/to/sftp-server` asks for an exec, not the sftp subsystem."""
    server = "/usr/lib/openssh/sftp-server"
    if not Path(server).exists():
        missing("no sftp-server at the Debian path (openssh-server installs it)")

    def sftp(connection: str, batch: str) -> subprocess.CompletedProcess[bytes]:
        args = ["sftp", *_args(gw, "-P", str(gw.ports["ssh"])), "-s", server, "-b", "-"]
        return subprocess.run(
            args + [f"alice+{connection}@127.0.0.1"], input=batch.encode(), capture_output=True, timeout=30
        )

    refused = sftp("web1", f"get /etc/hostname {tmp_path / 'a'}\n")
    assert refused.returncode != 0 and not (tmp_path / "a").exists()
    assert b"allow_file_transfer = false" in refused.stderr, refused.stderr
    made = tmp_path / "made-by-sftp"
    allowed = sftp("xfer", f"mkdir {made}\n")
    assert allowed.returncode == 0, allowed.stderr
    assert made.is_dir()
    events = gw.audit("--action", "ssh.sftp.mkdir", until=has_actions("ssh.sftp.mkdir"))
    assert [e["detail"] for e in events if str(made) in json.dumps(e)], events
