"""The data path of one MySQL session once both sides are logged in.

Client commands are read one logical packet at a time; the policy looks at COM_QUERY,
COM_STMT_PREPARE and COM_INIT_DB text, everything else is judged by its command byte. A
refused command never goes upstream: the gateway answers it with an ERR packet in its turn
(MySQL answers commands strictly in order, so a queue of `Unit`s keeps our answers and the
server's in sequence). Responses are parsed by `results.Responses`, which owns that queue and
tells the relay what the answers said through the `ResponseEvents` methods below.

Text is read as the server reads it (session_vars.py): decoded with the session's character
set and classified under its sql_mode, both as the server last reported them. A command whose
text could read differently under other settings waits until every earlier command is
answered (a change they make is reported in their answers), and, when an earlier command may
have run code the gateway did not read (a routine, a view, a trigger, dynamic SQL), until the
gateway has asked the server for the settings again.

Ids: the handshake carries the gateway's own connection id (it is sent before the upstream
exists), `CONNECTION_ID()` the server's thread id. `KILL [QUERY] <id>` and COM_PROCESS_KILL
take either, for live sessions of the same Hoop user only, and are mapped to that session's
upstream thread; any other id is unknown, since every session of a connection shares the
upstream account and could otherwise kill other people's queries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Coroutine
from typing import Any

from hoop.core.guardrails import OTHER_SESSIONS_RULE
from hoop.core.masking import ColumnRef, MaskPolicy
from hoop.core.pipeline import Decision
from hoop.core.sql import PreparedStatements
from hoop.core.sql.textmode import TextMode, TextModeError
from hoop.core.store.records import CloseStatus
from hoop.server.mysql import codec as c
from hoop.server.mysql import packets as p
from hoop.server.mysql import result_lineage
from hoop.server.mysql.ending import Ending
from hoop.server.mysql.holds import KILL_BY_ID, DoorState, HoldsAndKills, Step, runs_kill
from hoop.server.mysql.lineage_catalog import CatalogUnreadable
from hoop.server.mysql.response_events import Derived, Unit
from hoop.server.mysql.results import Responses
from hoop.server.mysql.session_vars import Settings, touches_tracking
from hoop.server.mysql.text_settings import (
    ER_SETTINGS,
    TextSettings,
    depends_on_settings,
    may_run_unseen,
    sets_something,
    settings_change_midway,
)
from hoop.server.mysql.upstream import MySQLTarget
from hoop.server.session import Session
from hoop.server.sides import TwoSided, write_batch

log = logging.getLogger("hoop.mysql")
# Commands answered by a single OK / ERR / EOF packet.
_SINGLE = {
    c.COM_PING: "",
    c.COM_STMT_RESET: "",
    c.COM_SET_OPTION: "",
    c.COM_RESET_CONNECTION: "",
    c.COM_DEBUG: "",
    c.COM_REFRESH: "FLUSH",
    c.COM_SHUTDOWN: "SHUTDOWN",
}
_NO_REPLY = (c.COM_STMT_CLOSE, c.COM_STMT_SEND_LONG_DATA)
ER_BLOCKED = (1142, "42000")
ER_SYNTAX = (1064, "42000")


class Relay(HoldsAndKills, TextSettings, Ending, TwoSided):
    """State shared by both directions of one session."""

    GOODBYE = c.encode_packet(bytes((c.COM_QUIT,)), 0)

    def __init__(
        self,
        *,
        session: Session,
        max_message: int,
        caps: int,
        upstream_caps: int,
        settings: Settings,
        target: MySQLTarget,
        upstream_id: int,
        gateway_id: int,
        door: DoorState,
        allow_local_infile: bool,
    ) -> None:
        self.session = session
        self.log = session.log  # its byte counters are bumped on every read
        self.subject = session.subject
        self.pipeline = session.pipeline
        self.caps = caps
        self.target = target
        self.upstream_id = upstream_id
        self.gateway_id = gateway_id
        self.door = door
        self.allow_local_infile = allow_local_infile
        self.on_close = session.close
        self.client_framer = c.PacketFramer(max_message)
        self.max_held_bytes = max_message
        self.settings = settings
        self.mode: TextMode | None = None  # the settings' TextMode while they can be read
        self._settings_changed()
        self.unsynced = False  # code the gateway did not read may have run since the last report
        self.deferred: tuple[int, bytes] | None = None  # a command waiting for earlier answers
        self.responses = Responses(self, caps, upstream_caps)
        self.units: deque[Unit] = self.responses.units  # the parser's queue: commands are added here
        self.prepared = PreparedStatements()  # SQL-level PREPARE / EXECUTE
        # COM_STMT_PREPARE id -> its text and the mode it was read under, judged again at each execute
        self.stmts: dict[int, tuple[str, TextMode]] = {}
        self.client: asyncio.Transport | None = None
        self.upstream: asyncio.Transport | None = None
        self.client_infile = False  # the client is uploading a LOCAL INFILE (allowed connections only)
        self.hold_task: asyncio.Future[None] | None = None
        self.closed = False
        self.done: asyncio.Future[CloseStatus] = asyncio.get_running_loop().create_future()
        self._completed: list[Unit] = []  # answered during this `from_upstream`, recorded after the write
        self._tasks: set[asyncio.Task[Any]] = set()
        self._resume: tuple[int, bytes] | None = None  # a deferred command whose turn has come
        self.database = target.database or ""  # unqualified names resolve here (the server reports changes)
        self._catalog_read: asyncio.Task[None] | None = None  # a paused result's catalog lookup

    # -- ending (attach and close come from TwoSided, kill from HoldsAndKills) ---------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def upstream_write(self, data: bytes) -> None:
        if self.upstream is not None and not self.upstream.is_closing():
            self.upstream.write(data)

    # -- client -> upstream ----------------------------------------------------------------

    def from_client(self, data: bytes) -> None:
        framer = self.client_framer
        if self._quick_query(data):
            self.log.bytes_in += len(data)
            return
        if data:
            framer.feed(data)
            self.log.bytes_in += len(data)
        if self.hold_task is not None or self.deferred is not None:
            if framer.buffered > self.max_held_bytes:
                self.client.pause_reading()  # type: ignore[union-attr]
            return  # held: later commands wait in the framer until the decision
        try:
            if self.client_infile:
                self._infile_data()
            if self.deferred is None and self._resume is not None and not self.closed:
                seq, payload = self._resume
                self._resume = None
                if self._command(seq, payload) is _HOLD or self.closed:
                    return
            while not self.client_infile and (pkt := framer.next()) is not None:
                if self._command(pkt[0], pkt[1]) is _HOLD:
                    return
                if self.closed:
                    return
        except (c.ProtocolViolation, IndexError) as exc:
            self._protocol_error(str(exc))

    def _quick_query(self, data: bytes) -> bool:
        """The hot path of a query loop: `data` is exactly one COM_QUERY packet, nothing is
        pending or held, and the pipeline allows it (for a repeated text, a hit in its cache),
        so the packet goes upstream as it arrived, without reframing. Anything else returns
        False for the full path."""
        n = len(data)
        if (
            n < 6
            or data[4] != c.COM_QUERY
            or data[0] | data[1] << 8 | data[2] << 16 != n - 4
            or n - 4 >= c.MAX_CHUNK
            or self.hold_task is not None
            or self.client_infile
            or self.client_framer.buffered
            or self.caps & c.CLIENT_QUERY_ATTRIBUTES
            or self.deferred is not None
            or self._resume is not None
            or (mode := self.mode) is None
        ):
            return False
        raw = data[5:]
        if (self.units or self.unsynced) and depends_on_settings(raw):
            return False
        if b"_" in raw and touches_tracking(raw):  # the full path refuses it
            return False
        try:  # ASCII reads as ASCII in every client character set
            text = raw.decode("ascii") if raw.isascii() else mode.decode(raw)
        except TextModeError:
            return False
        if self.pipeline.deferred(self.subject, text, mode):
            return False  # a big statement: classified off the event loop (`_parse_first`)
        decision = self.session.judge(text, self.prepared, mode)
        if (
            decision.action != "allow"
            or decision.classification is None
            or runs_kill(decision)
            or sets_something(decision)
        ):
            return False
        self.unsynced = self.unsynced or may_run_unseen(decision)
        self.units.append(Unit(text, "result", "allow", decision.rule))
        self.upstream_write(data)
        return True

    def _infile_data(self) -> None:
        got = self.client_framer.split_complete()
        if got is None:
            return
        buf, marks = got
        for _, start, end in marks:
            if start == end:  # the empty packet ends the upload
                self.client_infile = False
                rest = buf[end:]
                self.upstream_write(buf[:end])
                if rest:
                    self.client_framer.feed(rest)  # commands after the upload (not expected)
                return
        self.upstream_write(buf)

    def _command(self, seq: int, payload: bytes) -> Step:
        if not payload:
            raise c.ProtocolViolation("empty packet where a command was expected")
        cmd = payload[0]
        if cmd in (c.COM_QUERY, c.COM_STMT_PREPARE, c.COM_INIT_DB) and self._must_wait(seq, payload):
            return _HOLD
        if cmd == c.COM_QUERY:
            raw = p.parse_com_query(payload, self.caps)
            return self._text_command(seq, payload, raw, "result")
        if cmd == c.COM_STMT_PREPARE:
            return self._text_command(seq, payload, payload[1:], "prepare")
        if cmd == c.COM_STMT_EXECUTE:
            return self._execute(seq, payload)
        if cmd == c.COM_STMT_FETCH:
            return self._forward(
                seq,
                payload,
                Unit("", "fetch", record=False, binary=True, stmt_id=int.from_bytes(payload[1:5], "little")),
            )
        if cmd in _NO_REPLY:
            if cmd == c.COM_STMT_CLOSE:
                self.stmts.pop(int.from_bytes(payload[1:5], "little"), None)
            return self._forward(seq, payload, None)
        if cmd == c.COM_INIT_DB:
            return self._text_command(seq, payload, payload[1:], "single", init_db=True)
        if cmd == c.COM_FIELD_LIST:
            return self._forward(seq, payload, Unit("", "fields", record=False))
        if cmd == c.COM_STATISTICS:
            return self._forward(seq, payload, Unit("", "stats", record=False))
        if cmd == c.COM_PROCESS_INFO:
            return self._statement(seq, payload, "SHOW PROCESSLIST", "result")
        if cmd == c.COM_PROCESS_KILL and len(payload) >= 5:
            return self._kill(seq, payload, int.from_bytes(payload[1:5], "little"), False, "<COM_PROCESS_KILL>")
        if cmd == c.COM_QUIT:
            self.session.audit("session.terminate")
            self.said_goodbye = True
            self.upstream_write(c.encode_packet(payload, seq))
            self.close(CloseStatus.CLOSED)
            return None
        if cmd in _SINGLE:
            if cmd == c.COM_RESET_CONNECTION:
                self.stmts.clear()
                self.prepared = PreparedStatements()
                # The reset puts session_track_system_variables back to the global default:
                # ask for the reports again right behind it.
                self._forward(seq, payload, Unit("", "single", record=False))
                self._resync()
                return None
            if _SINGLE[cmd]:
                return self._statement(seq, payload, _SINGLE[cmd], "single")
            return self._forward(seq, payload, Unit("", "single", record=False))
        self.session.audit("command.refused", command=cmd)
        return self._reply(
            seq,
            Unit(f"<command 0x{cmd:02x}>", "single", "block", "protocol"),
            1047,
            "08S01",
            f"command 0x{cmd:02x} is not supported through Hoop",
        )

    def _statement(
        self, seq: int, payload: bytes, text: str, kind: str, record: bool = True, mode: TextMode | None = None
    ) -> Step:
        mode = mode or self.mode or TextMode()
        if self.pipeline.deferred(self.subject, text, mode):
            return self._parse_first(seq, payload, text, kind, record, mode)
        decision = self.session.judge(text, self.prepared, mode)
        own_kill = kind == "result" and KILL_BY_ID.fullmatch(text) is not None
        if own_kill and decision.rule == OTHER_SESSIONS_RULE:  # mapped below to the user's own session
            decision = Decision("allow", classification=decision.classification)
        unit = Unit(text, kind, decision.action, decision.rule, record=record and kind != "prepare", mode=mode)
        if decision.action == "block":
            return self._refuse(seq, unit, decision)
        if kind == "result" and settings_change_midway(decision):
            return self._reply(
                seq,
                unit,
                *ER_SETTINGS,
                "refused by Hoop: a statement that can change sql_mode or the client character set must be "
                "the last one of a text (the server reads what follows under the new settings); send the rest "
                "as its own query",
            )
        if decision.action == "review" and kind != "prepare":  # preparing runs nothing: held at execute
            self._start_hold(seq, payload, unit, decision)
            return _HOLD
        if kind == "result" and (m := KILL_BY_ID.fullmatch(text)):
            return self._kill(seq, payload, int(m.group(2)), bool(m.group(1) and m.group(1)[0] in "qQ"), text)
        if runs_kill(decision):
            return self._reply(
                seq,
                unit,
                1094,
                "HY000",
                "KILL through Hoop takes one connection id of your own sessions (KILL [QUERY] <id>) as the whole "
                "statement",
            )
        return self._allowed(seq, payload, unit, decision)

    def _parse_first(self, seq: int, payload: bytes, text: str, kind: str, record: bool, mode: TextMode) -> Step:
        """A statement too big to classify on the event loop: the session waits like a held
        statement (later commands stay in the framer) while the parse pool classifies it, then
        the command is judged as any other."""

        async def classified() -> None:
            await self.pipeline.parse_ahead(self.subject, text, mode)
            if self.closed:
                return
            self.hold_task = None
            if self._statement(seq, payload, text, kind, record, mode) is _HOLD or self.closed:
                return  # held for approval now, or the session ended
            self.resume_client()

        self.hold_task = asyncio.ensure_future(classified())
        return _HOLD

    def _execute(self, seq: int, payload: bytes) -> Step:
        """Each execution of a prepared statement is judged under the rules in force now (the
        pipeline's cache makes that a dictionary lookup): a statement prepared before a rule
        change cannot slip past it, and a statement under review is held at every execution."""
        stmt_id = int.from_bytes(payload[1:5], "little")
        known = self.stmts.get(stmt_id)
        if known is None:  # unknown to us: the server will say so
            return self._forward(
                seq, payload, Unit("<unknown prepared statement>", "result", binary=True, stmt_id=stmt_id)
            )
        text, mode = known  # read under the settings of its COM_STMT_PREPARE, as the server did
        decision = self.session.judge(text, self.prepared, mode)
        unit = Unit(text, "result", decision.action, decision.rule, binary=True, stmt_id=stmt_id)
        self.unsynced = True  # a prepared statement may run anything: ask again before judging text
        if decision.action == "block":
            return self._refuse(seq, unit, decision)
        if decision.action == "review":
            self._start_hold(seq, payload, unit, decision)
            return _HOLD
        return self._forward(seq, payload, unit)

    def _refuse(self, seq: int, unit: Unit, decision: Decision) -> Step:
        if decision.sqlstate:  # a syntax error: answered as the server words it, near where it is
            return self._reply(seq, unit, *ER_SYNTAX, _syntax_message(unit.text, decision))
        return self._reply(seq, unit, *ER_BLOCKED, f"refused by Hoop: {decision.reason}")

    def _allowed(self, seq: int, payload: bytes, unit: Unit, decision: Decision) -> Step:
        self.unsynced = self.unsynced or may_run_unseen(decision)
        return self._forward(seq, payload, unit)

    def _forward(self, seq: int, payload: bytes, unit: Unit | None) -> Step:
        """Send a client command upstream; `seq` is its last wire packet's id, as framed."""
        if unit is not None:
            unit.started = time.time()
            self.units.append(unit)
        self.upstream_write(c.encode_packet(payload, c.first_seq(seq, len(payload))))
        return None

    def _reply(self, seq: int, unit: Unit, code: int, sqlstate: str, message: str) -> Step:
        """Answer a command ourselves, in its turn among the responses still on their way."""
        unit.error = message
        unit.reply = c.encode_packet(p.build_err(code, sqlstate, message[:2000]), seq + 1)
        self.units.append(unit)
        if len(self.units) == 1:
            self._flush_replies()
        return None

    # -- upstream -> client ----------------------------------------------------------------

    def from_upstream(self, data: bytes) -> None:
        self.log.bytes_out += len(data)
        try:
            out = self.responses.feed(data)
        except c.ProtocolViolation as exc:
            out = []
            self.close(
                CloseStatus.UPSTREAM_ERROR,
                c.encode_packet(
                    p.build_err(
                        2027, "HY000", f"connection {self.subject.connection}: server sent invalid data: {exc}"
                    ),
                    0,
                ),
            )
        self._deliver(out)

    def _deliver(self, out: list[Any]) -> None:
        if out and self.client is not None:
            write_batch(self.client, out)
        if self._completed:  # recorded after the answer is on its way: off the client's wait
            completed, self._completed = self._completed, []
            for unit in completed:
                self._finish(unit)
        if self.responses.paused is not None and self._catalog_read is None and not self.closed:
            self._read_catalog()

    def _read_catalog(self) -> None:
        """A result's mask plan needs the upstream catalog: its rows wait (upstream reading
        paused, what already arrived stays in the parser) while a side connection reads it;
        a catalog that cannot be read refuses the result."""
        assert self.responses.paused is not None
        unit, cols = self.responses.paused
        if self.upstream is not None:
            self.upstream.pause_reading()
        cache = self.door.lineage.of(self.subject.connection)
        text = unit.text

        async def read() -> None:
            error = None
            try:
                await result_lineage.load(cache, self.target, self.database, text, cols)
            except CatalogUnreadable as exc:
                error = f"masking needs the catalog to follow this result's columns, and {exc}"
            except Exception as exc:  # noqa: BLE001 - fail closed, whatever went wrong
                log.warning("session %s: lineage failed: %r", self.session.id, exc)
                error = "masking could not follow this result's columns"
            self._catalog_read = None
            if self.closed:
                return
            try:
                out = self.responses.resume(error)
            except c.ProtocolViolation as exc:
                self.close(CloseStatus.UPSTREAM_ERROR)
                log.warning("session %s: %s", self.session.id, exc)
                return
            if self.upstream is not None and self.responses.paused is None:
                self.upstream.resume_reading()
            self._deliver(out)

        self._catalog_read = asyncio.ensure_future(read())
        self._tasks.add(self._catalog_read)
        self._catalog_read.add_done_callback(self._tasks.discard)

    def unit_done(self, unit: Unit) -> None:
        if unit.record:
            unit.ended = time.time()
            self._completed.append(unit)
        self._flush_replies()
        if self.deferred is not None and not self.units:
            # Every earlier command is answered: the deferred one is judged under the settings
            # now known, after this response has been written (not inside its parsing).
            self._resume, self.deferred = self.deferred, None
            asyncio.get_running_loop().call_soon(self._resume_deferred)

    def _resume_deferred(self) -> None:
        if not self.closed:
            self.resume_client()  # reading was paused if much arrived while the command waited

    def answered(self) -> bool:
        if self.client_infile:
            return True  # the server waits for a file the client can no longer send
        return not self.units and self.hold_task is None and self.deferred is None and self._resume is None

    def _flush_replies(self) -> None:
        units = self.units
        while units and (reply := units[0].reply) is not None:
            unit = units.popleft()
            if not self.responses.queue_reply(reply) and self.client is not None:
                self.client.write(reply)
            if unit.record:
                self._finish(unit)

    def prepared_ok(self, unit: Unit, stmt_id: int) -> None:
        self.stmts[stmt_id] = (unit.text, unit.mode or TextMode())

    def infile_requested(self) -> bool:
        if self.allow_local_infile:
            self.client_infile = True  # the upload is relayed as it comes (`_infile_data`)
        return self.allow_local_infile

    def audit(self, action: str, **detail: object) -> None:
        self.session.audit(action, **detail)

    # -- masking -----------------------------------------------------------------------------

    def mask_policy(self) -> MaskPolicy:
        policy: MaskPolicy = self.pipeline.mask_policy(self.subject)
        return policy

    def resolve_columns(self, refs: list[ColumnRef | None]) -> list[ColumnRef | None]:
        return self.door.views.resolve(self.target, refs)

    def derived_columns(self, policy: MaskPolicy, text: str, cols: list[p.ColumnDefinition]) -> Derived | None:
        cache = self.door.lineage.of(self.subject.connection)
        return result_lineage.derived_columns(cache, policy, self.database, text, cols)

    def database_reported(self, name: str) -> None:
        self.database = name

    def limit_reached(self, unit: Unit) -> None:
        self.session.audit("result.limit", text=unit.text[:2000])
        self._spawn(self.interrupt(query_only=True))  # stop the server streaming rows we discard


_HOLD = object()


def _syntax_message(text: str, decision: Decision) -> str:
    """The server's wording of error 1064: the text from the error on, and its line."""
    if decision.position is None:
        return f"You have an error in your SQL syntax ({decision.reason})"
    at = decision.position - 1
    line = text.count("\n", 0, at) + 1
    near = text[at : at + 80]
    return f"You have an error in your SQL syntax ({decision.reason}) near '{near}' at line {line}"
