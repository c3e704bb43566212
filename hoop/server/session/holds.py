"""A held statement's outcome, in words no protocol owns."""

from __future__ import annotations

from dataclasses import dataclass

from hoop.core.approvals import Outcome
from hoop.core.store.records import review

# How a hold that did not end in approval is refused; each door words these its own way.
REFUSALS = {"denied": "denied", "expired": "timeout", "cancelled": "cancelled", "abandoned": "cancelled"}
_WHAT = {"denied": "denied", "expired": "not approved in time", "cancelled": "cancelled while held"}


@dataclass(frozen=True, slots=True)
class HoldOutcome:
    approved: bool
    decision: str  # what the statement record says: "review:approved", "review:denied", ...
    refusal: str  # "" when approved; else "denied", "timeout" or "cancelled"
    message: str  # one line for the client
    approval_id: int  # 0 when a standing grant let it through
    reason: str  # the approver's reason, or why it was not approved

    @classmethod
    def of(cls, outcome: Outcome, rule: str) -> HoldOutcome:
        if outcome.approved:
            by = f" by {', '.join(outcome.by)}" if outcome.by else ""
            what = f"approval #{outcome.approval_id}" if outcome.approval_id else outcome.reason
            return cls(True, review("approved"), "", f"approved ({what}){by}", outcome.approval_id, outcome.reason)
        message = (
            f"approval #{outcome.approval_id} for rule {rule} "
            f"{_WHAT.get(outcome.status, outcome.status)}: {outcome.reason}"
            if outcome.approval_id
            else f"held by rule {rule} and refused: {outcome.reason}"  # no request was made
        )
        return cls(
            False,
            review(outcome.status),
            REFUSALS.get(outcome.status, "cancelled"),
            message,
            outcome.approval_id,
            outcome.reason,
        )
