"""May a user open an interactive shell on an SSH connection?

Command rules judge exec requests: the command line is known before anything runs. What is
typed into a shell is not (a piped script, a paste, a program that spawns another), so a
connection whose commands are under rules refuses shells unless its configuration says
`shell = "allow"` explicitly (which `hoop check` warns about).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import Any

from hoop.core.config import Config, Connection


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
    """ "allow" or "deny": the connection's own setting, or the default."""
    if conn.shell:
        return conn.shell
    return "deny" if command_rules_cover(rules, conn.name) else "allow"


def shell_refusal(conn: Connection, login: str) -> str:
    """What a refused shell tells the user: why, and how to run a command instead."""
    return (
        f"hoop: shells are not allowed on {conn.name}: its commands are under rules; "
        f"run commands with ssh {login}@<gateway> 'COMMAND'"
    )


def allowed_shell_warnings(config: Config) -> list[str]:
    """`hoop check`: a shell allowed explicitly where command rules apply runs what it likes."""
    out = []
    for conn in config.connections:
        rules = command_rules_cover(config.rules, conn.name) if conn.shell == "allow" else []
        if rules:
            out.append(
                f'{conn.name}: shell = "allow" with command rules ({", ".join(rules)}): '
                "what is typed into a shell is not judged by them"
            )
    return out
