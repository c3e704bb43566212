"""`ssh alice+web1@gateway [command]`: one channel relayed to the SSH target `web1`.

`run` reads as the steps of the session: open the session log, admit the request (exec
through the pipeline, SFTP only where file transfer is allowed, shells only with a terminal),
log in to the target, relay (recording terminals as asciicast), and pass the exit status back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import asyncssh

from hoop.server.services import LiveSession
from hoop.server.ssh.openssh_leg import open_child_leg
from hoop.server.ssh.policy import EXIT_NOT_RUN, EXIT_TARGET, admit, scp_transfer
from hoop.server.ssh.relay import Link, terminal_recorder
from hoop.server.ssh.sftp import SftpMonitor
from hoop.server.ssh.target import TargetError

log = logging.getLogger("hoop.ssh")


class DirectSession(asyncssh.SSHServerSession):  # type: ignore[type-arg]
    def __init__(self, server: Any, connection: Any) -> None:
        self.server = server
        self.services = server.services
        self.connection = connection
        self.chan: Any = None
        self.term: tuple[str, tuple[int, int, int, int], dict[int, int]] | None = None
        self.kind = "shell"
        self.command: str | None = None
        self.subsystem: str | None = None
        self.link: Link | None = None
        self.session: Any = None
        self.task: asyncio.Task[None] | None = None
        self.started = 0.0
        self.done = False  # exit sent or client gone (is_closing() is also true after our EOF)

    # -- asyncssh callbacks --------------------------------------------------------------------

    def connection_made(self, chan: Any) -> None:
        self.chan = chan

    def pty_requested(self, term_type: str, term_size: tuple[int, int, int, int], term_modes: dict[int, int]) -> bool:
        self.term = (term_type, term_size, term_modes)
        return True

    def shell_requested(self) -> bool:
        return True

    def exec_requested(self, command: str | bytes) -> bool:
        self.kind = "exec"
        self.command = command.decode("utf-8", "replace") if isinstance(command, bytes) else command
        return True

    def subsystem_requested(self, subsystem: str) -> bool:
        self.kind = "subsystem"
        self.subsystem = subsystem
        return True

    def session_started(self) -> None:
        self.link = Link(self.chan, self._target_closed)
        self.task = asyncio.ensure_future(self.run())

    def data_received(self, data: bytes, datatype: Any) -> None:
        if self.link is not None:
            self.link.from_client(data)

    def eof_received(self) -> bool:
        if self.link is not None:
            self.link.client_eof()
        return True

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        if self.link is not None:
            self.link.resize(width, height, pixwidth, pixheight)

    def signal_received(self, signal: str) -> None:
        if self.link is not None:
            self.link.signal(signal)

    def break_received(self, msec: int) -> bool:
        if self.link is not None:
            self.link.send_break(msec)
        return True

    def pause_writing(self) -> None:
        if self.link is not None:
            self.link.pause_reading()

    def resume_writing(self) -> None:
        if self.link is not None:
            self.link.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.done = True
        if self.task is not None and not self.task.done():
            self.task.cancel()  # a held command is abandoned, never run later
        if self.link is not None and not self.link.closed:
            self.link.close()
        self._finish("client-closed")

    # -- the session ---------------------------------------------------------------------------

    def say(self, text: str) -> None:
        self.chan.write_stderr((text + ("\r\n" if self.term else "\n")).encode("utf-8", "replace"))

    def end(self, status: int, message: str = "") -> None:
        if self.done:
            return
        if message:
            self.say(message)
        self.done = True
        self.chan.exit(status)

    async def run(self) -> None:
        server, conn, link = self.server, self.connection, self.link
        assert link is not None and server.identity is not None
        self.session = session = self.services.journal.open_session(server.user, conn.name, "ssh", server.client)
        session.audit(
            "session.start",
            client=server.client,
            kind=self.kind,
            pty=self.term is not None,
            command=self.command or "",
            subsystem=self.subsystem or "",
        )
        link.session = session
        self.services.register(LiveSession(session.id, "ssh", server.user, conn.name, self.kill, {"kind": self.kind}))
        self.started = time.time()
        if not await self._admit():
            return
        try:
            if self.term is None and await open_child_leg(
                self.services,
                conn,
                link,
                user=server.user,
                command=self.command,
                subsystem=self.subsystem,
                env=_env(self.chan),
            ):
                session.audit("ssh.target", leg="openssh")
                return
            target = await server.target(conn)
        except TargetError as exc:
            self.end(EXIT_TARGET, f"hoop: {exc}")
            return
        if self.term is not None:
            link.recorder = terminal_recorder(self.services, session, conn, self.term)
        session.audit("ssh.target", leg="asyncssh")
        try:
            await link.open(target, command=self.command, subsystem=self.subsystem, term=self.term, env=_env(self.chan))
        except (asyncssh.Error, OSError) as exc:
            self.end(EXIT_TARGET, f"hoop: the target refused the session: {getattr(exc, 'reason', '') or exc}")
            link.target_closed(None, None)

    async def _admit(self) -> bool:
        """Whether this request may go to the target; answers the client when it may not."""
        conn, session = self.connection, self.session
        if self.kind == "subsystem":
            if self.subsystem != "sftp":
                self.end(1, f"hoop: subsystem {self.subsystem!r} is not available")
                return False
            if not conn.allow_file_transfer:
                session.audit("ssh.refused.file_transfer", subsystem="sftp")
                self.end(1, f"hoop: file transfer is not allowed on {conn.name}")
                return False
            assert self.link is not None
            self.link.monitor = SftpMonitor(session.audit)
            return True
        if self.kind == "shell":
            if self.term is None:
                session.audit("ssh.refused.shell", reason="no terminal")
                self.end(
                    1,
                    "hoop: an interactive shell needs a terminal (ssh -t); "
                    "to run a command, pass it as an argument so the gateway can check it",
                )
                return False
            return True
        assert self.command is not None
        scp = scp_transfer(self.command)
        if scp is not None and not conn.allow_file_transfer:
            session.audit("ssh.refused.file_transfer", command=self.command)
            self.end(1, f"hoop: file transfer is not allowed on {conn.name}")
            return False
        status = await admit(self.services, self.server.identity, conn, session, self.command, self.say)
        if status is not None:
            self.end(status)
            return False
        if scp is not None:
            session.audit("ssh.transfer", **scp, protocol="scp")
        return True

    def _target_closed(self, exit_status: int | None, exit_signal: Any) -> None:
        session, chan = self.session, self.chan
        if self.link is not None and self.link.monitor is not None:
            self.link.monitor.finish()
        if session is not None and self.kind == "exec":
            ms = (time.time() - self.started) * 1000
            outcome = f"signal {exit_signal[0]}" if exit_signal else f"exit {exit_status}"
            session.statement(
                self.command or "",
                "allow",
                started=self.started,
                duration_ms=ms,
                error="" if exit_status == 0 else outcome,
            )
            session.frame("r", {"tag": outcome, "ms": round(ms, 3)})
            session.audit(
                "ssh.exec",
                command=self.command,
                exit_status=exit_status,
                signal=exit_signal[0] if exit_signal else None,
            )
        if chan is not None and not self.done:
            self.done = True
            if exit_signal is not None:
                chan.exit_with_signal(*exit_signal)
            elif exit_status is not None:
                chan.exit(exit_status)
            else:
                chan.close()
        self._finish("closed")

    def _finish(self, status: str) -> None:
        session = self.session
        if session is None or session.ended is not None:
            return
        self.services.unregister(session.id)
        session.audit("session.end", reason=status)
        session.close(status if status != "client-closed" else "closed")

    def kill(self, reason: str) -> None:
        if self.session is not None:
            self.session.audit("session.kill", reason=reason)
        if self.chan is not None:
            self.end(EXIT_NOT_RUN if self.kind == "exec" else 1, f"hoop: session ended by the gateway: {reason}")
        if self.link is not None and not self.link.closed:
            self.link.close()


def _env(chan: Any) -> dict[str, str]:
    """Pass the client's locale through (what sshd's default AcceptEnv LANG LC_* allows)."""
    env = chan.get_environment() or {}
    out = {}
    for k, v in env.items():
        k = k.decode() if isinstance(k, bytes) else k
        v = v.decode("utf-8", "replace") if isinstance(v, bytes) else v
        if k == "LANG" or k.startswith("LC_"):
            out[k] = v
    return out
