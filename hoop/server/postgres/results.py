"""What the relay does with result sets: masking, row limits and samples for the recording.

`Results` decides per RowDescription / CopyOutResponse whether rows need looking at. If not
(no masking applies, the sample is complete, no limits), DataRows leave the watch set and
pass through as untouched slices. Column origins the resolver has not seen yet make the
relay pause the upstream side until the catalog answers (`WAIT`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

from hoop.core.lineage import LineageUnknown, by_position
from hoop.core.masking import ColumnRef, MaskFormatError, MaskPolicy
from hoop.core.message_masking import MessageMasker, SeenValues
from hoop.core.pipeline import Pipeline, Subject
from hoop.core.recording import SAMPLE_ROWS, sampled
from hoop.core.store.session_log import SessionLog
from hoop.server.postgres import codec
from hoop.server.postgres.columns import ColumnResolver
from hoop.server.postgres.copyout import CopyRowMasker, pick_columns, read_copy
from hoop.server.postgres.masker import InPlaceRows, Limits, RowMasker, sample_row, type_hints
from hoop.server.postgres.tracker import Tracker
from hoop.server.session import Session

log = logging.getLogger("hoop.postgres")
T_, D_, COPY_OUT, COPY_DATA = (ord(c) for c in "TDHd")
ROW_TYPES = frozenset({D_, COPY_DATA})
# What the relay always looks at; CopyInResponse and CopyBothResponse ('G', 'W') tell it the
# server waits for the client's data (a client that ended its input cannot send it).
# Notices and notifications ('N', 'A') are read for masking (messages.py).
# ParseComplete, BindComplete, CloseComplete and NoData are counted (text_probe.py).
BASE_WATCH = frozenset(b"CEZIsTHSGWNA123n")
ROWS_WATCH = BASE_WATCH | ROW_TYPES
# Why an Execute is refused while masking applies when the client did not describe it right
# before (drivers that cache descriptions send only Bind and Execute): its rows would come
# without a RowDescription, and the gateway cannot tell which of their columns to mask.
UNDESCRIBED = (
    "rows came without their description in this request, so Hoop cannot tell which columns to "
    "mask; send Describe with each Execute (as libpq does), or disable statement caching"
)
WAIT = object()  # forward up to this message, then wait for `resolve()`


class ResultsRelay(Protocol):
    """The parts of the session's relay that result handling uses."""

    upstream_watch: frozenset[int]  # message types the relay looks at; rows join while read

    @property
    def asking(self) -> bool: ...  # settings asked for in the middle of a pipeline: their rows are read

    @property
    def pipeline(self) -> Pipeline: ...
    @property
    def subject(self) -> Subject: ...
    @property
    def session(self) -> Session: ...
    @property
    def log(self) -> SessionLog: ...
    @property
    def tracker(self) -> Tracker: ...
    async def cancel_upstream(self) -> None: ...


