"""Which exec'd command lines start scp's server side or an SFTP server (transfer.py)."""

from __future__ import annotations

import pytest

from hoop.server.ssh.transfer import file_transfer


@pytest.mark.parametrize(
    ("command", "protocol", "direction"),
    [
        ("scp -f /etc/hostname", "scp", "download"),
        ("/usr/bin/scp -f /etc/hostname", "scp", "download"),
        ("scp -v -p -t /tmp", "scp", "upload"),
        ("scp -pf x", "scp", "download"),
        ('sh -c "scp -f x"', "scp", "download"),
        ("sudo -u root /usr/bin/scp -t /tmp", "scp", "upload"),
        ("env A=1 scp -f x", "scp", "download"),
        ("true; cd /; scp -f x", "scp", "download"),
        ("/usr/lib/openssh/sftp-server -e", "sftp", "both"),
        ("internal-sftp", "sftp", "both"),
        ("exec /usr/libexec/sftp-server", "sftp", "both"),
        ("p=scp; $p -f x", "unknown", ""),
        ("`echo scp` -f x", "unknown", ""),
        ('"$(echo scp)" -f x', "unknown", ""),
        ("/usr/bin/sc? -f x", "unknown", ""),
        ("{scp,-f,x}", "unknown", ""),
    ],
)
def test_transfers_are_found_whatever_the_spelling(command: str, protocol: str, direction: str) -> None:
    found = file_transfer(command)
    assert found is not None and (found["protocol"], found["direction"]) == (protocol, direction)


@pytest.mark.parametrize(
    "command",
    [
        "ls -la",
        "echo scp -f x",
        "scp a b",
        "scp -oStrictHostKeyChecking=no a b",
        "scp -F cfg a b",
        "git log",
        "[ -f x ] && ls",
        "ls *.txt",
    ],
)
def test_other_commands_are_not_transfers(command: str) -> None:
    assert file_transfer(command) is None
