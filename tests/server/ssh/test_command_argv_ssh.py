"""A rule `commands = ["rm -rf *"]` through the real OpenSSH client: every spelling of the flags
and every shell feature the gateway does not expand is refused (by the rule, or as `dynamic`),
the target directory is still there afterwards, and ordinary commands still run."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.gateway import GatewayProcess, write_config
from support.servers import free_port
from support.sshd import Sshd, keygen, ssh_connection_toml

RULE = '\n[[rules]]\nname = "no-rm-rf"\naction = "block"\ncommands = ["rm -rf *"]\n'


@pytest.fixture(scope="module")
def gw(sshd: Sshd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    root = tmp_path_factory.mktemp("argv")
    alice_pub = keygen(root / "alice_key")
    body = f'\n[[users]]\nname = "alice"\ngroups = ["dev"]\nssh_keys = ["{alice_pub}"]\n'
    gateway = write_config(
        root, body + ssh_connection_toml("web", sshd, "allow_file_transfer = true") + RULE, listen={"ssh": free_port()}
    )
    gateway.start()
    yield gateway
    gateway.stop()


def ssh(gw: GatewayProcess, command: str) -> subprocess.CompletedProcess[bytes]:
    args = ["ssh", "-F", "/dev/null", "-p", str(gw.ports["ssh"]), "-o", "StrictHostKeyChecking=no"]
    args += ["-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes"]
    args += ["-o", "IdentitiesOnly=yes", "-i", str(gw.root / "alice_key"), "alice+web@127.0.0.1", command]
    return subprocess.run(args, capture_output=True, timeout=30)


EVASIONS = {
    "rm -fr DIR": "rule",
    "rm -r -f DIR": "rule",
    "rm --recursive --force DIR": "rule",
    "/bin/rm -rf DIR": "rule",
    "`echo rm` -rf DIR": "dynamic",
    "{rm,-rf,DIR}": "dynamic",
    "/bin/r? -rf DIR": "dynamic",
    "r\\\nm -rf DIR": "dynamic",
    ". SCRIPT": "dynamic",
    "source SCRIPT": "dynamic",
    "find DIR -exec rm -rf {} +": "dynamic",
    "rm $(echo -rf) DIR": "either",
}


@pytest.mark.parametrize("evasion", list(EVASIONS))
def test_each_evasion_is_refused_and_the_directory_survives(gw: GatewayProcess, tmp_path: Path, evasion: str) -> None:
    target = tmp_path / "keep"
    (target / "sub").mkdir(parents=True)
    (tmp_path / "script.sh").write_text(f"rm -rf {target}\n")
    command = evasion.replace("DIR", str(target)).replace("SCRIPT", str(tmp_path / "script.sh"))
    # The command really deletes a directory when a shell runs it unguarded.
    probe = tmp_path / "probe"
    (probe / "sub").mkdir(parents=True)
    (tmp_path / "probe.sh").write_text(f"rm -rf {probe}\n")
    unguarded = evasion.replace("DIR", str(probe)).replace("SCRIPT", str(tmp_path / "probe.sh"))
    subprocess.run(["bash", "-c", unguarded], capture_output=True, timeout=10)
    assert not probe.exists(), f"{evasion!r} must be a real evasion"

    r = ssh(gw, command)
    assert r.returncode == 126, (evasion, r.stderr)
    assert b"hoop: refused: rule no-rm-rf blocks" in r.stderr, r.stderr
    if EVASIONS[evasion] == "dynamic":
        assert b"cannot be known before it runs (" in r.stderr, r.stderr
    assert (target / "sub").is_dir(), f"{evasion!r} reached the target"


@pytest.mark.parametrize("command", ["ls -la /", "echo hi", "uname -a", "rm -f /tmp/hoop-argv-no-such-file"])
def test_ordinary_commands_still_run(gw: GatewayProcess, command: str) -> None:
    r = ssh(gw, command)
    assert r.returncode == 0, (command, r.stderr)
    assert b"refused" not in r.stderr
