"""Upstream -> client half of a MySQL session: find where each response ends, mask rows.

MySQL answers strictly one command at a time, so a FIFO of `Unit`s (one per command that
expects an answer) tells which command every packet belongs to. The state machine only looks
at the first byte and length of each packet: OK / ERR / LOCAL INFILE / column count, column
definitions, rows, end of rows (EOF, or OK with the 0xFE header under DEPRECATE_EOF).
Untouched packets are forwarded as slices of what arrived; rows are rewritten only when the
mask plan for the result set changes something. Binary rows (prepared statements) are decoded
only for the columns the plan touches.

Upstream always speaks CLIENT_SESSION_TRACK: every OK packet is read with the upstream's
capabilities, its reported settings go to the owner (session_vars.py), and clients that did not
ask for session tracking get the OK packet in their own layout.

The parser owns the queue of `Unit`s and tells its owner what happened through the
`ResponseEvents` it was given (response_events.py). Sampled statements (recording.sampled) keep
their first result set's column names and first rows as the client got them, masked.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from hoop.core.masking import MaskPlan, MaskPolicy
from hoop.core.message_masking import MessageMasker, SeenValues
from hoop.core.recording import SAMPLE_EVERY, SAMPLE_FIRST, SAMPLE_ROWS, sample_value, sampled
from hoop.server.mysql import binary_rows
from hoop.server.mysql import codec as c
from hoop.server.mysql import packets as p
from hoop.server.mysql.mask_columns import TYPE_HINTS, binary_of, column_ref, text_of
from hoop.server.mysql.messages import is_show_warnings, masked_err, warnings_plan
from hoop.server.mysql.response_events import ResponseEvents, Unit
from hoop.server.mysql.result_lineage import LineageRefused, NeedsCatalog
from hoop.server.mysql.session_vars import for_client, parse_state, reported_schema

FIRST, COLS, COLS_EOF, ROWS, PREPARE, SKIP, INFILE = range(7)


class Responses:
    """The upstream side's parsing state; `feed` returns what to write to the client."""

    def __init__(self, events: ResponseEvents, caps: int, upstream_caps: int | None = None) -> None:
        self.events = events
        self.units: deque[Unit] = deque()  # commands waiting for their answer, oldest first
        self.deprecate_eof = bool(caps & c.CLIENT_DEPRECATE_EOF)
        self.client_caps = caps
        self.caps = caps if upstream_caps is None else upstream_caps  # how the server's packets are laid out
        self.framer = c.PacketFramer()
        self.state = FIRST
        self.remaining = 0
        self.columns: list[p.ColumnDefinition] | None = None  # parsed only when masking may apply
        self.ncols = 0
        self.policy: MaskPolicy | None = None  # as asked at the start of the current result set
        self.plan: MaskPlan | None = None
        self.limits: tuple[int | None, int | None] = (None, None)
        self.bytes = 0
        self.discard = False  # the client already got its final packet for this unit
        self.continued = False  # previous wire packet was a full 16 MiB chunk
        self.stmt_columns: dict[int, list[p.ColumnDefinition]] = {}
        # Rows that are neither masked, limited nor sampled are only counted: `feed` does that inline.
        self.plain_rows = False
        self.results = 0  # result sets of recorded statements so far: which are sampled
        self.sample_left = 0  # rows of the current result set still to sample
        self._inject: list[bytes] | None = None  # while `feed` runs: gateway replies due behind it
        self.seen = SeenValues()  # values masked whole in this session's results (for messages)
        self.messages: MessageMasker | None = None
        self.last_statement = ""
        # A result whose mask plan waits for the upstream catalog (result_lineage.py): its
        # unit and column definitions; its rows stay in the framer until `resume`.
        self.paused: tuple[Unit, list[p.ColumnDefinition]] | None = None
        self.rows_seq = 0  # the sequence id an answer in place of the next row would carry
        self.stmt_texts: dict[int, str] = {}  # prepared statement id -> text (its cursor fetches)

    # -- entry -------------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[Any]:
        held = self.paused
        if held is not None:
            self.framer.feed(data)  # held until the plan exists
            return []
        got = self.framer.feed_and_split(data)
        if got is None:
            return []
        buf, marks = got
        if self.state == FIRST and self._whole_plain_result(buf, marks):
            return [buf]
        out: list[Any] = []
        prev = 0  # start of the run of packets forwarded unchanged
        spots: list[tuple[int, int]] | None = None  # where rows ahead may need masking
        asked = False  # spots were asked for the current run of rows
        k = 0
        inject: list[bytes] = []
        self._inject = inject
        try:
            for seq, start, end in marks:
                if self.continued:  # the rest of a >16 MiB packet travels with its head
                    self.continued = end - start == c.MAX_CHUNK
                    if self.discard:
                        out.append(buf[prev : start - 4])
                        prev = end
                    continue
                self.continued = end - start == c.MAX_CHUNK
                if self.plain_rows and end > start and buf[start] < c.EOF_HEADER:
                    self.units[0].rows += 1  # a row (0xFE / 0xFF: the end or an error, below)
                    continue
                if self.state == ROWS and end > start and buf[start] < c.EOF_HEADER and end - start < c.MAX_CHUNK:
                    if not asked:  # one prefilter pass over every row left in this read
                        asked, k = True, 0
                        spots = self._row_spots(buf, start)
                    if spots is not None:
                        while k < len(spots) and spots[k][1] <= start:
                            k += 1
                        if k == len(spots) or spots[k][0] >= end:
                            self.units[0].rows += 1  # overlaps no spot: unchanged, certainly
                            continue
                else:
                    asked, spots = False, None  # the end of the rows, an error, another result
                replacement = self._packet(seq, buf, start, end)
                if replacement is not None:
                    if start - 4 > prev:
                        out.append(buf[prev : start - 4])
                    if replacement:
                        out.append(replacement)
                    prev = end
                if inject:  # gateway answers queued behind this response go right after it
                    if end > prev:
                        out.append(buf[prev:end])
                    out += inject
                    inject.clear()
                    prev = end
                if self.paused is not None:  # the rest waits for the catalog, in the framer
                    if end > prev:
                        out.append(buf[prev:end])
                    rest = self.framer.take_rest()
                    self.framer.feed(bytes(buf[end:]) + rest)
                    prev = len(buf)
                    break
        finally:
            self._inject = None
        if prev < len(buf):
            out.append(buf[prev:] if prev else buf)
        return out

    def _row_spots(self, buf: bytes, start: int) -> list[tuple[int, int]] | None:
        """Where the text rows of the current result, from `start` on, may need masking
        (MaskPlan.spots, offsets into `buf`); None when they must be read one by one (limits,
        samples, a refusal, binary rows, a plan that masks whole columns)."""
        plan, units = self.plan, self.units
        if plan is None or not units or units[0].binary or self.limits != (None, None):
            return None
        if self.sample_left or self.discard:
            return None
        spots = plan.spots(memoryview(buf)[start:])
        return None if spots is None else [(a + start, b + start) for a, b in spots]

    def queue_reply(self, reply: bytes) -> bool:
        """A gateway answer whose turn came while `feed` parses a response is sent right after
        that response; returns False outside `feed` (the caller writes it itself)."""
        if self._inject is None:
            return False
        self._inject.append(reply)
        return True

    def _masking(self) -> bool:
        """Asks the owner for the masking rules now: True when rows may need looking at."""
        policy = self.policy = self.events.mask_policy()
        return bool(policy.active or policy.max_rows or policy.max_bytes or policy.exempted)

    def _sampling(self) -> bool:
        """Is this result set of a recorded statement sampled? Counts it."""
        n = self.results
        self.results = n + 1
        return sampled(n)

    def _whole_plain_result(self, buf: bytes, marks: list[tuple[int, int, int]]) -> bool:
        """The common answer in one read: a single text result set, complete, nothing to mask or
        limit, no other command waiting. It is counted here in one pass and forwarded as it
        came; anything else (returns False, nothing changed) goes packet by packet below."""
        units = self.units
        if len(units) != 1 or self.discard or self.continued:
            return False
        policy = self.policy = self.events.mask_policy()  # `_masking`, inline: this runs per statement
        if policy.active or policy.max_rows or policy.max_bytes or policy.exempted:
            return False
        unit = units[0]
        if unit.kind != "result" or unit.binary or unit.reply is not None:
            return False
        n = self.results
        if unit.record and (n < SAMPLE_FIRST or not n % SAMPLE_EVERY):  # `recording.sampled`, inline
            return False  # the full path keeps the sample
        _, start, end = marks[0]
        ncols = buf[start] if end - start == 1 else 0  # column count, one byte: 1..250
        if not 0 < ncols < 0xFB:
            return False
        first_row = 1 + ncols + (0 if self.deprecate_eof else 1)  # after the column definitions
        last = len(marks) - 1
        if last < first_row:
            return False
        for _, start, end in marks[first_row:last]:
            if end == start or buf[start] >= c.EOF_HEADER or end - start >= c.MAX_CHUNK:
                return False  # an empty, error, EOF-like or split row: the full path decides
        _, start, end = marks[last]
        if end == start or buf[start] != c.EOF_HEADER or not (end - start < 9 or self.deprecate_eof):
            return False
        payload = buf[start:end]
        status = p.parse_eof(payload)[1] if end - start < 9 else p.parse_ok(payload, self.caps).status
        if status & (c.SERVER_MORE_RESULTS_EXISTS | c.SERVER_STATUS_CURSOR_EXISTS | c.SERVER_SESSION_STATE_CHANGED):
            return False
        unit.rows += last - first_row
        self.results += unit.record
        self._done()
        return True

    # -- one packet: returns None to forward it, else the bytes to send instead --------------

    def _packet(self, seq: int, buf: bytes, start: int, end: int) -> bytes | None:
        units = self.units
        unit = units[0] if units else None
        if unit is None:
            return None  # nothing asked (e.g. a server-side disconnect notice): pass through
        first = buf[start] if end > start else -1
        drop = b"" if self.discard or unit.internal else None
        state = self.state
        if state == FIRST and unit.kind == "fetch":
            self.columns = self.stmt_columns.get(unit.stmt_id)
            self._rows_begin(unit, seq)
            state = ROWS
        if state == ROWS:
            if first == c.EOF_HEADER and end - start < c.MAX_CHUNK and (end - start < 9 or self.deprecate_eof):
                plain = self._end_of_rows(buf[start:end])
                return drop if drop is not None or plain is None else c.encode_packet(plain, seq)
            if first == c.ERR_HEADER:
                res = self._error(unit, seq, buf[start:end])
                return drop if drop is not None else res
            unit.rows += 1
            if self.discard:
                return b""
            return self._row(unit, seq, buf, start, end)
        if state == FIRST:
            if first == c.ERR_HEADER:
                res = self._error(unit, seq, buf[start:end])
                return drop if drop is not None else res
            # COM_STMT_PREPARE_OK also starts with 0x00: it must not be read as an OK packet.
            if unit.kind == "prepare":
                return self._prepare_ok(unit, buf[start:end]) if not self.discard else b""
            if first == c.OK_HEADER:
                ok = p.parse_ok(buf[start:end], self.caps)
                unit.affected = (unit.affected or 0) + ok.affected_rows
                plain = self._ok(ok, buf[start:end])
                self._more_or_done(ok.status)
                return drop if drop is not None or plain is None else c.encode_packet(plain, seq)
            if unit.kind in ("single", "stats"):
                self._done()
                return drop
            if first == c.LOCAL_INFILE_HEADER and unit.kind == "result":
                return self._local_infile(seq)
            if unit.kind == "fields":
                if first == c.EOF_HEADER:
                    self._done()
                    return drop
                self.state = COLS
                return self._column(unit, seq, buf, start, end)
            self.ncols = self.remaining = p.parse_column_count(buf[start:end])
            masking = self._masking()
            self.sample_left = SAMPLE_ROWS if unit.record and unit.sample is None and self._sampling() else 0
            self.columns = [] if masking or self.sample_left else None
            self.state = COLS
            return drop
        if state == COLS:
            if unit.kind == "fields":
                if first in (c.EOF_HEADER, c.ERR_HEADER):
                    self._done()
                return drop
            return self._column(unit, seq, buf, start, end)
        if state == COLS_EOF:
            self._rows_begin(unit, seq + 1)
            return drop
        if state in (PREPARE, SKIP):
            self.remaining -= 1
            if self.remaining <= 0:
                self._done()
            return drop
        return drop

    def _column(self, unit: Unit, seq: int, buf: bytes, start: int, end: int) -> bytes | None:
        if self.columns is not None or unit.binary:
            col = p.parse_column_definition(buf[start:end])
            if self.columns is None:
                self.columns = []
            self.columns.append(col)
        if unit.kind == "fields":
            return b"" if self.discard else None
        self.remaining -= 1
        discard = self.discard  # a refusal of the rows (below) comes after this packet
        if self.remaining == 0:
            if self.deprecate_eof:
                self._rows_begin(unit, seq + 1)
            else:
                self.state = COLS_EOF
        return b"" if discard else None

    def _rows_begin(self, unit: Unit, seq: int) -> None:
        cols = self.columns
        policy = self.policy
        self.rows_seq = seq
        derived = None
        if cols is not None and policy is not None and policy.masks_columns and not self.discard:
            text = self.stmt_texts.get(unit.stmt_id, "") if unit.kind == "fetch" else unit.text
            try:
                derived = self.events.derived_columns(policy, text, cols)
            except NeedsCatalog:
                if unit.kind != "fetch":  # a fetch's first row is at hand: it cannot wait
                    self.paused = (unit, cols)
                    return
                derived = [None] * len(cols)
            except LineageRefused as why:
                self._refuse_rows(unit, str(why))
        self.state = ROWS
        self.plan = None
        if cols is not None:
            if unit.binary:
                self.stmt_columns[unit.stmt_id] = cols
                if unit.kind != "fetch":
                    self.stmt_texts[unit.stmt_id] = unit.text
            refs = self.events.resolve_columns([column_ref(col) for col in cols])
            if self.sample_left:
                unit.columns = [
                    f"{r.schema}.{r.table}.{r.column}" if r else col.name.decode("utf-8", "replace")
                    for r, col in zip(refs, cols)
                ]
                unit.sample = []
            if policy is not None:
                if policy.exempted:
                    self.events.audit("mask.exempt", rules=list(policy.exempted))
                hints = [TYPE_HINTS.get(col.type, "text") for col in cols]
                self.plan = policy.plan(refs, hints, derived, seen=self.seen)
                if not unit.binary and policy.active and is_show_warnings(unit.text):
                    masker = self._message_masker()
                    names = [col.name for col in cols]
                    if masker is not None:
                        self.plan = warnings_plan(masker, self.plan, names, self.last_statement)
        self.limits = (policy.max_rows, policy.max_bytes) if policy is not None else (None, None)
        # Refused rows (`_refuse_rows`) are dropped one by one, never forwarded in a run.
        self.plain_rows = (
            self.plan is None and self.limits == (None, None) and not self.sample_left and not self.discard
        )
        self.bytes = 0

    def resume(self, error: str | None) -> list[Any]:
        """The catalog was read (or could not be, `error`): make the plan of the paused result
        and go on with its rows."""
        assert self.paused is not None
        unit, _ = self.paused
        self.paused = None
        out: list[Any] = []
        if error is not None:
            out.append(self._refuse_rows(unit, error))
            self.state = ROWS
        else:
            inject: list[bytes] = []
            self._inject = inject
            try:
                self._rows_begin(unit, self.rows_seq)
            finally:
                self._inject = None
            out += inject
        if self.paused is None:
            out += self.feed(b"")
        return out

    def _refuse_rows(self, unit: Unit, message: str) -> bytes:
        """The rows of this result are withheld: the client gets an error in their place."""
        self.discard = True
        self.plain_rows = False
        unit.error = message[:500]
        packet = c.encode_packet(p.build_err(1142, "42000", f"refused by Hoop: {message}"[:2000]), self.rows_seq)
        if self._inject is not None:
            self._inject.append(packet)
        return packet

    def _end_of_rows(self, payload: bytes) -> bytes | None:
        """Ends a result set; returns the client's layout of a 0xFE OK packet where it differs."""
        self.plain_rows = False
        plain = None
        if len(payload) < 9:
            status = p.parse_eof(payload)[1]
        else:
            ok = p.parse_ok(payload, self.caps)
            status = ok.status
            plain = self._ok(ok, payload)
        if status & c.SERVER_STATUS_CURSOR_EXISTS and self.units[0].binary:
            self._done()  # rows come later through COM_STMT_FETCH
            return plain
        self._more_or_done(status)
        return plain

    def _ok(self, ok: p.OkPacket, payload: bytes) -> bytes | None:
        """Settings the server reports go to the owner; returns the client's layout of the OK
        packet where it differs from the server's."""
        if ok.session_state and ok.status & c.SERVER_SESSION_STATE_CHANGED:
            changes = parse_state(ok.session_state)
            if changes:
                self.events.settings_reported(changes)
            schema = reported_schema(ok.session_state)
            if schema is not None:
                self.events.database_reported(schema)
        return for_client(ok, payload, self.client_caps)

    def _more_or_done(self, status: int) -> None:
        if status & c.SERVER_MORE_RESULTS_EXISTS:
            self.state = FIRST
        else:
            self._done()

    def _error(self, unit: Unit, seq: int, payload: bytes) -> bytes | None:
        err = p.parse_err(payload)
        if err.is_progress_report:
            return None
        if unit.internal:  # the server refused to report the settings: they are unknown now
            self.events.settings_unknown(f"the server refused to report them ({err.message[:200]})")
        masker = self._message_masker()
        masked = masked_err(masker, payload, unit.text) if masker is not None else None
        unit.error = f"{err.code} {err.message if masked is None else masked[1]}"[:500]
        self._done()
        return None if masked is None else c.encode_packet(masked[0], seq)

    def _message_masker(self) -> MessageMasker | None:
        """How server messages are masked now; None when no rule masks anything."""
        policy = self.events.mask_policy()
        if not policy.active:
            return None
        if self.messages is None or self.messages.policy is not policy:
            self.messages = MessageMasker(policy, self.seen, "'")
        return self.messages

    def _prepare_ok(self, unit: Unit, payload: bytes) -> bytes | None:
        ok = p.parse_stmt_prepare_ok(payload)
        self.events.prepared_ok(unit, ok.statement_id)
        extra = 0 if self.deprecate_eof else (ok.num_params > 0) + (ok.num_columns > 0)
        self.remaining = ok.num_params + ok.num_columns + extra
        if self.remaining:
            self.state = PREPARE
        else:
            self._done()
        return None

    def _local_infile(self, seq: int) -> bytes | None:
        if self.events.infile_requested():
            return None
        # A server must not read the client's files through us: say "no file" upstream and
        # tell the client; the server's answer to the empty upload is dropped.
        self.events.upstream_write(c.encode_packet(b"", seq + 1))
        self.events.audit("local_infile.refused")
        self.discard = True
        return c.encode_packet(
            p.build_err(1148, "42000", "LOAD DATA LOCAL INFILE is disabled for this connection by Hoop"), seq
        )

    def _done(self) -> None:
        unit = self.units[0]
        if not unit.internal and not is_show_warnings(unit.text):
            self.last_statement = unit.text  # what a later SHOW WARNINGS reports on
        self.state = FIRST
        self.plain_rows = False
        self.discard = False
        self.columns = None
        self.plan = None
        self.sample_left = 0
        self.events.unit_done(self.units.popleft())

    # -- rows --------------------------------------------------------------------------------

    def _row(self, unit: Unit, seq: int, buf: bytes, start: int, end: int) -> bytes | None:
        max_rows, max_bytes = self.limits
        if max_rows is not None or max_bytes is not None:
            self.bytes += end - start
            if (max_rows is not None and unit.rows > max_rows) or (max_bytes is not None and self.bytes > max_bytes):
                what = f"{max_rows} rows" if max_rows is not None and unit.rows > max_rows else f"{max_bytes} bytes"
                unit.error = f"result stopped at the limit of {what}"
                self.discard = True
                self.events.limit_reached(unit)
                return c.encode_packet(
                    p.build_err(1226, "42000", f"Hoop stopped this result at the limit of {what} per statement"), seq
                )
        plan = self.plan
        if plan is None:
            if self.sample_left:
                self._sample_plain(unit, buf, start, end)
            return None
        if end - start >= c.MAX_CHUNK:  # cannot mask a split row safely: withhold the rest
            self.discard = True
            unit.error = "row too large to mask"
            return c.encode_packet(p.build_err(1226, "42000", "Hoop cannot mask a row of 16 MiB or more"), seq)
        payload = buf[start:end]
        cols = self.columns or []
        if not unit.binary:
            values = p.parse_text_row(payload, len(cols))
            new = plan.apply(values)
            if self.sample_left:
                self._keep_sample(unit, [sample_value(v) for v in (values if new is None else new)])
            return None if new is None else c.encode_packet(p.build_text_row(new), seq)
        return self._binary_row(unit, plan, payload, cols, seq)

    def _sample_plain(self, unit: Unit, buf: bytes, start: int, end: int) -> None:
        """Sample a row that goes to the client as the server sent it."""
        if end - start >= c.MAX_CHUNK:  # the rest of a split row is not here: the sample ends
            self._keep_sample(unit, None)
            return
        cols = self.columns or []
        if unit.binary:
            values = binary_rows.parse_binary_row(buf[start:end], cols)
            row = [sample_value(binary_rows.text_value(v, col)) for v, col in zip(values, cols)]
        else:
            row = [sample_value(v) for v in p.parse_text_row(buf[start:end], len(cols))]
        self._keep_sample(unit, row)

    def _keep_sample(self, unit: Unit, row: list[str | None] | None) -> None:
        """Keep one sample row (None: stop sampling); once the sample is complete, rows of a
        result nothing else looks at are only counted again."""
        if row is not None and unit.sample is not None:
            unit.sample.append(row)
        self.sample_left = self.sample_left - 1 if row is not None else 0
        if not self.sample_left:
            self.plain_rows = self.plan is None and self.limits == (None, None) and not self.discard

    def _binary_row(
        self, unit: Unit, plan: MaskPlan, payload: bytes, cols: list[p.ColumnDefinition], seq: int
    ) -> bytes | None:
        values: list[Any] = binary_rows.parse_binary_row(payload, cols)
        touched = set(plan.masked_columns) | set(plan.scanned_columns)
        as_text: list[bytes | None] = [None] * len(values)
        for i in touched:
            v = values[i]
            as_text[i] = v if isinstance(v, bytes) or v is None else text_of(v)
        new = plan.apply(as_text)
        if new is not None:
            for i in touched:
                if new[i] is not as_text[i]:
                    values[i] = binary_of(new[i], cols[i])
        if self.sample_left:
            self._keep_sample(unit, [sample_value(binary_rows.text_value(v, col)) for v, col in zip(values, cols)])
        return None if new is None else c.encode_packet(binary_rows.build_binary_row(values, cols), seq)
