"""A byte-exact bridge between a client's channel on the gateway and a channel on the target.

asyncssh calls back on every chunk (`data_received`), so the relay does no awaiting on the
hot path: each chunk is written straight to the other channel, and flow control is passed
through (the other side is paused while a channel's send buffer is full). Recording, SFTP
event parsing and submitted-line detection are optional observers of the same chunks; a line
submitted in a terminal is recorded as an `observed` statement of the session.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import asyncssh

from hoop.core.store.records import OBSERVED
from hoop.core.terminal import CastWriter, cast_path
from hoop.server.recording_guard import unavailable
from hoop.server.session import Session
from hoop.server.ssh.tuning import channel_options, tune_channel

log = logging.getLogger("hoop.ssh")
FLUSH_EVERY = 0.2  # seconds between recording flushes


class TargetSession(asyncssh.SSHClientSession):  # type: ignore[type-arg]
    """The target side of a Link: forwards everything to the link."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.exit_status: int | None = None
        self.exit_signal: tuple[str, bool, str, str] | None = None

    def data_received(self, data: bytes, datatype: Any) -> None:
        self.link.from_target(data, datatype == asyncssh.EXTENDED_DATA_STDERR)

    def eof_received(self) -> bool:
        self.link.target_eof()
        return True  # stay half-open: the exit status may still follow

    def exit_status_received(self, status: int) -> None:
        self.exit_status = status

    def exit_signal_received(self, signal: str, core_dumped: bool, msg: str, lang: str) -> None:
        self.exit_signal = (signal, core_dumped, msg, lang)

    def pause_writing(self) -> None:
        self.link.front.pause_reading()

    def resume_writing(self) -> None:
        self.link.front.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:  # the target's connection dropped (not a close from either end)
            self.link.lost = True
        self.link.target_closed(self.exit_status, self.exit_signal)


