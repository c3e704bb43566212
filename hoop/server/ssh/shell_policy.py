"""May a user open an interactive shell on an SSH connection, and on what terms?

Command rules judge exec requests: the command line is known before anything runs. What is
typed into a shell is not (a piped script, a paste, a program that spawns another), so each
SSH connection has a shell policy:

- `allow`: shells run (`hoop check` warns where command rules cover the connection);
- `review`: a shell is held, like a held statement, until one of `shell_approvers` approves;
- `moderated`: a shell runs only while one of `shell_approvers` watches it live in the TUI
  (moderation.py); it waits for the first and pauses when the last one leaves;
- `deny`: shells are refused.

The default is `deny` where a command rule covers the connection and `allow` elsewhere. An exec
with a terminal (`ssh -t gw vim`) is a shell in all but name (an editor's `:!`, a pager's `!`,
a REPL), so where shells are not simply allowed it is also under the shell policy, after the
command rules have judged its command line.

The approvers of a connection's shells are a rule of their own, `shell:NAME` (core/shell_rules.py):
it holds the requests, decides who may approve them, and gives its approvers the connection in
their scope (they watch and kill its sessions), exactly like a guard rule's approvers.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hoop.core.config import Config, Connection
from hoop.core.pipeline import Decision
from hoop.core.shell_rules import shell_rule
from hoop.core.store.records import ALLOW, BLOCK

if TYPE_CHECKING:
    from hoop.server.session import Session


def is_command_rule(rule: Any) -> bool:
    return bool(rule.commands) or any(str(s).startswith("command") for s in rule.statements)


def command_rules_cover(rules: Iterable[Any], connection: str) -> list[str]:
    """The names of the enabled command rules whose `connections` globs match the connection
    (whatever groups they name: a rule for some users is still a rule on the connection)."""
    return [
        rule.name
        for rule in rules
        if rule.enabled
        and is_command_rule(rule)
        and any(fnmatch.fnmatchcase(connection, glob) for glob in rule.connections)
    ]


def shell_policy(rules: Iterable[Any], conn: Connection) -> str:
    """ "allow", "review", "moderated" or "deny": the connection's own setting, or the default."""
    if conn.shell:
        return conn.shell
    return "deny" if command_rules_cover(rules, conn.name) else "allow"


def shell_refusal(conn: Connection, login: str, command: str = "") -> str:
    """What a refused shell tells the user: why, and how to run a command instead."""
    if command:
        return (
            f"hoop: a command with a terminal is a shell in all but name, and shells are not allowed on "
            f"{conn.name}; run it without one: ssh -T {login}@<gateway> 'COMMAND'"
        )
    return (
        f"hoop: shells are not allowed on {conn.name}: its commands are under rules; "
        f"run commands with ssh {login}@<gateway> 'COMMAND'"
    )


@dataclass(frozen=True)
class ShellAdmission:
    run: bool
    moderated: bool = False  # runs only while a moderator watches (hoop/server/moderation.py)
    decision: str = ALLOW  # what an exec's statement record says when it is not run
    rule: str = ""
    reason: str = ""


async def admit_shell(
    session: Session, conn: Connection, rules: Iterable[Any], login: str, command: str, say: Callable[[str], None]
) -> ShellAdmission:
    """Apply the connection's shell policy to a shell, or to an exec with a terminal (`command`
    is then its command line, already admitted by the command rules). `say` writes one line
    to the user; refusals are audited."""
    policy = shell_policy(rules, conn)
    if policy == "allow":
        return ShellAdmission(True)
    what = command or "interactive shell"
    if policy == "deny":
        session.audit("ssh.refused.shell", connection=conn.name, reason="shell policy deny", command=command)
        say(shell_refusal(conn, login, command))
        return ShellAdmission(False, decision=BLOCK, reason=f"shells are not allowed on {conn.name}")
    rule = shell_rule(conn)
    assert rule is not None  # config: review and moderated need shell_approvers
    if policy == "moderated":
        return ShellAdmission(True, moderated=True, rule=rule.name)
    decision = Decision("review", rule.name, f"shells on {conn.name} need approval", review=rule)
    outcome = await session.hold(what, decision, lambda m: say(f"hoop: {m}; what is typed until then is discarded"))
    if not outcome.approved:
        session.audit("ssh.refused.shell", connection=conn.name, reason=outcome.decision, command=command)
        say(f"hoop: not started: {outcome.message}")
        return ShellAdmission(False, decision=outcome.decision, rule=rule.name, reason=outcome.reason)
    say(f"hoop: {outcome.message}")
    return ShellAdmission(True, decision=outcome.decision, rule=rule.name)


def allowed_shell_warnings(config: Config) -> list[str]:
    """`hoop check`: a shell allowed explicitly where command rules apply runs what it likes;
    a shell held or moderated where no command rule applies is one `ssh HOST bash` away."""
    out = []
    for conn in config.connections:
        rules = command_rules_cover(config.rules, conn.name) if conn.type == "ssh" else []
        if conn.shell == "allow" and rules:
            out.append(
                f'{conn.name}: shell = "allow" with command rules ({", ".join(rules)}): '
                "what is typed into a shell is not judged by them"
            )
        elif conn.shell in ("review", "moderated") and not rules:
            out.append(
                f'{conn.name}: shell = "{conn.shell}" but no command rule covers it: commands sent without '
                "a terminal (ssh HOST 'bash' with a script on stdin) run unheld; add command rules"
            )
    return out