class Results:
    def __init__(self, relay: ResultsRelay, resolver: ColumnResolver) -> None:
        self.relay = relay
        self.resolver = resolver
        self.policy: MaskPolicy | None = None
        self.policy_version = -1
        self.masker: RowMasker | CopyRowMasker | None = None
        self.limits: Limits | None = None
        self.tripped: bytes | None = None
        self.sample_left = 0
        self.pending: tuple[int, list[codec.Field] | None, Any] | None = None
        self.audited_exempt = False
        self.descriptions: dict[bytes, list[codec.Field]] = {}
        self.fields: list[codec.Field] | None = None  # of the current row masker
        self.problem = ""
        self.seen = SeenValues()  # values masked whole in this session's results (messages)
        # The last plan made without lineage, reused while the same RowDescription comes back
        # under the same policy and column cache (a pgbench-style loop plans once, not per query).
        self.memo: tuple[bytes, MaskPolicy, int, float, RowMasker | None, list[codec.Field], list[str]] | None = None
        self.messages: MessageMasker | None = None

    # -- policy --------------------------------------------------------------------------

    def _current_policy(self) -> MaskPolicy:
        pipeline = self.relay.pipeline
        if self.policy is None or self.policy_version != pipeline.version:
            self.policy = pipeline.mask_policy(self.relay.subject)
            self.policy_version = pipeline.version
        return self.policy

    def message_masker(self) -> MessageMasker | None:
        """How the server's messages are masked now; None when no rule masks anything."""
        policy = self._current_policy()
        if not policy.active:
            return None
        if self.messages is None or self.messages.policy is not policy:
            self.messages = MessageMasker(policy, self.seen, '"')
        return self.messages

    def policy_active(self) -> bool:
        return self._current_policy().active

    def statement_started(self) -> None:
        policy = self._current_policy()
        has_limits = policy.max_rows is not None or policy.max_bytes is not None
        self.limits = Limits(policy.max_rows, policy.max_bytes) if has_limits else None
        self.tripped = None
        self.audited_exempt = False

    # -- result set start ------------------------------------------------------------------

    def _sampling(self) -> bool:
        """Result samples for the recording (`recording.sampled`)."""
        return sampled(self.relay.log.statements)

    def _fields(self, msg: memoryview) -> list[codec.Field]:
        """RowDescriptions repeat (the same query again and again): parse each shape once."""
        raw = bytes(msg)
        fields = self.descriptions.get(raw)
        if fields is None:
            if len(self.descriptions) > 256:
                self.descriptions.clear()
            fields = self.descriptions[raw] = codec.parse_row_description(msg[5:])
        return fields

    def start(self, t: int, msg: memoryview) -> Any:
        policy = self._current_policy()
        self.masker = None
        self.sample_left = SAMPLE_ROWS if t == T_ and self._sampling() else 0
        self.fields = None
        if policy.exempted and not self.audited_exempt:
            self.audited_exempt = True
            unit = self.relay.tracker.current
            self.relay.session.audit("mask.exempt", rules=list(policy.exempted), text=unit.text[:2000] if unit else "")
        if t == T_:
            if not policy.active and not self.sample_left:
                self.update_watch()
                return msg  # nothing will read these rows: not even their description
            unit = self.relay.tracker.current
            memo = self.memo
            if (
                memo is not None
                and memo[1] is policy
                and policy.active
                and memo[2] == self.resolver.generation
                and memo[0] == msg
                and time.monotonic() < memo[3]
            ):  # the same description again: the plan made for it holds (no parse of it either)
                self.masker, self.fields = memo[4], memo[5]
                if unit is not None:
                    unit.columns = list(memo[6])
                self.update_watch()
                return msg
            fields = self._fields(msg)
            if unit is not None and not unit.columns:
                unit.columns = [f.name for f in fields]
            if policy.active:
                keys = [(f.table_oid, f.attnum) for f in fields]
                if not self.resolver.known(keys) or not self._lineage_at_hand(policy, keys):
                    self.pending = (t, fields, keys)
                    return WAIT
                self._plan_rows(policy, fields, keys)
                if self.tripped is None and (not policy.masks_columns or not self.resolver.needs_lineage(keys)):
                    deadline = self.resolver.deadline(keys)
                    columns = list(unit.columns) if unit is not None else []
                    masker = self.masker if isinstance(self.masker, RowMasker) else None
                    self.memo = (bytes(msg), policy, self.resolver.generation, deadline, masker, fields, columns)
        elif policy.active:
            copy = codec.parse_copy_response(msg[5:])
            if copy.format != 0:
                self._trip("binary COPY output is not allowed while masking rules apply; use text or csv format")
            else:
                self.pending = (t, None, len(copy.column_formats))
                return WAIT
        self.update_watch()
        return msg

    async def resolve(self) -> None:
        """Look up what `start` was missing, then build the plan (fail closed on errors)."""
        if self.pending is None:
            return
        t, fields, extra = self.pending
        self.pending = None
        policy = self._current_policy()
        try:
            if t == T_:
                await self.resolver.load(extra)
                await self._follow_lineage(policy, extra)
                self._plan_rows(policy, fields, extra)  # type: ignore[arg-type]
            else:
                self.masker = await self._copy_masker(policy, extra)
        except Exception as exc:  # no column names: nothing of this result may leave unmasked
            log.warning("session %s: column lookup failed: %s", self.relay.session.id, exc)
            self._trip("masking rules apply but the gateway could not resolve the result's columns")
        self.update_watch()

    def _plan_rows(self, policy: MaskPolicy, fields: list[codec.Field], keys: list[tuple[int, int]]) -> None:
        refs = self.resolver.refs(keys)
        unit = self.relay.tracker.current
        if unit is not None:
            unit.columns = [f"{r.schema}.{r.table}.{r.column}" if r else f.name for r, f in zip(refs, fields)]
        derived = self._derived(policy, keys)
        if self.tripped is not None:
            return
        plan = policy.plan(refs, type_hints(fields), derived, seen=self.seen)
        self.masker = RowMasker(plan, fields) if plan is not None else None
        self.fields = fields

    # -- lineage: computed and view columns under column rules (hoop/core/lineage.py) -----------

    def _statement_text(self) -> str:
        unit = self.relay.tracker.current
        return unit.text if unit is not None else ""

    def _lineage_at_hand(self, policy: MaskPolicy, keys: list[tuple[int, int]]) -> bool:
        """Whether the plan can be made now: no lineage needed, or it is cached (or known unknown)."""
        if not policy.masks_columns or not self.resolver.needs_lineage(keys):
            return True
        try:
            return self.resolver.lineage.cached(self._statement_text()) is not None
        except LineageUnknown:
            return True

    async def _follow_lineage(self, policy: MaskPolicy, keys: list[tuple[int, int]]) -> None:
        if policy.masks_columns and self.resolver.needs_lineage(keys):
            try:
                await self.resolver.lineage.lineage(self._statement_text())
            except LineageUnknown:
                pass  # cached as unknown: _derived decides

    def _derived(self, policy: MaskPolicy, keys: list[tuple[int, int]]) -> list[frozenset[ColumnRef] | None] | None:
        """Each column's sources for the plan: those of computed and view columns from their
        lineage; None for such a column when its lineage is unknown."""
        if not policy.masks_columns or not self.resolver.needs_lineage(keys):
            return None
        followed = [k[0] == 0 or k[0] in self.resolver.views for k in keys]
        try:
            outputs = self.resolver.lineage.cached(self._statement_text())
            derived = by_position(outputs or [], len(keys))
        except LineageUnknown as why:
            if policy.block_unknown:
                self._trip(
                    f"masking rule {', '.join(policy.block_unknown)} cannot tell where this result's computed "
                    f'columns come from ({why}); on_unknown = "block"'
                )
                return None
            return [None if f else frozenset() for f in followed]
        return [d if f else frozenset() for d, f in zip(derived, followed)]

    async def _copy_masker(self, policy: MaskPolicy, count: int) -> CopyRowMasker | None:
        """The masker for COPY OUT rows; raises (failing closed) when the columns are unknown."""
        unit = self.relay.tracker.current
        spec = read_copy(unit.text) if unit is not None else None
        if spec is None:
            raise ValueError("not a single COPY statement")
        if spec.query is not None:
            keys = await self.resolver.describe(spec.query)
            await self.resolver.load(keys)
            refs = self.resolver.refs(keys)
        else:
            refs = pick_columns(await self.resolver.table_columns(spec.table or ""), spec.columns)
        if len(refs) != count:
            raise ValueError("COPY column count does not match its table")
        plan = policy.plan(refs, seen=self.seen)
        return CopyRowMasker(plan, spec) if plan is not None else None

    def update_watch(self) -> None:
        relay = self.relay
        need_rows = (
            self.masker is not None
            or self.limits is not None
            or self.sample_left > 0
            or self.tripped is not None
            or relay.asking  # the settings' rows (text_probe.py)
        )
        watch = ROWS_WATCH if need_rows else BASE_WATCH
        if relay.upstream_watch is not watch:
            relay.upstream_watch = watch

    # -- rows ------------------------------------------------------------------------------

    def row_spots(self, data: memoryview) -> list[tuple[int, int]] | None:
        """Where in `data` the current result's DataRows may need masking (MaskPlan.spots): a
        row overlapping no spot passes as it came. None when rows must be read one by one
        (limits, samples, a trip, binary values, a plan that masks whole columns)."""
        masker = self.masker
        if (
            not isinstance(masker, RowMasker)
            or masker.binary
            or self.limits is not None
            or self.sample_left
            or self.tripped is not None
        ):
            return None
        return masker.plan.spots(data)

    def row_rewriter(self) -> InPlaceRows | None:
        """The current result's in-place row rewriter (masker.py) when each DataRow only needs
        its values masked: no limits, samples or trip look at rows one by one."""
        masker = self.masker
        if (
            not isinstance(masker, RowMasker)
            or masker.in_place is None
            or self.limits is not None
            or self.sample_left
            or self.tripped is not None
        ):
            return None
        return masker.in_place

    def row(self, t: int, msg: memoryview) -> Any:
        if self.tripped is not None:
            return None  # past a limit: the rest of the result is dropped
        out: Any = msg
        if self.masker is not None and ((t == D_) == isinstance(self.masker, RowMasker)):
            try:
                new = self.masker.rewrite(msg[5:])
            except MaskFormatError as exc:
                self._trip(str(exc))
                return None
            if new is not None:
                out = new
        if self.limits is not None:
            problem = self.limits.add(len(out))
            if problem is not None:
                self._trip(problem)
                return None
        if self.sample_left and t == D_:
            self.sample_left -= 1
            unit = self.relay.tracker.current
            if unit is not None:
                unit.sample.append(sample_row(memoryview(out)[5:]))
            if not self.sample_left:
                self.update_watch()
        return out

    def end(self, msg: memoryview) -> Any:
        """CommandComplete or ErrorResponse of the statement: replaced when a limit tripped."""
        self.masker = None
        self.fields = None
        self.sample_left = 0
        if self.tripped is not None:
            error, self.tripped = self.tripped, None
            self.update_watch()
            return error
        self.update_watch()
        return msg

    def _trip(self, problem: str) -> None:
        self.problem = problem
        self.tripped = codec.error_response("ERROR", "54000", f"stopped by Hoop: {problem}")
        unit = self.relay.tracker.current
        if unit is not None:
            unit.error = problem
        self.relay.session.audit("statement.stopped", problem=problem)
        self.update_watch()
        asyncio.ensure_future(self.relay.cancel_upstream())
