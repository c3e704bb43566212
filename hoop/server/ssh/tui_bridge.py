"""`ssh -t -p 2222 bob+tui@gateway`: the approver TUI over SSH.

The gateway runs `hoop tui` for the SSH user as a child process on a pseudo-terminal and relays
bytes between the channel and the PTY; window size changes are applied to the PTY (TIOCSWINSZ,
which makes the kernel send SIGWINCH to the TUI). Only admins, auditors and approvers get in.

The child gets only what it needs. Its environment is a short allow-list (console_env), not
the gateway's: no upstream secret named by `${VAR}` in the config reaches it (it loads the
config without reading secrets, see hoop.cli). It acts as the user through a token that lives
TOKEN_TTL (minutes), is extended every TOKEN_REFRESH while the console runs and is revoked
when it ends, so a token that leaks from the child dies within minutes of the console. The
token travels in the child's environment, never on its command line.

Kept in the server package, but it starts the TUI as a separate program: the gateway itself
never imports Textual or hoop.tui.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
from typing import Any

import asyncssh

from hoop.server.ssh.pty_limits import clamped, refuse_pty

log = logging.getLogger("hoop.ssh")
TOKEN_TTL = 300.0  # the console's token lives five minutes past its last refresh
TOKEN_REFRESH = 60.0  # seconds between refreshes while the console runs
# What the console's process needs from the gateway's environment: to find programs and its own
# code, and to show text and times as the operator expects. Nothing else (no ${VARS}) passes.
PASSED_ENV = ("PATH", "HOME", "LANG", "TZ", "PYTHONPATH")


def console_env(parent: dict[str, str], token: str, term: str) -> dict[str, str]:
    """The console child's whole environment: the allow-list above from `parent`, the locale
    (LC_*), the terminal it draws on and its short-lived token."""
    env = {k: v for k, v in parent.items() if k in PASSED_ENV or k.startswith("LC_")}
    env.update({"HOOP_TOKEN": token, "TERM": term, "COLORTERM": "truecolor"})
    return env


async def keep_token_alive(tokens: Any, token_id: str, ttl: float, every: float) -> None:
    """Move the token's expiry `ttl` ahead every `every` seconds until cancelled, or until the
    token is gone (revoked when its session was killed): then the console has lost its identity."""
    while True:
        await asyncio.sleep(every)
        try:
            await asyncio.to_thread(tokens.extend, token_id, ttl)
        except Exception as exc:  # revoked or expired: stop; the console's next call is refused
            log.info("the console's token %s is no longer extended: %s", token_id, exc)
            return


def set_winsize(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", max(rows, 1), max(cols, 1), 0, 0))


class TuiBridgeSession(asyncssh.SSHServerSession):  # type: ignore[type-arg]
    def __init__(self, server: Any, on_exit: Any = None) -> None:
        self.server = server
        # Standalone (`alice+tui`) the channel ends with the console; inside the built-in
        # session (`tui` at the prompt) the caller gets the status and shows its prompt again.
        self.on_exit = on_exit
        self.services = server.services
        self.chan: Any = None
        self.term_type = "xterm-256color"
        self.size = (80, 24)
        self.has_pty = False
        self.master = -1
        self.proc: subprocess.Popen[bytes] | None = None
        self.token_id = ""

    # -- asyncssh callbacks --------------------------------------------------------------------

    def connection_made(self, chan: Any) -> None:
        self.chan = chan

    def pty_requested(self, term_type: str, term_size: tuple[int, int, int, int], term_modes: Any) -> bool:
        if refuse_pty(self.server, self.chan, term_size):
            return False
        self.has_pty = True
        self.term_type = term_type or self.term_type
        self.size = (term_size[0] or 80, term_size[1] or 24)
        return True

    def shell_requested(self) -> bool:
        return True

    def exec_requested(self, command: Any) -> bool:
        return False  # the TUI is interactive only

    def session_started(self) -> None:
        asyncio.ensure_future(self._run())

    def data_received(self, data: bytes, datatype: Any) -> None:
        if self.master >= 0:
            try:
                os.write(self.master, data)
            except OSError:
                pass

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        width, height = clamped(self.server.services.config.limits, width, height)
        self.size = (width or self.size[0], height or self.size[1])
        if self.master >= 0:
            set_winsize(self.master, *self.size)

    def eof_received(self) -> bool:
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self.proc is not None and self.proc.returncode is None:
            try:
                os.killpg(self.proc.pid, signal.SIGHUP)
            except ProcessLookupError:
                pass

    # -- the bridge ------------------------------------------------------------------------------

    def _fail(self, text: str) -> None:
        self.chan.write_stderr(f"hoop: {text}\r\n".encode())
        self._exit(1)

    def _exit(self, status: int) -> None:
        if self.on_exit is not None:
            self.on_exit(status)
        else:
            self.chan.exit(status)

    def attach(self, chan: Any, term: tuple[Any, ...]) -> None:
        """Run on a channel that already has a terminal (the built-in session's)."""
        self.chan = chan
        self.has_pty = True
        self.term_type = term[0] or self.term_type
        self.size = (term[1][0] or 80, term[1][1] or 24)

    async def run(self) -> None:
        try:
            await self._run()
        finally:  # also when the session is killed or the client leaves while the console runs
            if self.token_id:
                self.connection_lost(None)  # the console goes with its session
                self._revoke_now()
            if self.master >= 0:
                asyncio.get_running_loop().remove_reader(self.master)
                os.close(self.master)
                self.master = -1

    async def _run(self) -> None:
        identity = self.server.identity
        user = self.server.user
        roles = self.services.roles_of(identity) if identity is not None else None
        if roles is None or not (roles.admin or roles.auditor or roles.approver):
            self.server.refuse("tui", reason="no role")
            self._fail("the console is for admins, auditors and approvers")
            return
        if not self.has_pty:
            self._fail("the approver console needs a terminal: use ssh -t")
            return
        ttl = min(TOKEN_TTL, self.services.config.gateway.max_token_ttl)
        issued = await asyncio.to_thread(self.services.tokens.issue, user, ttl, "ssh tui session")
        self.token_id = issued.id
        self.services.journal.audit(user, "tui.open", "ssh", client=self.server.client, token_id=issued.id)
        master, slave = pty.openpty()
        set_winsize(slave, *self.size)
        env = console_env(dict(os.environ), issued.token, self.term_type)
        config = str(self.services.config.path)
        try:
            # subprocess (not the loop's subprocess_exec) so preexec_fn runs after the PTY is
            # the child's stdin: it becomes the controlling terminal and SIGWINCH reaches the TUI.
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hoop.cli", "tui", "-c", config],
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=env,
                start_new_session=True,
                preexec_fn=_controlling_tty,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            os.close(master)
            os.close(slave)
            await self._revoke()
            self._fail(f"could not start the console: {exc}")
            return
        os.close(slave)
        os.set_blocking(master, False)
        self.master = master
        loop = asyncio.get_running_loop()
        loop.add_reader(master, self._from_pty)
        keeper = asyncio.ensure_future(keep_token_alive(self.services.tokens, issued.id, ttl, TOKEN_REFRESH))
        try:
            code = await asyncio.to_thread(self.proc.wait)
        finally:
            keeper.cancel()
        await asyncio.sleep(0.05)
        self._drain()
        loop.remove_reader(master)
        os.close(master)
        self.master = -1
        await self._revoke()
        self.services.journal.audit(user, "tui.close", "ssh", status=code)
        self._exit(0 if code == 0 else 1)

    def _from_pty(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the child closed its side
            data = b""
        if data:
            self.chan.write(data)
        else:
            asyncio.get_running_loop().remove_reader(self.master)

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except (OSError, BlockingIOError):
                return
            if not data:
                return
            self.chan.write(data)

    async def _revoke(self) -> None:
        if self.token_id:
            await asyncio.to_thread(self._revoke_now)

    def _revoke_now(self) -> None:
        """The console's token dies with the console, however it ended."""
        token_id, self.token_id = self.token_id, ""
        if token_id:
            try:
                self.services.tokens.revoke(token_id)
            except Exception:  # the token expires on its own; never break the session's end
                log.exception("could not revoke the tui token %s", token_id)


def _controlling_tty() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
