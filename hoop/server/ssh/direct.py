"""`ssh alice+web1@gateway [command]`: one channel relayed to the SSH target `web1`.

`run` reads as the steps of the session: open it (the session kit's `Session`), admit the
request (exec through the pipeline, SFTP only where file transfer is allowed, shells only
with a terminal), log in to the target, relay (recording terminals as asciicast), pass the
exit status back, record the exec's one statement and close the session with how it ended.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

import asyncssh

from hoop.core.config import Connection
from hoop.core.durations import format_span
from hoop.core.pipeline import Decision
from hoop.core.shell_rules import shell_rule
from hoop.server.limiting import SessionSlot
from hoop.server.moderation import Moderated
from hoop.server.session import BLOCK, CloseStatus, Session, review
from hoop.server.ssh.openssh_leg import open_child_leg
from hoop.server.ssh.policy import EXIT_NOT_RUN, EXIT_TARGET, Admission, admit
from hoop.server.ssh.pty_limits import clamped, refuse_pty
from hoop.server.ssh.relay import Link, terminal_recorder
from hoop.server.ssh.sftp import SftpMonitor
from hoop.server.ssh.shell_policy import admit_shell
from hoop.server.ssh.target import ClientLogin, TargetError
from hoop.server.ssh.transfer import file_transfer

log = logging.getLogger("hoop.ssh")


class DirectSession(asyncssh.SSHServerSession):  # type: ignore[type-arg]
    def __init__(self, server: ClientLogin, connection: Connection, slot: SessionSlot | None = None) -> None:
        self.server = server
        self.slot = slot  # one of the user's sessions on the connection, released when the channel ends
        self.services = server.services
        self.connection = connection
        self.chan: Any = None  # the client's asyncssh SSHServerChannel
        self.term: tuple[str, tuple[int, int, int, int], dict[int, int]] | None = None
        self.kind = "shell"
        self.command: str | None = None
        self.subsystem: str | None = None
        self.link: Link | None = None
        self.session: Session | None = None
        self.task: asyncio.Task[None] | None = None
        self.started = 0.0
        self.done = False  # exit sent or client gone (is_closing() is also true after our EOF)
        self.judged: Decision | None = None  # an exec's decision, once judged
        self.admission: Admission | None = None  # an exec's verdict, once judged
        self.recorded = False  # an exec's one statement record is written
        self.ended: asyncio.Future[CloseStatus] | None = None  # set when the target channel is gone
        self.moderated: Moderated | None = None  # a shell that runs only while a moderator watches

    # -- asyncssh callbacks --------------------------------------------------------------------

    def connection_made(self, chan: Any) -> None:
        self.chan = chan

    def pty_requested(
        self, term_type: str, term_size: tuple[int, int, int, int], term_modes: Mapping[int, int]
    ) -> bool:
        if refuse_pty(self.server, self.chan, term_size):
            return False
        self.term = (term_type, term_size, dict(term_modes))
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
        self.ended = asyncio.get_running_loop().create_future()
        self.task = asyncio.ensure_future(self.run())

    def data_received(self, data: bytes, datatype: Any) -> None:
        if self.link is not None:
            self.link.from_client(data)

    def eof_received(self) -> bool:
        if self.link is not None:
            self.link.client_eof()
        return True

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        width, height = clamped(self.services.config.limits, width, height)
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
        """The client is gone: the target channel is closed, and the session's task finishes
        the session once it is gone."""
        self.done = True
        if self.slot is not None:
            self.slot.release()
        self._stop()

    def _stop(self) -> None:
        """Before the target channel is open, cancel the session's task (a held command is
        abandoned, never run later); after, close the channel."""
        link = self.link
        if link is not None and link.target is not None:
            if not link.closed:
                link.close()
        elif self.task is not None and not self.task.done():
            self.task.cancel()

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
        server, conn = self.server, self.connection
        assert server.identity is not None
        self.session = session = Session(
            self.services, server.identity, conn.name, "ssh", server.client, dialect="shell"
        )
        session.start(
            self.kill,
            kind=self.kind,
            client=server.client,
            pty=self.term is not None,
            command=self.command or "",
            subsystem=self.subsystem or "",
        )
        status = CloseStatus.CLOSED
        try:
            status = await self._serve(session)
        except asyncio.CancelledError:  # the client left (or was killed) before the target channel was open
            self._record_exec(error="the client left before the command ran")
            if self.link is not None:
                self.link.close()  # a target channel that opens now is closed at once
        finally:
            if self.moderated is not None:
                self.moderated.close()
            session.close(status)

    async def _serve(self, session: Session) -> CloseStatus:
        """Admit, log in to the target and relay until the target channel is gone; how the
        session ended."""
        server, conn, link = self.server, self.connection, self.link
        assert link is not None and self.ended is not None
        link.session = session
        self.started = time.time()
        if not await self._admit(session) or not await self._first_moderator():
            return CloseStatus.CLOSED
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
                return await self.ended
            target = await server.target(conn)
        except TargetError as exc:
            return self._unreachable(f"hoop: {exc}")
        if self.term is not None:
            link.recorder = terminal_recorder(session, self.term, record_input=conn.record_input)
        session.audit("ssh.target", leg="asyncssh")
        try:
            await link.open(target, command=self.command, subsystem=self.subsystem, term=self.term, env=_env(self.chan))
        except (asyncssh.Error, OSError) as exc:
            status = self._unreachable(f"hoop: the target refused the session: {getattr(exc, 'reason', '') or exc}")
            link.target_closed(None, None)
            return status
        if self.moderated is not None:
            self.moderated.start()
        return await self.ended

    def _unreachable(self, message: str) -> CloseStatus:
        self._record_exec(error=message.removeprefix("hoop: "))
        self.end(EXIT_TARGET, message)
        return CloseStatus.UPSTREAM_LOST

    async def _admit(self, session: Session) -> bool:
        """Whether this request may go to the target; answers the client when it may not."""
        conn = self.connection
        if self.kind == "subsystem":
            if self.subsystem != "sftp":
                self.end(1, f"hoop: subsystem {self.subsystem!r} is not available")
                return False
            if not conn.allow_file_transfer:
                session.audit("ssh.refused.file_transfer", subsystem="sftp", protocol="sftp")
                self.end(1, _no_transfer(conn, "sftp"))
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
            return await self._admit_shell(session)
        assert self.command is not None
        transfer = file_transfer(self.command)
        if transfer is not None and not conn.allow_file_transfer:
            session.audit("ssh.refused.file_transfer", command=self.command, protocol=transfer["protocol"])
            self.end(1, _no_transfer(conn, transfer["protocol"]))
            return False
        self.judged = session.judge(self.command)
        self.admission = admission = await admit(session, self.command, self.judged, self.say)
        if not admission.run:
            if admission.decision == BLOCK:
                self.recorded = True
                session.refused(self.command, self.judged, self.started)
            else:
                self._record_exec(error=admission.error)
            self.end(EXIT_NOT_RUN)
            return False
        if self.term is not None and not await self._admit_shell(session, self.command):
            return False
        if transfer is not None:
            session.audit("ssh.transfer", **transfer)
            if transfer["protocol"] == "sftp":  # an SFTP server started by exec is watched like the subsystem
                assert self.link is not None
                self.link.monitor = SftpMonitor(session.audit)
        return True

    async def _admit_shell(self, session: Session, command: str = "") -> bool:
        """The connection's shell policy, for a shell or an exec with a terminal."""
        conn = self.connection
        login = f"{self.server.user}+{conn.name}"
        assert self.link is not None
        self.link.suspended = True  # typed ahead while held is not what an approver let through
        shell = await admit_shell(session, conn, self.services.pipeline.guard_rules, login, command, self.say)
        self.link.suspended = shell.moderated  # nothing reaches the target until a moderator watches
        if not shell.run:
            self.admission = Admission(False, shell.decision, shell.rule, shell.reason)
            self._record_exec(error=shell.reason)
            self.end(EXIT_NOT_RUN if command else 1)
            return False
        if shell.moderated:
            rule = shell_rule(conn)
            assert rule is not None
            self.moderated = self.services.moderators.open(session, rule, self.link)
        return True

    async def _first_moderator(self) -> bool:
        """A moderated shell starts once a moderator watches it (hoop/server/moderation.py)."""
        moderated = self.moderated
        if moderated is None:
            return True
        self.say(moderated.waiting_message())
        if await moderated.first_moderator():
            return True
        reason = f"no moderator watched it within {format_span(moderated.rule.timeout)}"
        self._record_exec(error=reason)
        self.end(EXIT_NOT_RUN if self.kind == "exec" else 1, f"hoop: not started: {reason}")
        return False

    def _record_exec(self, tag: str = "", error: str = "") -> None:
        """The exec's one statement record: once it ended, or once it is clear it will not run.
        A command killed or abandoned while it waited for approvers is `review:abandoned`."""
        session = self.session
        if self.kind != "exec" or self.recorded or session is None:
            return
        self.recorded = True
        admission, judged = self.admission, self.judged
        if admission is not None:
            decision, rule = admission.decision, admission.rule
        else:  # it was waiting for approvers (or for a standing grant)
            decision, rule = review("abandoned"), judged.rule if judged is not None else ""
        session.record(self.command or "", decision, rule, started=self.started, tag=tag, error=error)

    def _target_closed(self, exit_status: int | None, exit_signal: Any) -> None:
        chan, link = self.chan, self.link
        if link is not None and link.monitor is not None:
            link.monitor.finish()
        if exit_signal:
            outcome = f"signal {exit_signal[0]}"
        elif exit_status is not None:
            outcome = f"exit {exit_status}"
        else:
            outcome = ""
        lost = link is not None and link.lost
        error = "" if exit_status == 0 else outcome or ("the target went away" if lost else "ended without a status")
        self._record_exec(tag=outcome, error=error)
        if chan is not None and not self.done:
            self.done = True
            if exit_signal is not None:
                chan.exit_with_signal(*exit_signal)
            elif exit_status is not None:
                chan.exit(exit_status)
            else:
                chan.close()
        if self.ended is not None and not self.ended.done():
            self.ended.set_result(CloseStatus.UPSTREAM_LOST if lost else CloseStatus.CLOSED)

    def kill(self, reason: str, status: CloseStatus = CloseStatus.KILLED) -> None:
        """The session kit's `Killer`: tell the client and end the relay. A running exec is
        recorded now, so that its record comes before the session's end."""
        self._record_exec(error=f"session killed: {reason}")
        if self.chan is not None:
            self.end(EXIT_NOT_RUN if self.kind == "exec" else 1, f"hoop: session ended by the gateway: {reason}")
        self._stop()


def _no_transfer(conn: Connection, protocol: str) -> str:
    what = "a program named by expansion could be scp or sftp-server" if protocol == "unknown" else protocol
    return f"hoop: file transfer is not allowed on {conn.name} ({what}; allow_file_transfer = false)"


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
