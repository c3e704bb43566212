"""The rule behind a connection's `shell_approvers`.

A connection with `shell = "review"` or `"moderated"` names the groups who approve or moderate
its shells. They are given a rule of their own, `shell:NAME`, never stored and never matched
against statements: it holds a shell's approval request (its approvers, approvals and timeout,
as for any held statement) and puts the connection in its approvers' scope (hoop/core/roles.py),
so they see, watch and kill its sessions like the approvers of a guard rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hoop.core.config import SHELL_RULE_PREFIX, SHELLS_WITH_APPROVERS
from hoop.core.guardrails import GuardRule

if TYPE_CHECKING:
    from hoop.core.config import Config, Connection


def shell_rule(conn: Connection) -> GuardRule | None:
    """The rule that holds this connection's shells for its shell approvers (review), or names
    its moderators (moderated); None where shells have no approvers."""
    if conn.shell not in SHELLS_WITH_APPROVERS:
        return None
    return GuardRule(
        name=f"{SHELL_RULE_PREFIX}{conn.name}",
        action="review",
        connections=(conn.name,),
        approvers=conn.shell_approvers,
        timeout=conn.shell_timeout,
        description=f"interactive shells on {conn.name} ({conn.shell})",
    )


def shell_rules(config: Config) -> list[GuardRule]:
    """Every connection's shell rule, for roles: their approvers watch those connections."""
    return [rule for conn in config.connections if (rule := shell_rule(conn)) is not None]
