"""Is an SSH request a file transfer? SCP and SFTP are recognised by what runs, not by spelling.

A client (or a wrapper) can start the scp server side as `/usr/bin/scp -f PATH`,
`sudo scp -t DIR` or `sh -c "scp -f x"`, and the SFTP server as `/usr/lib/openssh/sftp-server`
or `internal-sftp`: each simple command of the exec'd line (nested ones too, as the shell
splitter finds them) is looked at by its program's basename and, for scp, its -t/-f flags.
A program whose name is known only after expansion (`$p -f x`, `` `echo scp` ``, `/usr/bin/sc?`,
`{scp,-f,x}`) could be either, so it counts as a transfer of an unknown protocol (fail closed).
Exec of `cat` or `tar` moves files as well; that is for command rules (README).
"""

from __future__ import annotations

import re

from hoop.core.sql.shell import classify_shell

_EXPANDED = re.compile(r"[$`{\\]")  # the shell would turn such a program name into another
_GLOB = re.compile(r"[*?\[]")
# A glob counts only in a name with a letter or a slash: only such a name could match a file
# such as scp or sftp-server.
_NAMELIKE = re.compile(r"[A-Za-z/]")
_TEST_PROGRAMS = frozenset({"[", "[["})
SFTP_SERVERS = frozenset({"sftp-server", "internal-sftp"})
_SCP_ARG_OPTIONS = frozenset("cDFiJloPSX")  # the rest of the cluster is the option's value


def file_transfer(command: str) -> dict[str, str] | None:
    """What the command line transfers (protocol, direction, path), or None when it runs no
    scp server side and no SFTP server."""
    for stmt in classify_shell(command).walk():
        words = list(stmt.argv) or stmt.text.split()  # argv: the words after quote removal
        program = stmt.object.rsplit("/", 1)[-1]
        if _expanded(stmt.object):
            return {"protocol": "unknown", "direction": "", "path": ""}
        if program in SFTP_SERVERS:
            return {"protocol": "sftp", "direction": "both", "path": ""}
        if program == "scp":
            direction = _scp_direction(words[1:])
            if direction:
                return {"protocol": "scp", "direction": direction, "path": words[-1] if len(words) > 1 else ""}
    return None


def _expanded(name: str) -> bool:
    if name in _TEST_PROGRAMS:
        return False
    return bool(_EXPANDED.search(name) or (_GLOB.search(name) and _NAMELIKE.search(name)))


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
