"""Learning a pipelined session's text settings before judging a statement that depends on them.

A Parse or Query whose bytes read differently under another `client_encoding` or
`standard_conforming_strings` (see session_text.py) may follow an Execute the client has not
yet synced, and that Execute may change either setting. The server reports a changed setting
only before its next ReadyForQuery, which comes after Sync, so waiting for the report would
wait for the client, which waits for us.

So the relay asks. It keeps the message (and everything after it) in the client framer and
sends, after what the client sent before it, two named `SHOW` statements and a Flush. The
server answers in order: once the SHOW rows arrive, everything before them has run, and the
values are those the server will read the held message with. SHOW is a utility statement:
it takes no snapshot (so `SET TRANSACTION ISOLATION LEVEL` later in the transaction still
works) and changes nothing. The statements and portal are closed again, and every reply to
them is dropped, so the client sees exactly the server's answers to its own messages.

Knowing where those replies start needs counting: every Parse, Bind, Describe, Execute and
Close is answered by exactly one completion message (ParseComplete, BindComplete, RowDescription
or NoData, CommandComplete, EmptyQueryResponse or PortalSuspended, CloseComplete) or by an
ErrorResponse after which the server skips everything up to Sync. The relay counts what it
sent since the client's last Sync and the completions since the last ReadyForQuery, and asks
only once every earlier batch is answered, so both counts are about the same messages. After
an error the server skips the held message too, so it is judged at once.

The wait is bounded: after PROBE_TIMEOUT the held message is refused with a reason, as it
was before the relay asked (a long-running statement before it in the pipeline).
"""

from __future__ import annotations

import asyncio
import secrets
from typing import TYPE_CHECKING, Any

from hoop.server.postgres import codec, frontend
from hoop.server.postgres.session_text import SessionText

PROBE_TIMEOUT = 10.0  # seconds the statements before the held message may take
SETTINGS = ("client_encoding", "standard_conforming_strings")
# Client messages each answered by one completion (Close and Describe are 'C' and 'D' here).
ANSWERED = frozenset(b"PBDEC")
# Their completions from the server ('T'/'n' end a Describe; 'C', 'I', 's' an Execute).
COMPLETIONS = frozenset(b"123nTCIsE")
PROBE_REPLIES = frozenset(b"123DC")
DATA_ROW, ERROR = ord("D"), ord("E")
NOT_OURS = object()  # returned by `probe_reply`: the message belongs to the client


class Probe:
    __slots__ = ("after", "left", "values", "waiting", "timer")

    def __init__(self, after: int) -> None:
        self.after = after  # completions of client messages that come before ours
        self.left = len(SETTINGS) * 6  # ParseComplete, BindComplete, DataRow, CommandComplete, 2 x CloseComplete
        self.values: list[str] = []
        self.waiting = True  # the client's held message still waits for the answer
        self.timer: asyncio.TimerHandle | None = None


def probe_messages() -> bytes:
    name = f"hoop_settings_{secrets.token_hex(8)}"
    out = []
    for setting in SETTINGS:
        out += [
            frontend.parse(name, f"SHOW {setting}"),
            frontend.bind(name, name, [], [], []),
            frontend.execute(name),
            frontend.close("P", name),
            frontend.close("S", name),
        ]
    out.append(codec.message(b"H"))  # Flush: the server sends what it has; no reply of its own
    return b"".join(out)


class Probing:
    """Mixed into `Relay`: asking the server for its text settings in the middle of a pipeline."""

    text: SessionText
    settling: bool
    closed: bool
    upstream: asyncio.Transport | None
    sent_batches: int
    done_batches: int
    copy_ins: int
    copy_ends: int
    batch_due = 0  # messages in ANSWERED sent since the client's last Sync (or Query)
    batch_got = 0  # COMPLETIONS received since the last ReadyForQuery
    batch_failed = False  # an ErrorResponse since then: the server skips up to Sync
    probe: Probe | None = None

    if TYPE_CHECKING:  # provided by the relay

        def resume_client(self) -> None: ...
        def _settled(self) -> bool: ...
        def _watch_changed(self) -> None: ...

    @property
    def asking(self) -> bool:
        return self.probe is not None

    def settle_step(self) -> None:
        """A message waits for the settings: go on as soon as they are known."""
        if not self.settling or self.closed:
            return
        if self._settled():
            asyncio.get_running_loop().call_soon(self._settled_resume)
            return
        if not self.text.executing or self.sent_batches != self.done_batches:
            return  # earlier batches end in ReadyForQuery, which reports every change first
        if self.batch_failed:  # the server skips the held message: nothing to learn
            self.text.executing = False
            asyncio.get_running_loop().call_soon(self._settled_resume)
        elif self.probe is not None or self.copy_ins > self.copy_ends:
            self._give_up("the server has not answered the statements before it in the same pipeline")
        else:
            self._ask()

    def _ask(self) -> None:
        probe = self.probe = Probe(self.batch_due)
        probe.timer = asyncio.get_running_loop().call_later(PROBE_TIMEOUT, self._probe_expired, probe)
        self._watch_changed()
        self.upstream.write(probe_messages())  # type: ignore[union-attr]

    def _give_up(self, why: str) -> None:
        self.text.refusal = (
            f"Hoop cannot judge this statement yet: it contains non-ASCII bytes or a backslash, and {why} "
            "(a statement there may change how the server reads them: client_encoding, "
            "standard_conforming_strings); send Sync before it"
        )
        asyncio.get_running_loop().call_soon(self._settled_resume)

    def _probe_expired(self, probe: Probe) -> None:
        if self.probe is probe and probe.waiting and self.settling and not self.closed:
            probe.waiting = False  # its replies are still dropped when they come
            self._give_up(f"the statements before it in the same pipeline did not finish within {PROBE_TIMEOUT:g} s")

    def completion(self, t: int) -> None:
        """Count a completion of a client message (called for each message in COMPLETIONS)."""
        self.batch_got += 1
        if t == ERROR:
            self.batch_failed = True
            if self.probe is not None:  # the server skips the questions too
                self._probe_done(self.probe, None)

    def probe_reply(self, t: int, msg: memoryview) -> Any:
        """A reply once the client's messages before the questions are answered: ours are
        dropped (None); NOT_OURS for anything else (a notice, or an error that is forwarded)."""
        probe = self.probe
        assert probe is not None
        if t not in PROBE_REPLIES:
            return NOT_OURS
        if t == DATA_ROW:
            value = codec.parse_data_row(msg[5:])[0]
            probe.values.append((value or b"").decode("ascii", "replace"))
        probe.left -= 1
        if probe.left == 0:
            self._probe_done(probe, probe.values)
        return None

    def _probe_done(self, probe: Probe, values: list[str] | None) -> None:
        self.probe = None
        if probe.timer is not None:
            probe.timer.cancel()
        self._watch_changed()
        if values is not None and len(values) == len(SETTINGS):
            for name, value in zip(SETTINGS, values, strict=True):
                self.text.parameter_status(name, value)
        if probe.waiting:
            # Every Execute before the held message is answered (or skipped after an error).
            self.text.executing = False
            if self.settling:
                asyncio.get_running_loop().call_soon(self._settled_resume)

    def ready(self) -> None:
        """ReadyForQuery: a new batch; questions not answered by now were skipped."""
        self.batch_got = 0
        self.batch_failed = False
        if self.probe is not None:
            self._probe_done(self.probe, None)
        if self.settling:
            self.settle_step()

    def _settled_resume(self) -> None:
        """The server has answered everything before the waiting message: judge it now."""
        if self.closed or not self.settling:
            return
        self.settling = False
        self.resume_client()
