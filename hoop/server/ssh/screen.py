"""What the lobby shows its user, written to the client's channel and to the lobby session's
terminal recording (`<id>.cast`), so approvers can watch it live and replay it.

Only the lobby's own output is recorded here: a terminal it opens on a target (`connect
web1`) is a session of its own, with its own recording.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hoop.core.terminal import CastWriter
from hoop.server.session import Session
from hoop.server.ssh.relay import FLUSH_EVERY


class RecordedScreen:
    """`write` and `write_stderr` as on the channel, plus the recording. Without a terminal the
    client gets bare newlines; the recording gets them as CR LF so that it plays as seen."""

    def __init__(self, chan: Any, session: Session, recorder: CastWriter, *, pty: bool) -> None:
        self.chan = chan  # the client's asyncssh SSHServerChannel
        self.session = session
        self.recorder = recorder
        self.pty = pty
        self._timer: asyncio.TimerHandle | None = None
        self._counted = 0  # bytes of the cast counted in the session's recording size

    def write(self, data: bytes) -> None:
        if not self.chan.is_closing():  # after the exit status (a kill) nothing more is shown
            self.chan.write(data)
            self._record(data)

    def write_stderr(self, data: bytes) -> None:
        if not self.chan.is_closing():
            self.chan.write_stderr(data)
            self._record(data)

    def resize(self, cols: int, rows: int) -> None:
        if not self.recorder.closed:
            self.recorder.resize(cols, rows)

    def _record(self, data: bytes) -> None:
        self.session.log.bytes_out += len(data)
        if self.recorder.closed:
            return
        self.recorder.output(data if self.pty else data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
        if self._timer is None:  # written out at most every FLUSH_EVERY, as a relayed terminal is
            self._timer = asyncio.get_running_loop().call_later(FLUSH_EVERY, self._flush)

    def _flush(self) -> None:
        self._timer = None
        if not self.recorder.closed:
            self.recorder.flush()
            self.session.log.touch()
            self.session.log.grew(self.recorder.size - self._counted)  # recording_bytes_per_session
            self._counted = self.recorder.size

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.recorder.close()
