"""The data path of one PostgreSQL session once both sides are logged in.

Two `asyncio.Protocol`s share one `Relay`. Bytes are framed with the sans-IO codec and only
the message types the policy or the recording needs are looked at; every run of untouched
messages is forwarded as one slice, and each `data_received` ends in a single write.

A statement the policy blocks is not answered by the gateway out of band: it is replaced by
a statement that fails upstream with a unique marker, and the server's error is rewritten
into ours on the way back. The server thereby keeps every ordering rule of the protocol
(pipelined queries, discard-until-Sync, transaction state) and we only swap one message.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

from hoop.core.pipeline import Decision
from hoop.core.sql import PreparedStatements, TextMode, TextModeError
from hoop.core.store.records import CloseStatus
from hoop.core.store.wire_text import from_wire
from hoop.server.postgres import codec, framing, frontend
from hoop.server.postgres.columns import ColumnResolver
from hoop.server.postgres.ending import Ending
from hoop.server.postgres.holds import Holds
from hoop.server.postgres.messages import NOTICE, NOTIFY, fields_message, masked_fields, masked_notification
from hoop.server.postgres.own_signal import own_signal, signals_another
from hoop.server.postgres.results import BASE_WATCH, UNDESCRIBED, WAIT, Results
from hoop.server.postgres.session_text import SETTLE, SessionText, Settle
from hoop.server.postgres.text_probe import ANSWERED, COMPLETIONS, NOT_OURS, Probing
from hoop.server.postgres.tracker import Tracker, Unit
from hoop.server.postgres.upstream import UpstreamTarget
from hoop.server.session import Session
from hoop.server.sides import TwoSided, write_batch

log = logging.getLogger("hoop.postgres")

# Client message types we inspect (CopyDone and CopyFail end a COPY FROM STDIN; Describe and
# Close are counted, see text_probe.py); everything else is forwarded as is.
CLIENT_WATCH = frozenset(b"QPBEXFScfDC")
# Upstream message types always inspected; results.py adds 'D'/'d' while it reads rows.
UPSTREAM_WATCH = BASE_WATCH

Q, P, B, E, X, F, SYNC, DESCRIBE, CLOSE = (ord(c) for c in "QPBEXFSDC")
HOLD = object()  # returned by a message handler: stop here until an approver decides
CANCELLED = "canceling statement due to user request"  # the server's own wording
CANCEL_TIMEOUT = 5.0  # how long a cancel may wait for the server to close its cancel socket
_STRICTNESS = {"allow": 0, "review": 1, "block": 2}
C_, ERR, Z, T_, D_, COPY_OUT, COPY_DATA, PARAM_STATUS = (ord(c) for c in "CEZTDHdS")
COPY_IN, COPY_BOTH, COPY_DONE, COPY_FAIL = (ord(c) for c in "GWcf")
ANSWERED_BY = frozenset(b"123n")  # ParseComplete, BindComplete, CloseComplete, NoData: counted only


def _cstr_at(buf: memoryview, pos: int) -> tuple[str, int]:
    """A NUL-terminated name at `pos`; looks at a short prefix first since names are short."""
    raw = bytes(buf[pos : pos + 128])
    end = raw.find(b"\0")
    if end < 0:
        raw = bytes(buf[pos:])
        end = raw.find(b"\0")
    if end < 0:
        raise framing.ProtocolViolation("string without NUL terminator")
    return raw[:end].decode("utf-8", "surrogateescape"), pos + end + 1


class Relay(Probing, Holds, Ending, TwoSided):
    """State shared by both directions of one session."""

    GOODBYE = frontend.terminate()

    def __init__(
        self,
        *,
        session: Session,
        max_message: int,
        upstream_target: UpstreamTarget,
        upstream_key: tuple[int, int],
        resolver: ColumnResolver,
        text: SessionText,
    ) -> None:
        self.session = session
        self.log = session.log  # its byte counters are bumped on every read
        self.subject = session.subject
        self.pipeline = session.pipeline
        self.approvals = session.approvals
        self.upstream_target = upstream_target
        self.upstream_key = upstream_key
        self.on_close = session.close
        self.client_framer = framing.MessageFramer(max_message)
        self.upstream_framer = framing.MessageFramer(max_message)
        self.client: asyncio.Transport | None = None
        self.upstream: asyncio.Transport | None = None
        self.tracker = Tracker(self._finish_unit)
        # statement name -> (text, decision, rules version it was decided under, the text mode
        # the server parsed it under: a later judgement must read it the same way)
        self.prepared: dict[str, tuple[str, Decision, int, TextMode]] = {}
        self.portals: dict[str, str] = {}  # portal name -> statement name
        # marker -> (batch it was sent in, the ErrorResponse that replaces the server's)
        self.markers: dict[str, tuple[int, bytes]] = {}
        self.sent_batches = 0  # Query/Sync/FunctionCall messages sent: each ends in ReadyForQuery
        self.done_batches = 0
        self.upstream_watch = UPSTREAM_WATCH
        self.upstream_waiting = False
        # portal -> its Bind while masking applies: read only when an Execute is described by
        # its statement (Describe 'S' shows text formats: `_described` checks the Bind asks for them)
        self.portal_binds: dict[str, bytes] = {}
        # The client's Describe since its last Sync, Parse, Close or Execute: ("S", statement) or
        # ("P", portal). An Execute's rows are masked by the description the server sends for
        # it; while masking applies, an Execute not described right before is refused (UNDESCRIBED).
        self.describing: tuple[str, str] | None = None
        self.results = Results(self, resolver)
        self.txn_status = b"I"
        self.closed = False
        self.done: asyncio.Future[CloseStatus] = asyncio.get_running_loop().create_future()
        self.sql_prepared = PreparedStatements()  # SQL-level PREPARE names, so EXECUTE is judged
        self.hold_task: asyncio.Future[None] | None = None
        self.pending_review: tuple[Decision, str, str, str] | None = None
        self.held_outcome = ""  # the decision on the last held Bind, for its Execute's record
        self.routines_changed: Callable[[], None] = lambda: None  # DDL: the routine catalog may change
        # is a PID the backend of one of this user's sessions on this connection? (the door knows)
        self.pid_is_mine: Callable[[int], bool] = lambda pid: pid == upstream_key[0]
        self.text = text  # how the server reads this session's statement text
        self.settling = False  # a message waits in the client framer until the settings are known
        # COPY FROM STDIN: how many the server started and the client ended, and the batch the
        # last one belongs to (it waits for the client's data until that batch is answered)
        self.copy_ins = self.copy_ends = self.copy_in_batch = 0
        # Statements of the open transaction: its notifications are delivered at COMMIT.
        self.txn_texts: deque[str] = deque(maxlen=64)
        self.upstream_fatal = False

    # -- cancelling (attach and close come from TwoSided, kill and the rest of ending from Ending)

    async def cancel(self) -> None:
        """Forward a client's CancelRequest with the upstream key (the client never sees it).
        While a statement is held, cancelling withdraws the approval request instead; while it
        waits for the parse pool, it is refused (57014) instead of being sent."""
        if self.parse_wait:
            self.cancelled = True
            return
        if self.hold_task is not None:
            self.session.withdraw()
            return
        await self.cancel_upstream()

    async def cancel_upstream(self) -> None:
        """Returns once the server has closed its end: it closes only after signalling the
        backend, and the client's cancel socket stays open until then, so libpq's "the cancel
        is done" still means that a late cancel cannot hit the next statement."""
        t = self.upstream_target
        try:
            async with asyncio.timeout(CANCEL_TIMEOUT):
                r, w = await asyncio.open_connection(t.host, t.port)
                try:
                    w.write(frontend.cancel_request(*self.upstream_key))
                    await w.drain()
                    await r.read(1)  # the server sends nothing back: this is its close
                finally:
                    w.close()
        except (OSError, TimeoutError) as exc:
            log.warning("session %s: cancel request to %s failed: %s", self.session.id, t.name, exc)

    # -- client -> upstream ----------------------------------------------------------------

    def from_client(self, data: bytes) -> None:
        framer = self.client_framer
        framer.feed(data)
        self.log.bytes_in += len(data)
        if self.hold_task is not None or self.settling:
            if framer.pending() > framer.max_message:
                self.client.pause_reading()  # type: ignore[union-attr]
            return  # held: the bytes wait in the framer until the decision (or the settings)
        try:
            view, marks = framer.split_complete(CLIENT_WATCH)
        except framing.ProtocolViolation as exc:
            self._protocol_error(str(exc))
            return
        if not marks:
            if view:
                self.upstream.write(view)  # type: ignore[union-attr]
            return
        out: list[Any] = []
        prev = 0
        for t, start, end in marks:
            if start > prev:
                out.append(view[prev:start])
            prev = end
            try:
                forward = self._client_message(t, view[start:end])
            except framing.ProtocolViolation as exc:
                self._protocol_error(str(exc))
                return
            if t in ANSWERED and forward is not SETTLE and (forward is not HOLD or self.parsing is None):
                self.batch_due += 1  # (a Bind held for approvers is sent once they decide)
            if forward is HOLD:
                self.upstream.writelines(out)  # type: ignore[union-attr]
                self._start_hold(bytes(view[start:end]), bytes(view[end:]) + framer.take_rest())
                return
            if forward is SETTLE:  # this message and the rest wait until the server has answered
                self.upstream.writelines(out)  # type: ignore[union-attr]
                framer.feed(bytes(view[start:]) + framer.take_rest())
                self.settling = True
                self.settle_step()
                return
            out.append(forward)
        if prev < len(view):
            out.append(view[prev:])
        write_batch(self.upstream, out)

    def _client_message(self, t: int, msg: memoryview) -> Any:
        if t == SYNC:
            self.describing = None
            self.sent_batches += 1
            self.batch_due = 0
            self.text.executing = False
            return msg
        if t == DESCRIBE:
            self.describing = (chr(msg[5]), _cstr_at(msg, 6)[0])
            return msg
        if t == CLOSE:
            self.describing = None
            return msg
        if t == Q:
            raw = codec.parse_query(msg[5:])
            text: str | Literal[Settle.SETTLE] | TextModeError
            try:
                text = self.text.read(raw, self._settled())
            except TextModeError as exc:
                text = exc
            if text is SETTLE:
                return SETTLE
            if isinstance(text, str) and self.pipeline.deferred(self.subject, text, self.text.mode):
                return self._parse_first(text, self.text.mode)
            self.sent_batches += 1
            self.batch_due = 0
            self.text.executing = False  # the server answers this Query after all before it
            self.results.statement_started()
            if isinstance(text, TextModeError):
                self.tracker.push(Unit(from_wire(raw), True, "block", "text-mode"))  # recorded as sent
                return self._refuse(None, "query", sqlstate=text.sqlstate, message=str(text))
            if self.cancelled:
                self.cancelled = False
                self.tracker.push(Unit(text, True, "cancelled", ""))
                return self._refuse(None, "query", sqlstate="57014", message=CANCELLED)
            decision, send = self._judge_sent(text, prepared=False)
            self.tracker.push(Unit(text, True, decision.action, decision.rule))
            if decision.action == "review":
                self.pending_review = (decision, text, "query", "")
                return HOLD
            if decision.action != "allow":
                return self._refuse(decision, "query")
            return msg if send is None else frontend.query(send)
        if t == P:
            self.describing = None  # a statement parsed again is no longer the one described
            name, raw, oids = codec.parse_parse(msg[5:])
            try:
                text = self.text.read(raw, self._settled())
            except TextModeError as exc:
                if not name:  # a Parse of the unnamed statement drops the old one, even if it fails
                    self.prepared.pop(name, None)
                # (a named one the server already has stays: the refused Parse does not replace it)
                return self._refuse(None, "parse", name, sqlstate=exc.sqlstate, message=str(exc))
            if text is SETTLE:
                return SETTLE
            if self.pipeline.deferred(self.subject, text, self.text.mode):
                return self._parse_first(text, self.text.mode)
            if self.cancelled:
                self.cancelled = False
                if not name:
                    self.prepared.pop(name, None)
                return self._refuse(None, "parse", name, sqlstate="57014", message=CANCELLED)
            decision, send = self._judge_sent(text, prepared=True)
            if not self._keeps_earlier(name, decision):
                self.prepared[name] = (text, decision, self.pipeline.version, self.text.mode)
            # Parsing runs nothing: a statement under review is held at each Bind instead.
            if decision.action == "block":
                return self._refuse(decision, "parse", name)
            return msg if send is None else frontend.parse(name, send, oids)
        if t == B:
            portal, pos = _cstr_at(msg, 5)
            statement, _ = _cstr_at(msg, pos)
            self.portals[portal] = statement
            if self.describing == ("P", portal):
                self.describing = None  # the portal described is replaced
            if self.results.masker is not None or self.results.policy_active():
                self.portal_binds[portal] = bytes(msg)
            return self._judge_bind(msg, portal, statement)
        if t == E:
            self.results.statement_started()
            portal, _ = _cstr_at(msg, 5)
            # Only while masking applies does the description matter (and a Bind get read).
            undescribed = self.results.policy_active() and not self._described(portal)
            self.describing = None
            prepared = self.prepared.get(self.portals.get(portal, ""))
            unit = Unit(prepared[0] if prepared else "", False)
            if prepared is not None:
                decision = prepared[1]
                unit.decision, unit.rule = decision.action, decision.rule
                if decision.action == "review" and self.held_outcome:
                    unit.decision, self.held_outcome = self.held_outcome, ""
            self.tracker.push(unit)
            self.text.executing = True
            if undescribed:
                unit.decision, unit.rule = "block", "masking"
                return self._refuse(None, "execute", portal, sqlstate="0A000", message=UNDESCRIBED)
            return msg
        if t == X:
            self.session.audit("session.terminate")
            self.said_goodbye = True
            return msg
        if t == COPY_DONE or t == COPY_FAIL:
            self.copy_ends += 1
            return msg
        # FunctionCall ('F') bypasses SQL entirely: judge it as text no parser accepts, so
        # it runs only where no rule applies (fail closed).
        self.sent_batches += 1
        self.batch_due = 0
        self.text.executing = False  # like a Query, answered after everything before it
        decision = self.session.judge("\x00fastpath function call")
        if decision.action == "allow":
            return msg
        self.tracker.push(Unit("<fastpath function call>", True, decision.action, decision.rule))
        return self._refuse(decision, "query")

    def _judge(self, text: str, mode: TextMode) -> Decision:
        decision = self.session.judge(text, self.sql_prepared, mode)
        return self._own_signal(text, decision, prepared=True)[0]

    def _judge_sent(self, text: str, *, prepared: bool) -> tuple[Decision, str | None]:
        """The decision on a Query or Parse, and the text to send in its place if it changes
        (a signal of the session's own backend names its PID: see own_signal)."""
        decision = self.session.judge(text, self.sql_prepared, self.text.mode)
        return self._own_signal(text, decision, prepared=prepared)

    def _own_signal(self, text: str, decision: Decision, *, prepared: bool) -> tuple[Decision, str | None]:
        pid = self.upstream_key[0]
        return own_signal(self.pipeline, self.subject, text, pid, self.pid_is_mine, decision, prepared=prepared)

    def _keeps_earlier(self, name: str, decision: Decision) -> bool:
        """Does an earlier statement of this name outrank the new Parse? The server refuses a
        Parse of a named statement that exists and keeps the old one, so Binds of the name may
        run the earlier text: it keeps deciding while it is the stricter of the two. (An earlier
        refused Parse never reached the server; the unnamed statement is always replaced. A
        name the client closed in between costs at most a stricter decision, never a looser
        one: a Close the server skips after an error would otherwise reopen the hole.)"""
        earlier = self.prepared.get(name)
        if not name or earlier is None or earlier[1].action == "block":
            return False
        text, old, version, mode = earlier
        if version != self.pipeline.version:
            old = self._judge(text, mode)
            self.prepared[name] = (text, old, self.pipeline.version, mode)
        return _STRICTNESS[old.action] > _STRICTNESS[decision.action]

    def _parse_first(self, text: str, mode: TextMode) -> Any:
        """A statement too big to classify on the event loop: the session waits like a held
        statement while the parse pool classifies it, then this message is handled again."""
        self.parsing = (text, mode)
        return HOLD

    def _judge_bind(self, msg: memoryview, portal: str, statement: str) -> Any:
        """Each execution of a prepared statement is judged under the rules in force now: a
        statement prepared before a rule change must not slip past the new rule."""
        entry = self.prepared.get(statement)
        if entry is None:
            return msg  # unknown to us: the server will report it does not exist
        text, decision, version, mode = entry
        if version != self.pipeline.version:
            decision = self._judge(text, mode)
            self.prepared[statement] = (text, decision, self.pipeline.version, mode)
        if decision.action != "block" and signals_another(text, msg, self.pid_is_mine):
            decision = self.session.judge(text, self.sql_prepared, mode)  # as the rules judge it for any PID
        if decision.action == "allow":
            return msg
        if decision.action == "review":
            self.pending_review = (decision, text, "bind", portal)
            return HOLD
        return self._refuse(decision, "bind", portal)

    def _settled(self) -> bool:
        """Has the server answered everything sent so far? Then its last reported settings are
        the ones it will read the next message with."""
        return self.sent_batches == self.done_batches and not self.text.executing

    def _described(self, portal: str) -> bool:
        """Whether the rows of this Execute come right after a description that tells the
        gateway their columns and formats: Describe 'P' of the portal, or Describe 'S' of its
        statement when the Bind asked for text results (a statement's description shows text
        formats; binary rows read as text would pass unmasked)."""
        if self.describing == ("P", portal):
            return True
        if self.describing != ("S", self.portals.get(portal, "")):
            return False
        bind = self.portal_binds.get(portal)
        return bind is not None and not any(codec.parse_bind(memoryview(bind)[5:]).result_formats)

    def _refuse(
        self, decision: Decision | None, kind: str, name: str = "", sqlstate: str = "", message: str = ""
    ) -> bytes:
        """Replace a refused Query/Parse/Bind by one that fails upstream with a marker we then
        rewrite into our error, so the server keeps the protocol's ordering rules. A syntax
        error (decision.sqlstate) is worded as the server words it, with its position."""
        marker = f"hoop-refused-{secrets.token_hex(8)}"
        syntax = decision is not None and bool(decision.sqlstate) and not message
        self.markers[marker] = (
            self.sent_batches,
            codec.error_response(
                "ERROR",
                sqlstate or (decision.sqlstate if decision else "") or "42501",
                message
                or (
                    decision.reason
                    if syntax and decision
                    else f"refused by Hoop: {decision.reason if decision else ''}"
                ),
                hint=None if syntax or not decision else "Ask an approver or administrator if you need this statement.",
                position=decision.position if syntax and decision else None,
            ),
        )
        failing = f'SELECT FROM "{marker}"'
        if kind == "query":
            return frontend.query(failing)
        if kind == "parse":
            return frontend.parse(name, failing)
        if kind == "execute":
            return frontend.execute(marker)  # no such portal: fails with the marker
        return frontend.bind(name, marker, [], [], [])  # no such prepared statement: fails with the marker

    # -- upstream -> client ----------------------------------------------------------------

    def from_upstream(self, data: bytes) -> None:
        framer = self.upstream_framer
        framer.feed(data)
        self.log.bytes_out += len(data)
        out: list[Any] = []  # everything this call forwards, written once at the end
        while not self.upstream_waiting:  # column lookup in flight: bytes wait in the framer
            watch = self.upstream_watch
            try:
                view, marks = framer.split_complete(watch)
            except framing.ProtocolViolation as exc:
                self._upstream_protocol_error(str(exc))
                return
            if not marks:
                if view:
                    out.append(view)
                break
            prev = 0
            # One prefilter pass over the whole buffer: DataRows that overlap none of its spots
            # are proven unchanged and forwarded with the bytes around them, unparsed.
            spots = self.results.row_spots(view) if D_ in watch else None
            # Else rows that only need values masked are rewritten in runs, in place.
            rows = self.results.row_rewriter() if spots is None and D_ in watch else None
            data = bytes(view) if rows is not None else b""
            k = 0
            i, count = 0, len(marks)
            while i < count:
                t, start, end = marks[i]
                if rows is not None:
                    if t == D_:
                        try:
                            i, prev = rows.rewrite_rows(data, marks, i, out, prev)
                        except framing.ProtocolViolation as exc:
                            self._upstream_protocol_error(str(exc))
                            return
                        continue
                    rows = None  # a new result, an error, a limit: back to one by one
                i += 1
                if spots is not None:
                    if t == D_:
                        while k < len(spots) and spots[k][1] <= start:
                            k += 1
                        if k == len(spots) or spots[k][0] >= end:
                            continue
                    else:
                        spots = None  # a new result, an error, a limit: back to one by one
                if start > prev:
                    out.append(view[prev:start])
                prev = end
                try:
                    forward = self._upstream_message(t, view[start:end])
                except framing.ProtocolViolation as exc:
                    self._upstream_protocol_error(str(exc))
                    return
                if forward is WAIT:  # forward up to here, resolve columns, then go on
                    out.append(view[start:end])
                    self._wait_for_columns(bytes(view[end:]) + framer.take_rest())
                    break
                if forward is not None:
                    out.append(forward)
                if self.upstream_watch is not watch:
                    # Rows after this message must be split with the new watch set.
                    framer.feed(bytes(view[end:]) + framer.take_rest())
                    break
            else:
                if prev < len(view):
                    out.append(view[prev:])
                break
        if out:
            write_batch(self.client, out)

    def _upstream_message(self, t: int, msg: memoryview) -> Any:
        if self.probe is not None and self.batch_got >= self.probe.after:
            mine = self.probe_reply(t, msg)
            if mine is not NOT_OURS:
                return mine
        if t in COMPLETIONS:
            self.completion(t)
        tracker = self.tracker
        if t == D_ or t == COPY_DATA:
            return self.results.row(t, msg)
        if t == T_ or t == COPY_OUT:
            return self.results.start(t, msg)
        if t == C_:
            tracker.command_complete(bytes(msg[5:-1]).decode("utf-8", "replace"))
            return self.results.end(msg)
        if t == ERR:
            fields = codec.parse_error_fields(msg[5:])
            self.upstream_fatal = fields.get("V", fields.get("S")) in ("FATAL", "PANIC")
            text = fields.get("M", "")
            for marker in self.markers:
                if marker in text:
                    replacement = self.markers.pop(marker)[1]
                    if tracker.current is not None:
                        tracker.current.error = "refused by policy"
                    tracker.error(codec.parse_error_fields(replacement[5:]).get("M", ""))
                    return replacement
            masker = self.results.message_masker()
            masked = masked_fields(masker, fields, self._statement()) if masker is not None else None
            if masked is not None:
                msg, text = memoryview(fields_message(b"E", masked)), masked.get("M", "")
            if self.results.tripped is not None:
                tracker.error(self.results.problem)
            else:
                tracker.error(f"{fields.get('C', '')} {text}")
            return self.results.end(msg)
        if t == NOTICE or t == NOTIFY:
            return self._message(t, msg)
        if t == PARAM_STATUS:
            name, value = codec.parse_parameter_status(msg[5:])
            self.text.parameter_status(name, value)
            return msg
        if t == Z:
            self.txn_status = bytes(msg[5:6])
            tracker.ready()
            if self.txn_status == b"I":
                self.txn_texts.clear()
            self.done_batches += 1
            self.ready()
            if self.markers:
                # Markers of finished batches were skipped by the server after an earlier error.
                done = self.done_batches
                self.markers = {k: v for k, v in self.markers.items() if v[0] >= done}
            return msg
        if t == COPY_IN or t == COPY_BOTH:
            self.copy_ins += 1
            self.copy_in_batch = self.done_batches + 1
            return msg
        if t in ANSWERED_BY:
            return msg
        tracker.end_of_portal()  # EmptyQueryResponse or PortalSuspended
        return msg

    def _statement(self) -> str:
        unit = self.tracker.current
        return unit.text if unit is not None else ""

    def _message(self, t: int, msg: memoryview) -> Any:
        """A NoticeResponse or NotificationResponse: masked when a rule masks anything."""
        masker = self.results.message_masker()
        if masker is None:
            return msg
        if t == NOTIFY:  # sent by this backend: by the current statement or one before it in the transaction
            statements = "\n".join([*self.txn_texts, self._statement()])
            new = masked_notification(masker, msg, self.upstream_key[0], statements)
            return msg if new is None else new
        masked = masked_fields(masker, codec.parse_error_fields(msg[5:]), self._statement())
        return msg if masked is None else fields_message(b"N", masked)

    def _watch_changed(self) -> None:
        self.results.update_watch()  # the questions' DataRows are read while they are asked

    def answered(self) -> bool:
        if self.hold_task is not None or self.settling or self.upstream_waiting:
            return False  # client messages still wait to be sent, or answers to be read
        if self.sent_batches == self.done_batches:
            return True  # (what follows the last Sync is never answered: the server waits for one)
        # The server waits for COPY data the client did not send before its end of input.
        return self.done_batches < self.copy_in_batch and self.copy_ends < self.copy_ins

    def _wait_for_columns(self, rest: bytes) -> None:
        self.upstream_waiting = True
        self.upstream.pause_reading()  # type: ignore[union-attr]
        self.upstream_framer.feed(rest)
        asyncio.ensure_future(self._resolve_then_resume())

    async def _resolve_then_resume(self) -> None:
        await self.results.resolve()
        if self.closed:
            return
        self.upstream_waiting = False
        self.upstream.resume_reading()  # type: ignore[union-attr]
        self.from_upstream(b"")
