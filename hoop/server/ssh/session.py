"""The built-in session: `ssh -p 2222 alice@gateway`.

A prompt with `help`, `whoami`, `list`, `connect NAME`, `sessions` and `exit`. `connect` to an
SSH connection relays a recorded terminal on the target and comes back to the prompt when it
ends; `connect` to a database opens the SQL shell (see sqlshell.py). Without a terminal
(`ssh alice@gateway list`) one command runs and the channel exits with its status.

A database connection named at login (`ssh alice+db@gateway`) opens its SQL shell directly;
with a command (`ssh alice+db@gateway 'select 1'`) the command is SQL, run once through the
gateway's door and printed like `psql -A` / `mariadb -B`. Exit statuses:
  0    everything ran
  1    a statement failed or was refused (the message is on stderr as `ERROR: ...`), the
       connection is not available, or the shell could not log in to the door; without a
       terminal, also when any statement read from stdin failed (like a script)
  2    usage: an empty statement, `connect` without a name
  127  an unknown lobby command; 130 interrupted (Ctrl-C)
The session is in one of five modes: prompt, busy (a command runs; Ctrl-C cancels it),
relay (bytes go to the target), sql and tui.

The lobby is itself a recorded session (no connection, kind `lobby`): listed live, watchable
and killable like any other, with a terminal recording of what it shows (screen.py). A
terminal it opens on a target is a session of its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

import asyncssh

from hoop.core.config import Connection
from hoop.core.durations import format_span
from hoop.core.errors import AccessDenied
from hoop.core.shell_rules import shell_rule
from hoop.server.limiting import SessionSlot, TooManySessions
from hoop.server.moderation import Moderated
from hoop.server.session import CloseStatus, Session
from hoop.server.ssh.editor import LineEditor
from hoop.server.ssh.lobby_commands import HELP, connections, recent_sessions, whoami
from hoop.server.ssh.pty_limits import clamped, refuse_pty
from hoop.server.ssh.relay import Link, terminal_recorder
from hoop.server.ssh.screen import RecordedScreen
from hoop.server.ssh.shell_policy import admit_shell, shell_policy, shell_refusal
from hoop.server.ssh.sqlshell import SqlShellError, open_shell
from hoop.server.ssh.target import ClientLogin, TargetError

if TYPE_CHECKING:
    from hoop.server.ssh.tui_bridge import TuiBridgeSession

log = logging.getLogger("hoop.ssh")
Term = tuple[str, tuple[int, int, int, int], dict[int, int]]
DEFAULT_TERM: Term = ("xterm", (80, 24, 0, 0), {})


class BuiltinSession(asyncssh.SSHServerSession):  # type: ignore[type-arg]
    def __init__(self, server: ClientLogin, *, notice: str = "", fail: bool = False, start_with: str = "") -> None:
        self.server = server
        self.services = server.services
        self.notice, self.fail, self.start_with = notice, fail, start_with
        self.chan: Any = None  # the client's asyncssh SSHServerChannel
        self.term: Term | None = None
        self.command: str | None = None
        self.mode = "prompt"
        self.session: Session | None = None  # the lobby's own session (none for a refusal notice)
        self.out: RecordedScreen | None = None  # what the lobby shows, recorded
        self.editor: LineEditor | None = None
        self.task: asyncio.Task[Any] | None = None
        self.link: Link | None = None
        self.target_session: Session | None = None  # a terminal on a target, while `connect` runs
        self.sql: Any = None
        self.sql_editor: LineEditor | None = None
        self.sql_buf: list[str] = []
        self.sql_events: deque[tuple[str, str]] = deque()  # edited lines waiting for a running statement
        self.sql_failed = False  # a statement of the SQL shell failed (the exit status without a terminal)
        self.early_input = b""  # piped input that came before the SQL shell was open
        self.input_ended = False  # the client sent EOF
        self.bridge: TuiBridgeSession | None = None  # the approvers' console while `tui` runs

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
        self.command = command.decode("utf-8", "replace") if isinstance(command, bytes) else command
        return True

    def session_started(self) -> None:
        if self.notice:
            self.say(f"hoop: {self.notice}", err=True)
            self.chan.exit(1)
            return
        self.out = self._open_session()
        self.editor = LineEditor(self.out.write, f"hoop {self.server.user}> ", self.term is not None)
        if self.command is not None and self.start_with:
            self._spawn(self._exec_sql(self.start_with, self.command))
        elif self.command is not None:
            self._spawn(self._one_command(self.command))
        elif self.start_with:
            self._spawn(self._direct(self.start_with))
        else:
            self.say(f"Hoop gateway. Signed in as {self.server.user}. Type 'help' for commands.")
            self.editor.show_prompt()

    def data_received(self, data: bytes, datatype: Any) -> None:
        if self.session is not None and self.mode != "relay":
            self.session.log.bytes_in += len(data)
        if self.mode == "tui" and self.bridge is not None:
            self.bridge.data_received(data, datatype)
        elif self.mode == "relay" and self.link is not None:
            self.link.from_client(data)
        elif self.mode == "busy":
            if b"\x03" in data:
                if self.sql is not None:  # a running statement: ask the server to cancel it
                    self.say("^C (cancel requested)")
                    asyncio.ensure_future(self.sql.cancel())
                elif self.task is not None:
                    self.task.cancel()
            elif self.sql_editor is not None and self.term is None:
                self._sql_feed(data)  # piped statements wait their turn (typed ones are not echoed mid-output)
            elif self.term is None:
                self.early_input += data  # statements piped to a SQL shell that is still logging in
        elif self.mode == "sql" and self.sql_editor is not None:
            self._sql_feed(data)
        elif self.mode == "prompt" and self.editor is not None:
            for event, text in self.editor.feed(data):
                self._prompt_event(event, text)

    def eof_received(self) -> bool:
        if self.mode == "relay" and self.link is not None:
            self.link.client_eof()
            return True
        self.input_ended = True
        if self.sql_editor is not None:  # the end of piped statements: leave once they have run
            self.sql_events.append(("eof", ""))
            self._sql_drain()
        elif self.mode == "prompt" and self.command is None:
            self.chan.exit(0)
        return True

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        width, height = clamped(self.services.config.limits, width, height)
        if self.term is not None:
            self.term = (self.term[0], (width, height, pixwidth, pixheight), self.term[2])
        if self.out is not None:
            self.out.resize(width, height)
        if self.link is not None:
            self.link.resize(width, height, pixwidth, pixheight)
        if self.bridge is not None:
            self.bridge.terminal_size_changed(width, height, pixwidth, pixheight)

    def pause_writing(self) -> None:
        if self.link is not None:
            self.link.pause_reading()

    def resume_writing(self) -> None:
        if self.link is not None:
            self.link.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.bridge is not None:
            self.bridge.connection_lost(exc)
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if self.link is not None and not self.link.closed:
            self.link.close()
        if self.sql is not None:
            asyncio.ensure_future(self.sql.close())
        if self.out is not None:
            self.out.close()
        if self.session is not None:
            self.session.close(CloseStatus.CLOSED)

    # -- the lobby's session -------------------------------------------------------------------

    def _open_session(self) -> RecordedScreen:
        server = self.server
        assert server.identity is not None
        self.session = session = Session(self.services, server.identity, "", "ssh", server.client, dialect="shell")
        session.start(
            self.kill,
            kind="lobby",
            client=server.client,
            pty=self.term is not None,
            command=self.command or "",
            connect=self.start_with,
        )
        recorder = terminal_recorder(session, self.term or DEFAULT_TERM)
        return RecordedScreen(self.chan, session, recorder, pty=self.term is not None)

    def kill(self, reason: str, status: CloseStatus = CloseStatus.KILLED) -> None:
        """The session kit's `Killer`: end a terminal the lobby opened on a target, tell the
        user, end the channel; the rest ends as when the client leaves (`connection_lost`)."""
        if self.target_session is not None:
            self.target_session.kill(reason, status)
        if not self.chan.is_closing():
            self.say(f"hoop: session ended by the gateway: {reason}", err=True)
            self.chan.exit(1)

    # -- output and modes ----------------------------------------------------------------------

    def say(self, text: str, err: bool = False) -> None:
        nl = "\r\n" if self.term else "\n"
        data = (text.replace("\r\n", "\n").replace("\n", nl) + nl).encode("utf-8", "replace")
        out = self.out if self.out is not None else self.chan  # a refusal notice is not recorded
        (out.write_stderr if err else out.write)(data)

    def _spawn(self, coro: Coroutine[Any, Any, int | None]) -> None:
        self.mode = "busy"
        self.task = asyncio.ensure_future(self._guard(coro))

    async def _guard(self, coro: Coroutine[Any, Any, int | None]) -> None:
        """Run a command; Ctrl-C cancels it; the prompt comes back unless the mode changed."""
        status = 0
        try:
            status = await coro or 0
        except asyncio.CancelledError:
            self.say("^C")
            status = 130
        except Exception:  # a bug in one command must not kill the session
            log.exception("built-in command failed")
            self.say("hoop: internal error (see the gateway log)")
            status = 1
        if self.chan.is_closing() or self.sql_editor is not None:  # an open SQL shell ends the channel itself
            return
        if self.command is not None or self.start_with:
            if self.mode == "busy":
                self.chan.exit(status)
            return
        if self.mode == "busy":
            self._back_to_prompt()

    def _back_to_prompt(self, status: int = 0) -> None:
        self.mode = "prompt"
        self.link = None
        if self.command is not None or self.start_with:
            self.chan.exit(status)
        elif self.editor is not None:
            self.editor.show_prompt()

    def _prompt_event(self, event: str, text: str) -> None:
        if event == "eof":
            self.say("bye")
            self.chan.exit(0)
        elif event == "interrupt":
            self.editor.show_prompt()  # type: ignore[union-attr]
        elif event == "line":
            if text.strip() in ("exit", "quit", "logout"):
                self.chan.exit(0)
            elif not text.strip():
                self.editor.show_prompt()  # type: ignore[union-attr]
            else:
                self._spawn(self._dispatch(text.strip()))

    async def _one_command(self, text: str) -> int:
        return await self._dispatch(text)

    async def _dispatch(self, text: str) -> int:
        name, _, arg = text.partition(" ")
        handler = {
            "help": self._help,
            "whoami": self._whoami,
            "list": self._list,
            "sessions": self._sessions,
            "connect": self._connect,
            "tui": self._tui,
        }.get(name)
        if handler is None:
            self.say(f"unknown command {name!r}; type 'help'")
            return 127
        return await handler(arg.strip())

    # -- commands --------------------------------------------------------------------------------

    async def _help(self, _: str) -> int:
        self.say(HELP)
        return 0

    async def _whoami(self, _: str) -> int:
        assert self.server.identity is not None
        self.say(whoami(self.server.identity, self.server.client))
        return 0

    async def _list(self, _: str) -> int:
        assert self.server.identity is not None
        self.say(await connections(self.services, self.server.identity))
        return 0

    async def _sessions(self, _: str) -> int:
        self.say(await recent_sessions(self.services, self.server.user))
        return 0

    async def _connect(self, name: str) -> int:
        if not name:
            self.say("usage: connect NAME (see 'list')")
            return 2
        conn = self._resolve(name)
        if conn is None:
            return 1
        if conn.type == "ssh":
            return await self._connect_ssh(conn)
        return await self._connect_sql(conn)

    def _resolve(self, name: str) -> Connection | None:
        assert self.server.identity is not None
        try:
            conn = self.services.resolve_connection(self.server.identity, name)
        except AccessDenied as exc:
            self.say(f"{exc} ({name!r})", err=self.command is not None)
            return None
        self.services.journal.audit(self.server.user, "ssh.builtin.connect", conn.name, client=self.server.client)
        return conn

    async def _tui(self, _: str) -> int:
        """The approvers' console on this session's terminal; back to the prompt when it quits."""
        if self.term is None:
            self.say("the approver console needs a terminal (ssh -t)")
            return 1
        from hoop.server.ssh.tui_bridge import TuiBridgeSession

        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def on_exit(status: int) -> None:
            if not done.done():
                done.set_result(status)

        bridge = TuiBridgeSession(self.server, on_exit=on_exit)
        bridge.attach(self.out, self.term)  # its screens are the lobby's
        self.bridge, self.mode = bridge, "tui"
        try:
            await bridge.run()
            return await done
        finally:
            self.bridge = None
            if self.mode == "tui":
                self.mode = "busy"

    async def _direct(self, name: str) -> int:
        return await self._connect(name)

    # -- connect: SSH ----------------------------------------------------------------------------

    async def _connect_ssh(self, conn: Connection) -> int:
        """A terminal on the target: a session of its own, relayed until the target ends it."""
        if self.term is None:
            self.say("connect to an SSH connection needs a terminal (ssh -t)")
            return 1
        server = self.server
        if shell_policy(self.services.pipeline.guard_rules, conn) == "deny":
            if self.session is not None:
                self.session.audit("ssh.refused.shell", connection=conn.name, reason="shell policy deny")
            self.say(shell_refusal(conn, f"{server.user}+{conn.name}"))
            return 1
        try:  # counted like a direct login to the target, before the target is contacted
            slot = self.services.limiter.claim_session(server.user, conn.name, "ssh", server.client)
        except TooManySessions as exc:
            self.say(f"hoop: {exc}")
            return 1
        try:
            return await self._relay_ssh(conn, slot)
        finally:
            if self.mode != "relay":  # it never reached the target (or is over): `closed` releases it otherwise
                slot.release()

    async def _relay_ssh(self, conn: Connection, slot: SessionSlot) -> int:
        server, term, lobby = self.server, self.term, self.session
        assert server.identity is not None and lobby is not None and term is not None
        session = Session(self.services, server.identity, conn.name, "ssh", server.client, dialect="shell")
        moderated: Moderated | None = None

        def closed(status: int | None, signal: Any) -> None:
            slot.release()
            if moderated is not None:
                moderated.close()
            session.close(CloseStatus.UPSTREAM_LOST if link.lost else CloseStatus.CLOSED, exit_status=status)
            self.target_session = None
            if self.mode == "relay" and not self.chan.is_closing():
                self.say(f"\r\n[connection to {conn.name} closed]")
                self._back_to_prompt()

        def kill(reason: str, status: CloseStatus = CloseStatus.KILLED) -> None:
            if not self.chan.is_closing():
                self.say(f"\r\nhoop: session {session.id} on {conn.name} ended by the gateway: {reason}", err=True)
            link.close()
            if link.target is None and self.task is not None:  # still held or waiting for a moderator
                self.task.cancel()

        link = Link(self.chan, closed, session=session, forward_eof=False)
        self.target_session = session
        session.start(kill, kind="shell", client=server.client, pty=True, via="lobby", lobby=lobby.id)
        try:
            admitted, moderated = await self._shell_terms(session, conn, link)
            if not admitted:
                return 1
            target = await server.target(conn)
        except TargetError as exc:
            self.say(f"hoop: {exc}")
            link.lost = True
            link.close()
            return 1
        except asyncio.CancelledError:  # Ctrl-C while held or logging in, or the lobby ended
            link.close()
            raise
        if link.closed:  # killed while logging in
            return 1
        link.recorder = terminal_recorder(session, term, record_input=conn.record_input)
        self.link, self.mode = link, "relay"
        try:
            await link.open(target, term=term)
        except (asyncssh.Error, OSError) as exc:
            self.link, self.mode = None, "busy"
            link.lost = True
            link.target_closed(None, None)
            self.say(f"hoop: the target refused the session: {getattr(exc, 'reason', '') or exc}")
            return 1
        if moderated is not None:
            moderated.start()
        return 0

    async def _shell_terms(self, session: Session, conn: Connection, link: Link) -> tuple[bool, Moderated | None]:
        """The shell policy of a `connect`: whether the shell may start (after its approval, or
        its first moderator), and its moderation if it is moderated. A refusal closes the link."""
        login = f"{self.server.user}+{conn.name}"
        link.suspended = True  # typed ahead while held is not what an approver let through
        shell = await admit_shell(session, conn, self.services.pipeline.guard_rules, login, "", self.say)
        link.suspended = shell.moderated  # nothing reaches the target until a moderator watches
        if not shell.run:
            link.close()
            return False, None
        if not shell.moderated:
            return True, None
        rule = shell_rule(conn)
        assert rule is not None
        moderated = self.services.moderators.open(session, rule, link)
        self.say(moderated.waiting_message())
        try:
            came = await moderated.first_moderator()
        except asyncio.CancelledError:
            moderated.close()
            raise
        if not came or link.closed:  # nobody came in time, or it was killed while it waited
            moderated.close()
            if not came:
                self.say(f"hoop: not started: no moderator watched it within {format_span(rule.timeout)}")
            link.close()
            return False, None
        return True, moderated

    # -- connect: SQL ----------------------------------------------------------------------------

    async def _exec_sql(self, name: str, text: str) -> int:
        """`ssh USER+CONN@gateway 'SQL'`: the whole text through the door once; rows on stdout,
        errors and refusals on stderr, 1 if anything failed."""
        if not text.strip():
            self.say(f"usage: ssh {self.server.user}+{name}@gateway 'SQL' (statements separated by ';')", err=True)
            return 2
        conn = self._resolve(name)
        if conn is None:
            return 1
        shell = open_shell(self.services, self.server.user, conn, self.say, style="exec")
        try:
            await shell.open()
        except SqlShellError as exc:
            self.say(f"hoop: {exc}", err=True)
            return 1
        self.sql = shell  # so that Ctrl-C (with -t) cancels the statement
        try:
            return 0 if await shell.execute(text) else 1
        finally:
            self.sql = None
            await shell.close()

    async def _connect_sql(self, conn: Connection) -> int:
        shell = open_shell(self.services, self.server.user, conn, self.say)
        try:
            await shell.open()
        except SqlShellError as exc:
            self.say(f"hoop: {exc}", err=True)
            return 1
        self.sql, self.sql_failed = shell, False
        if self.term is not None:  # piped statements get their results only, as with psql
            self.say(f"SQL shell on {conn.name} ({conn.type}). End statements with ';'. \\? for help, \\q to leave.")
        assert self.out is not None
        self.sql_editor = LineEditor(self.out.write, self._sql_prompt(), self.term is not None)
        self.mode = "sql"
        self.sql_editor.show_prompt()
        early, self.early_input = self.early_input, b""
        self.sql_events.extend(self.sql_editor.feed(early))
        if self.input_ended:
            self.sql_events.append(("eof", ""))
        self._sql_drain()
        return 0

    def _sql_prompt(self, continued: bool = False) -> str:
        if self.term is None:
            return ""
        name = self.sql.connection.name if self.sql is not None else "sql"
        return f"{name}{'->' if continued else '=>'} "

    def _sql_feed(self, data: bytes) -> None:
        assert self.sql_editor is not None
        self.sql_events.extend(self.sql_editor.feed(data))
        self._sql_drain()

    def _sql_drain(self) -> None:
        """Handle edited lines while no statement runs; the rest wait for it to finish."""
        while self.mode == "sql" and self.sql_events:
            self._sql_event(*self.sql_events.popleft())

    def _sql_event(self, event: str, text: str) -> None:
        editor = self.sql_editor
        assert editor is not None
        if event == "interrupt":
            self.sql_buf = []
            editor.prompt = self._sql_prompt()
            editor.show_prompt()
            return
        if event == "eof" or (not self.sql_buf and text.strip() in ("\\q", "exit", "quit")):
            self._leave_sql()
            return
        if not self.sql_buf and text.strip().startswith("\\"):
            self._run_sql(self.sql.command(text.strip()))
            return
        self.sql_buf.append(text)
        statement = "\n".join(self.sql_buf).strip()
        if not statement or not statement.endswith(";"):
            editor.prompt = self._sql_prompt(continued=bool(statement))
            if not statement:
                self.sql_buf = []
            editor.show_prompt()
            return
        self.sql_buf = []
        editor.prompt = self._sql_prompt()
        self._run_sql(self.sql.execute(statement))

    def _run_sql(self, work: Awaitable[bool]) -> None:
        self.mode = "busy"
        self.task = asyncio.ensure_future(self._sql_step(work))

    async def _sql_step(self, work: Awaitable[bool]) -> None:
        try:
            if not await work:
                self.sql_failed = True
        except Exception:  # a bug in the shell must not leave the session busy forever
            log.exception("SQL shell command failed")
            self.say("hoop: internal error (see the gateway log)", err=True)
            self.sql_failed = True
        if self.chan.is_closing() or self.sql_editor is None:
            return
        self.mode = "sql"
        self.sql_editor.show_prompt()
        self._sql_drain()

    def _leave_sql(self) -> None:
        shell, self.sql, self.sql_editor = self.sql, None, None
        self.sql_events.clear()
        if shell is not None:
            asyncio.ensure_future(shell.close())
        # Without a terminal the statements came from a script: its status says if any failed.
        self._back_to_prompt(1 if self.sql_failed and self.term is None else 0)
