"""The target leg of a channel without a terminal, through OpenSSH's own `ssh` client (opt-in).

Why: with asyncssh on both legs the gateway decrypts and re-encrypts every byte in Python.
Here the target leg's cryptography runs in C in an `ssh` child and the gateway relays
plaintext over pipes, so the gateway process spends less CPU per byte (a 400 MB `cat`: 0.75 s
instead of 1.0 s, the child using another 0.5 s). But since the gateway's writes are corked
(corking.py), one transfer is faster on the built-in leg on a 2-core machine (a whole `cat`
0.81x - 0.88x of direct against 0.67x - 0.77x: one process fewer in the chain). So this leg
is for gateways whose CPU, not one transfer, is the limit; a connection opts in with
`ssh_client = "openssh"`.

When: that setting, no terminal (exec and the sftp subsystem; interactive sessions keep asyncssh
for resizes and signals), the connection logs in with a private key and no agent forwarding, the
target's host key is already pinned (a `known_hosts` file, or the key the asyncssh leg
recorded on first contact), the environment passed on is plain text, and `ssh` is
installed. Anything else takes the asyncssh leg, which also covers what this leg cannot
report: a target killed by a signal ends here as exit status 255, as it does for `ssh` itself.

Secrets: the private key reaches the child as an in-memory file (memfd, mode 0600, never on
disk), named by /proc/<gateway pid>/fd/N because ssh closes inherited descriptors. asyncssh
re-exports it in OpenSSH format, so any key the gateway accepts works. ssh's own diagnostics
go to another in-memory file (`-E`), so the client's stderr carries only the target's, and a
failed login is reported and audited as on the asyncssh leg, without ssh's wording.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import subprocess
from typing import Any

from hoop.server.ssh.policy import EXIT_TARGET
from hoop.server.ssh.relay import Link
from hoop.server.ssh.target import TargetError, client_keys, stored_host_key
from hoop.server.ssh.tuning import TARGET_CIPHERS, TARGET_KEX

log = logging.getLogger("hoop.ssh")
OPENSSH = shutil.which("ssh") if hasattr(os, "memfd_create") else None  # memfd: Linux
ALIAS = "hoop-target"  # the name the pinned key is filed under in the child's known_hosts
_CHILD_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
_PLAIN = re.compile(r"[A-Za-z0-9_.:@/+,=-]*")


async def open_child_leg(
    services: Any,
    connection: Any,
    link: Link,
    *,
    user: str,
    command: str | None,
    subsystem: str | None,
    env: dict[str, str],
) -> bool:
    """Start the target leg of `link` in an ssh child. False when this leg does not apply
    (the caller uses asyncssh); TargetError when it applies but the key cannot be loaded."""
    if (
        OPENSSH is None
        or connection.ssh_client != "openssh"
        or connection.private_key is None
        or connection.allow_agent_forwarding
        or not all(_PLAIN.fullmatch(k + v) for k, v in env.items())
    ):
        return False
    stored = None
    if connection.known_hosts is None:
        stored = await asyncio.to_thread(stored_host_key, services.store, connection)
        if stored is None:
            return False  # first contact: the asyncssh leg records the key
    key = client_keys(connection)[0].export_private_key("openssh")
    files = _MemFiles()
    try:
        key_path = files.add("hoop-target-key", key, 0o600)
        argv = _argv(connection, key_path, files, stored, env)
        argv += ["-E", files.add("hoop-ssh-log", b"", 0o600, log=True), "--", connection.host]
        argv += ["sftp"] if subsystem else [command or ""]
        if subsystem:
            argv.insert(1, "-s")
        leg = ChildLeg(link, files, services, connection, user)
        loop = asyncio.get_running_loop()
        await loop.subprocess_exec(
            lambda: leg,
            *argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_CHILD_ENV,  # not the gateway's: its variables may hold other connections' secrets
        )
    except OSError as exc:
        files.close()
        log.warning("cannot start ssh for %s (%s); using the asyncssh leg", connection.name, exc)
        return False
    link.adopt(leg)
    return True


def _argv(connection: Any, key_path: str, files: _MemFiles, stored: str | None, env: dict[str, str]) -> list[str]:
    argv = [
        str(OPENSSH),
        "-F", "/dev/null", "-T", "-x", "-a",
        "-o", "BatchMode=yes",
        "-o", "IdentitiesOnly=yes",
        "-o", "IdentityAgent=none",
        "-i", key_path,
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "UpdateHostKeys=no",
        "-o", "ClearAllForwardings=yes",
        "-o", "PermitLocalCommand=no",
        "-o", "LogLevel=ERROR",
        "-o", f"ConnectTimeout={max(1, round(connection.connect_timeout))}",
        "-o", "Ciphers=" + ",".join(TARGET_CIPHERS),
        "-o", "KexAlgorithms=" + ",".join(TARGET_KEX),
        "-o", f"User={connection.username}",
        "-p", str(connection.port),
    ]  # fmt: skip
    if stored is not None:
        hosts = files.add("hoop-known-hosts", f"{ALIAS} {stored}\n".encode(), 0o600)
        argv += ["-o", f"UserKnownHostsFile={hosts}", "-o", f"HostKeyAlias={ALIAS}"]
    else:
        argv += ["-o", f"UserKnownHostsFile={connection.known_hosts}"]
    for k, v in env.items():
        argv += ["-o", f"SetEnv={k}={v}"]
    return argv


class _MemFiles:
    """In-memory files the child opens through /proc/<our pid>/fd/N; closed with the leg."""

    def __init__(self) -> None:
        self.fds: list[int] = []
        self.log: int | None = None  # where ssh writes its diagnostics

    def add(self, name: str, data: bytes, mode: int, log: bool = False) -> str:
        fd = os.memfd_create(name, os.MFD_CLOEXEC)
        self.fds.append(fd)
        os.fchmod(fd, mode)
        os.write(fd, data)
        if log:
            self.log = fd
        return f"/proc/{os.getpid()}/fd/{fd}"

    def diagnostics(self) -> str:
        return os.pread(self.log, 8192, 0).decode("utf-8", "replace") if self.log is not None else ""

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()


class ChildLeg(asyncio.SubprocessProtocol):
    """The ssh child's side of a Link; it also stands in for the target channel (write,
    write_eof, flow control, close), so the Link relays exactly as with asyncssh."""

    def __init__(self, link: Link, files: _MemFiles, services: Any, connection: Any, user: str) -> None:
        self.link = link
        self.files = files
        self.services = services
        self.connection = connection
        self.user = user
        self.transport: asyncio.SubprocessTransport | None = None

    # -- the child --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        self.link.from_target(data, fd == 2)  # type: ignore[arg-type]

    def pause_writing(self) -> None:  # the child's stdin is full
        self.link.front.pause_reading()

    def resume_writing(self) -> None:
        self.link.front.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        """The child exited and its pipes are drained."""
        assert self.transport is not None
        status = self.transport.get_returncode()
        diagnostics = self.files.diagnostics().strip()
        self.files.close()
        self.transport.close()
        if self.link.closed:  # the client is gone or the session was killed: nobody to tell
            return
        # The end of the output is passed on here, not when stdout closes, so that a failed
        # login can still be explained on stderr before it.
        if status == EXIT_TARGET and diagnostics:  # ssh could not reach the target or lost it
            self.link.lost = True
            failure = self._failure(diagnostics)
            if not self.link.front.is_closing():
                self.link.front.write_stderr(f"hoop: {failure}\n".encode())
        self.link.target_eof()
        self.link.target_closed(status, None)

    def _failure(self, diagnostics: str) -> TargetError:
        """ssh's own error, in the asyncssh leg's words, audited the same way."""
        conn, audit = self.connection, self.services.journal.audit
        where = f"{conn.name} ({conn.host}:{conn.port})"
        if "host key" in diagnostics.lower() or "HOST IDENTIFICATION" in diagnostics:
            pinned_by = "known_hosts" if conn.known_hosts is not None else "store"
            audit(self.user, "ssh.hostkey.mismatch", conn.name, host=conn.host, port=conn.port, pinned_by=pinned_by)
            return TargetError(
                f"the host key of {where} does not match the one Hoop trusts; refusing to connect "
                "(an operator must verify the host and update the pinned key)"
            )
        if "Permission denied" in diagnostics:
            audit(self.user, "upstream.failure", conn.name, reason="target refused login")
            return TargetError(f"{where} refused the gateway's credential")
        audit(self.user, "upstream.failure", conn.name, reason="ssh: " + diagnostics.splitlines()[-1][:200])
        return TargetError(f"cannot reach {where}: {diagnostics.splitlines()[-1][:200]}")

    # -- the target channel, as the Link sees it --------------------------------------------

    def _pipe(self, fd: int) -> Any:
        return self.transport.get_pipe_transport(fd) if self.transport is not None else None

    def write(self, data: bytes) -> None:
        pipe = self._pipe(0)
        if pipe is not None and not pipe.is_closing():
            pipe.write(data)

    def write_eof(self) -> None:
        pipe = self._pipe(0)
        if pipe is not None and not pipe.is_closing():
            pipe.close()  # after what is buffered: ssh then sends EOF to the target

    def pause_reading(self) -> None:
        for fd in (1, 2):
            if (pipe := self._pipe(fd)) is not None:
                pipe.pause_reading()

    def resume_reading(self) -> None:
        for fd in (1, 2):
            if (pipe := self._pipe(fd)) is not None:
                pipe.resume_reading()

    def close(self) -> None:
        if self.transport is not None and self.transport.get_returncode() is None:
            self.transport.terminate()

    def change_terminal_size(self, *args: Any) -> None:
        pass  # no terminal on this leg

    def signal(self, name: str) -> None:
        pass  # ssh cannot forward a signal; interactive sessions take the asyncssh leg

    def send_break(self, msec: int) -> None:
        pass
