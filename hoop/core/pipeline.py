"""THE decision path every protocol uses: classify, match guardrails, decide.

`Pipeline.check` never raises: any exception while deciding becomes a block (fail closed),
with the error named in the reason. Decisions are cached per statement shape (literals
abstracted, see `sql/shape.py`) and subject, and the cache is dropped whenever the rules
change, so a simple-protocol loop pays one parse per shape instead of one per statement.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from hoop.core.bigtext import BigStatements, ParseLimits
from hoop.core.guardrails import Context, GuardRule, RuleSet
from hoop.core.masking import MaskPolicy, MaskRule
from hoop.core.sql import Classification, PreparedStatements, Statement, classify, classify_shell
from hoop.core.sql.routines import RoutineCatalog, blame, expand
from hoop.core.sql.shape import shape
from hoop.core.sql.textmode import UTF8, TextMode

log = logging.getLogger("hoop.pipeline")
_SESSION_KINDS = frozenset({"prepare", "execute", "deallocate"})
_CACHE_LIMIT = 20_000


@dataclass(frozen=True, slots=True)
class Subject:
    """Who runs a statement where: the part of a session the policy needs."""

    user: str
    groups: frozenset[str]
    connection: str
    dialect: str  # "postgres" | "mysql" | "shell"


@dataclass(frozen=True, slots=True)
class Decision:
    action: str  # "allow" | "block" | "review"
    rule: str = ""
    reason: str = ""
    review: GuardRule | None = None  # the matching review rule (timeout, approvers, approvals)
    classification: Classification | None = None
    sqlstate: str = ""  # set for a syntax error ("42601"): doors answer it as their server would
    position: int | None = None  # 1-based character position of a syntax error, when known


ALLOW = Decision("allow")


def _facts(stmt: Statement) -> tuple[Any, ...]:
    return (
        stmt.kind,
        stmt.object,
        stmt.tables,
        stmt.functions,
        stmt.where,
        stmt.dynamic,
        stmt.flags,
        tuple(_facts(s) for s in stmt.inner),
    )


def _same_facts(a: Classification, b: Classification) -> bool:
    if a.error or b.error or len(a.statements) != len(b.statements):
        return False
    return all(_facts(x) == _facts(y) for x, y in zip(a.statements, b.statements))


class Pipeline:
    def __init__(
        self,
        guard_rules: Sequence[GuardRule] = (),
        mask_rules: Sequence[MaskRule] = (),
        *,
        hash_key: bytes = b"",
        limits: ParseLimits | None = None,
    ) -> None:
        self.hash_key = hash_key
        self.big = BigStatements(limits or ParseLimits())  # statements too big to classify on the event loop
        self._lock = threading.Lock()
        self.version = 0
        self.halted: Decision | None = None  # while set, every statement gets this answer
        self._routines: dict[str, RoutineCatalog] = {}  # connection name -> its upstream routines
        self.set_rules(guard_rules, mask_rules)

    # -- rules -------------------------------------------------------------------------------

    def set_rules(self, guard_rules: Sequence[GuardRule], mask_rules: Sequence[MaskRule]) -> None:
        """Swap the rule set atomically; cached decisions and mask policies start afresh."""
        with self._lock:
            self.guard_rules = list(guard_rules)
            self.mask_rules = list(mask_rules)
            self.ruleset = RuleSet(self.guard_rules)
            self._decisions: dict[tuple[Any, ...], Decision] = {}
            self._shapes: dict[tuple[str, str, TextMode], bool] = {}
            self._mask_policies: dict[tuple[str, frozenset[str]], MaskPolicy] = {}
            self.version += 1

    def set_routines(self, connection: str, catalog: RoutineCatalog) -> None:
        """The routines and triggers that exist upstream on `connection`: calls of them are
        judged by their bodies. Decisions are keyed by the catalog's version, so a redefined
        routine is judged anew, and a changed catalog bumps `version` so that statements the
        doors prepared earlier are judged again at their next execution."""
        old = self._routines.get(connection)
        self._routines[connection] = catalog
        if old is not None and old.version != catalog.version:
            with self._lock:
                self.version += 1

    def halt(self, rule: str, reason: str) -> None:
        """Refuse every statement from now on with `reason` (the gateway cannot record them);
        bumping `version` makes the doors judge again what they prepared earlier."""
        with self._lock:
            self.halted = Decision("block", rule, reason)
            self.version += 1

    def resume(self) -> None:
        with self._lock:
            self.halted = None
            self.version += 1

    # -- statements --------------------------------------------------------------------------

    def check(
        self, subject: Subject, text: str, prepared: PreparedStatements | None = None, mode: TextMode = UTF8
    ) -> Decision:
        """Judge `text` (already decoded with the session's character set) as the server reads
        it under the session's string modes `mode`."""
        if self.halted is not None:
            return self.halted
        try:
            return self._check(subject, text, prepared, mode)
        except Exception as exc:  # fail closed: a bug in deciding must never allow
            log.exception("policy evaluation failed")
            return Decision(
                "block", "internal", f"the gateway could not evaluate this statement ({type(exc).__name__})"
            )

    def deferred(self, subject: Subject, text: str, mode: TextMode = UTF8) -> bool:
        """True when `text` is too big to classify on the event loop and not classified yet: the
        door awaits `parse_ahead` (the session waits, others go on), then checks as usual."""
        return self.big.deferred(text, subject.dialect, mode)

    async def parse_ahead(self, subject: Subject, text: str, mode: TextMode = UTF8) -> None:
        """Classify a big `text` in the parse pool, within the size and time budgets; the next
        `check` of it is then a lookup. Never raises: a failure makes `check` refuse it."""
        await self.big.classify_ahead(text, subject.dialect, mode)

    async def judge(
        self, subject: Subject, text: str, prepared: PreparedStatements | None = None, mode: TextMode = UTF8
    ) -> Decision:
        """`check` for a door that can wait: a big text is classified off the event loop."""
        await self.parse_ahead(subject, text, mode)
        return self.check(subject, text, prepared, mode)

    def close(self) -> None:
        self.big.close()

    def _check(self, subject: Subject, text: str, prepared: PreparedStatements | None, mode: TextMode) -> Decision:
        if self.big.is_big(text, subject.dialect, mode):
            return self._check_big(subject, text, prepared, mode)
        decisions = self._decisions
        catalog = self._routines.get(subject.connection)
        version = catalog.version if catalog else ""
        exact = (text, subject, mode, version)
        hit = decisions.get(exact)
        if hit is not None:
            return hit
        key = shape(text, subject.dialect)
        by_shape = (key, subject, mode, version) if key is not None else None
        if by_shape is not None and (hit := decisions.get(by_shape)) is not None:
            return hit
        classification = raw = self._classify(text, subject.dialect, mode)
        session_bound = any(s.kind in _SESSION_KINDS for s in classification.statements)
        if session_bound and prepared is not None:
            classification = prepared.resolve(classification)
        expanded = expand(classification, catalog)  # calls and triggers: judged by their bodies
        decision = self._decide(subject, expanded)
        if expanded is not classification and decision.action != "allow":
            decision = self._name_routine(subject, classification, expanded, decision)
        classification = expanded
        if session_bound:
            if prepared is not None and decision.action == "allow":
                prepared.observe(classification)
            elif prepared is not None and decision.action == "review":
                prepared.held(classification)
            return decision  # depends on the session's prepared statements: never cached
        if len(decisions) > _CACHE_LIMIT:
            decisions.clear()
        decisions[exact] = decision
        if by_shape is not None and self._shape_is_stable(key, text, subject.dialect, mode, raw):  # type: ignore[arg-type]
            decisions[by_shape] = decision
        return decision

    def _check_big(self, subject: Subject, text: str, prepared: PreparedStatements | None, mode: TextMode) -> Decision:
        """A big text is judged from its kept classification and never enters the decision or
        shape caches (their keys would hold megabytes each)."""
        known = self.big.too_big(text) or self.big.known(text, subject.dialect, mode)
        if known is None:  # a caller that cannot wait, and the text is no longer kept
            known = self.big.classify_here(text, subject.dialect, mode)
        if isinstance(known, str):
            return Decision("block", "statement-limits", f"{known}; the statement was not run")
        classification = known
        session_bound = any(s.kind in _SESSION_KINDS for s in classification.statements)
        if session_bound and prepared is not None:
            classification = prepared.resolve(classification)
        decision = self._decide(subject, classification)
        if session_bound and prepared is not None and decision.action == "allow":
            prepared.observe(classification)
        return decision

    def _classify(self, text: str, dialect: str, mode: TextMode = UTF8) -> Classification:
        if dialect == "shell":
            return classify_shell(text)
        return classify(text, dialect, mode)  # type: ignore[arg-type]

    def _shape_is_stable(
        self, key: str, text: str, dialect: str, mode: TextMode, classification: Classification
    ) -> bool:
        """A shape may stand for all its texts only if every fact the rules use is the same for
        any literal values. The shape is classified with each literal as an unknown value; the
        WHERE folding treats an unknown as possibly true, so a predicate whose verdict could
        change with a literal (`id = 1 or 1 = 2`) comes out differently from the real text and
        the shape is never used for it."""
        known = self._shapes.get((key, dialect, mode))
        if known is None:
            known = _same_facts(classification, self._classify(key, dialect, mode))
            self._shapes[(key, dialect, mode)] = known
        return known

    def _decide(self, subject: Subject, classification: Classification) -> Decision:
        verdict = self.ruleset.evaluate(classification, Context(subject.connection, subject.user, subject.groups))
        if verdict.action == "allow":
            return Decision("allow", classification=classification)
        rule = verdict.rule
        if verdict.syntax:
            return Decision(
                "block", "", verdict.reason, classification=classification, sqlstate="42601", position=verdict.position
            )
        return Decision(
            verdict.action,
            rule.name if rule else "",
            verdict.reason,
            rule if verdict.action == "review" else None,
            classification,
        )

    def without_flag(self, subject: Subject, decision: Decision, flag: str) -> Decision:
        """`decision` judged again as if no statement carried `flag`, every other rule still
        applying: for a door that has proved that effect harmless in this one session (a
        statement that signals the session's own backend is not "another session")."""
        if decision.classification is None or self.halted is not None:
            return decision

        def strip(stmt: Statement) -> Statement:
            return replace(stmt, flags=stmt.flags - {flag}, inner=tuple(strip(s) for s in stmt.inner))

        stripped = replace(
            decision.classification, statements=tuple(strip(s) for s in decision.classification.statements)
        )
        return self._decide(subject, stripped)

    def _name_routine(
        self, subject: Subject, plain: Classification, expanded: Classification, decision: Decision
    ) -> Decision:
        """A refusal drawn by a routine's body says which routine: the user typed `SELECT f()`."""
        ctx = Context(subject.connection, subject.user, subject.groups)

        def draws(c: Classification) -> bool:
            verdict = self.ruleset.evaluate(c, ctx)
            return verdict.action == decision.action and (verdict.rule.name if verdict.rule else "") == decision.rule

        name = "" if draws(plain) else blame(expanded, draws)
        return (
            replace(decision, reason=f"{decision.reason} (in {name}, which this statement runs)") if name else decision
        )

    # -- masking -----------------------------------------------------------------------------

    def mask_policy(self, subject: Subject) -> MaskPolicy:
        key = (subject.connection, subject.groups)
        policy = self._mask_policies.get(key)
        if policy is None:
            policy = MaskPolicy.build(
                self.mask_rules, connection=subject.connection, groups=subject.groups, hash_key=self.hash_key
            )
            self._mask_policies[key] = policy
        return policy