class Link:
    """One relayed channel. `front` is the client's SSHServerChannel on the gateway.

    `on_close(exit_status, exit_signal)` runs once when the target channel is gone; `lost`
    then says whether the target went away (its connection dropped, or it could not be reached)
    rather than the channel being closed by either end.
    """

    def __init__(
        self,
        front: Any,
        on_close: Callable[[int | None, Any], None],
        *,
        recorder: CastWriter | None = None,
        session: Session | None = None,
        monitor: Any = None,
        forward_eof: bool = True,
    ) -> None:
        self.front = front
        tune_channel(front)
        self.forward_eof = forward_eof
        self.on_close = on_close
        self.recorder = recorder
        self.session = session  # byte counters and observed lines
        self.monitor = monitor  # SFTP packet observer (feed_client / feed_target)
        self.target: Any = None  # an asyncssh SSHClientChannel, or a stand-in (adopt)
        self._early: list[bytes] = []  # client bytes that arrived before the target channel
        self._early_eof = False
        self._timer: asyncio.TimerHandle | None = None
        self._counted = 0  # bytes of the cast counted in the session's recording size
        self.closed = False
        self.lost = False
        # A moderated session without a moderator (hoop/server/moderation.py): the client's
        # input is discarded and the target's output held until the gate opens again.
        self.suspended = False

    async def open(
        self,
        conn: asyncssh.SSHClientConnection,
        *,
        command: str | None = None,
        subsystem: str | None = None,
        term: tuple[str, tuple[int, int, int, int], dict[int, int]] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """Open the target channel (shell when neither command nor subsystem is given)."""
        kwargs: dict[str, Any] = {"encoding": None, "env": env or {}, **channel_options()}
        if term is not None:
            kwargs.update(term_type=term[0], term_size=term[1], term_modes=term[2], request_pty="force")
        else:
            kwargs["request_pty"] = False
        chan, _ = await conn.create_session(lambda: TargetSession(self), command, subsystem=subsystem, **kwargs)
        tune_channel(chan)
        self.adopt(chan)

    def adopt(self, target: Any) -> None:
        """Relay to `target` from now on: an asyncssh channel, or anything with its methods
        (see openssh_leg.ChildLeg). What the client sent meanwhile goes first."""
        self.target = target
        if self.closed:  # the client left while the target was being opened
            target.close()
            return
        if self.suspended:
            target.pause_reading()
        if self._early:
            target.write(b"".join(self._early))
            self._early.clear()
        if self._early_eof:
            target.write_eof()
        if self.recorder is not None:
            self._timer = asyncio.get_running_loop().call_later(FLUSH_EVERY, self._tick)

    # -- client -> target ---------------------------------------------------------------------

    def from_client(self, data: bytes) -> None:
        if self.session is not None:
            self.session.log.bytes_in += len(data)
        if self.suspended:
            return
        rec = self.recorder
        if rec is not None:
            rec.input(data)
            if b"\r" in data or b"\n" in data:
                rec.mark_submit()
        if self.monitor is not None:
            self.monitor.feed_client(data)
        if self.target is None:
            self._early.append(data)
        else:
            self.target.write(data)

    def _observe_lines(self, rec: CastWriter) -> None:
        """Best effort: the screen line where Enter was echoed is what the user submitted."""
        lines, rec.lines = rec.lines, []
        if self.session is not None:
            now = time.time()
            for line in lines:
                self.session.record(line, OBSERVED, started=now, duration_ms=0.0)

    def client_eof(self) -> None:
        if self.target is None:
            self._early_eof = True
        else:
            self.target.write_eof()

    def resize(self, cols: int, rows: int, pxw: int = 0, pxh: int = 0) -> None:
        if self.recorder is not None:
            self.recorder.resize(cols, rows)
        if self.target is not None:
            self.target.change_terminal_size(cols, rows, pxw, pxh)

    def signal(self, name: str) -> None:
        if self.target is not None and not self.suspended:
            self.target.signal(name)

    def send_break(self, msec: int) -> None:
        if self.target is not None and not self.suspended:
            self.target.send_break(msec)

    def pause_reading(self) -> None:
        if self.target is not None:
            self.target.pause_reading()

    def resume_reading(self) -> None:
        if self.target is not None and not self.suspended:
            self.target.resume_reading()

    # -- moderation: the Gate of hoop/server/moderation.py ---------------------------------------

    def suspend(self, message: str) -> None:
        self.suspended = True
        self.pause_reading()
        self.notice(message)

    def unsuspend(self, message: str) -> None:
        self.suspended = False
        self.resume_reading()
        self.notice(message)

    def notice(self, message: str) -> None:
        """A line from the gateway on the user's terminal, in the recording too."""
        data = f"\r\n{message}\r\n".encode("utf-8", "replace")
        if self.recorder is not None and not self.closed:
            self.recorder.output(data)
        if not self.front.is_closing():
            self.front.write(data)

    # -- target -> client ---------------------------------------------------------------------

    def from_target(self, data: bytes, stderr: bool) -> None:
        if self.session is not None:
            self.session.log.bytes_out += len(data)
        rec = self.recorder
        if rec is not None:
            rec.output(data)
            if rec.lines:
                self._observe_lines(rec)
        if self.monitor is not None and not stderr:
            self.monitor.feed_target(data)
        if stderr:
            self.front.write_stderr(data)
        else:
            self.front.write(data)

    def target_eof(self) -> None:
        if self.forward_eof:
            self.front.write_eof()

    def target_closed(self, exit_status: int | None, exit_signal: Any) -> None:
        if self.closed:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self.recorder is not None:
            try:
                self.recorder.close()
            except OSError as exc:
                log.error("session %s: the end of its terminal recording was not written: %s", self._label(), exc)
        if self.session is not None:
            self.session.log.touch()
        self.on_close(exit_status, exit_signal)

    def _label(self) -> str:
        return str(self.session.id) if self.session is not None else "?"

    def _unrecordable(self, exc: OSError) -> None:
        """The terminal recording cannot be written (disk full, I/O error). Output flows as it is
        recorded, so under `on_record_failure = "refuse"` the session cannot go on."""
        session = self.session
        if session is None or session.services.config.gateway.on_record_failure == "continue":
            log.error("session %s: its terminal recording cannot be written (%s); continuing", self._label(), exc)
            if not self.closed:
                self._timer = asyncio.get_running_loop().call_later(FLUSH_EVERY, self._tick)
            return
        reason = unavailable(str(exc))
        log.error("session %s: %s", session.id, reason)
        session.audit("session.kill", reason=reason, user=session.user)
        session.kill(reason)

    def close(self) -> None:
        """Close the target channel (the front went away or the session is killed)."""
        if self.target is not None:
            self.target.close()
        else:
            self.target_closed(None, None)

    def _tick(self) -> None:
        if self.recorder is not None and not self.closed:
            try:
                self.recorder.flush()
            except OSError as exc:
                self._unrecordable(exc)
                return
            if self.session is not None:
                self.session.log.touch()
                self.session.log.grew(self.recorder.size - self._counted)  # recording_bytes_per_session
                self._counted = self.recorder.size
            self._timer = asyncio.get_running_loop().call_later(FLUSH_EVERY, self._tick)


def terminal_recorder(
    session: Session, term: tuple[str, tuple[int, int, int, int], dict[int, int]], *, record_input: bool = False
) -> CastWriter:
    """The terminal recording of a session (`<id>.cast`), announced in its recording."""
    path = cast_path(session.services.config.gateway.recordings_dir, session.id)
    where = f"@{session.connection}" if session.connection else " in the lobby"
    rec = CastWriter(
        path,
        term[1][0] or 80,
        term[1][1] or 24,
        started=time.time(),
        title=f"{session.user}{where} (session {session.id})",
        env={"TERM": term[0] or "xterm"},
        record_input=record_input,
        # A shared store keeps the cast in its chunks (through the journal, with the session's
        # batches), so every gateway can replay and watch it.
        sink=session.log.append_file if session.log.journal.shared else None,
    )
    session.frame("e", {"event": "terminal", "cast": path.name})
    return rec
