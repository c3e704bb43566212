"""Is an SSH request a file transfer? SCP and SFTP are recognised by what runs, not by spelling.

A client (or a wrapper) can start the scp server side as `/usr/bin/scp -f PATH`,
`sudo scp -t DIR` or `sh -c "scp -f x"`, and the SFTP server as `/usr/lib/openssh/sftp-server`
or `internal-sftp`: each simple command of the exec'd line (nested ones too, as the shell
splitter finds them) is looked at by its program's basename and, for scp, its -t/-f flags.
Exec of `cat` or `tar` moves files as well; that is for command rules (README).
"""

from __future__ import annotations

from hoop.core.sql.shell import classify_shell

SFTP_SERVERS = frozenset({"sftp-server", "internal-sftp"})
_SCP_ARG_OPTIONS = frozenset("cDFiJloPSX")  # the rest of the cluster is the option's value


def file_transfer(command: str) -> dict[str, str] | None:
    """What the command line transfers (protocol, direction, path), or None when it runs no
    scp server side and no SFTP server."""
    for stmt in classify_shell(command).walk():
        words = stmt.text.split()
        program = stmt.object.rsplit("/", 1)[-1]
        if program in SFTP_SERVERS:
            return {"protocol": "sftp", "direction": "both", "path": ""}
        if program == "scp":
            direction = _scp_direction(words[1:])
            if direction:
                return {"protocol": "scp", "direction": direction, "path": words[-1] if len(words) > 1 else ""}
    return None


def _scp_direction(args: list[str]) -> str:
    """`-t` (upload, "to") or `-f` (download, "from"), also inside a cluster such as `-pf`."""
    for arg in args:
        if arg == "--":
            break
        if arg.startswith("-") and not arg.startswith("--"):
            for flag in arg[1:]:
                if flag in _SCP_ARG_OPTIONS:
                    break
                if flag == "t":
                    return "upload"
                if flag == "f":
                    return "download"
    return ""
