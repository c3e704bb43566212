"""What each subcommand does and an example of it, shown by `hoop COMMAND --help`.

Kept in one table, by command path, so that every command has both (a test walks the parser)
and the wording reads alike. A description set where the command is defined is kept.
"""

from __future__ import annotations

import argparse

# command path -> (description, example lines)
HELP: dict[str, tuple[str, str]] = {
    "check": (
        "Validate the config file: keys, types, secrets it names; warnings for risky settings.",
        "hoop check -c /etc/hoop/hoop.toml",
    ),
    "serve": (
        "Run the gateway: the PostgreSQL, MySQL and SSH doors of [listen] and the control endpoint.",
        "hoop serve -c /etc/hoop/hoop.toml",
    ),
    "token": (
        "Issue, list and revoke local tokens (the password of a user at every door).",
        "hoop token issue alice --ttl 8h",
    ),
    "token issue": (
        "Print a new token for USER, alone on the last line (only this command prints one).",
        "export PGPASSWORD=$(hoop token issue alice --ttl 8h | tail -1)",
    ),
    "token list": (
        "List the tokens (never the token itself): id, user, state, expiry, note.",
        "hoop token list --json",
    ),
    "token revoke": (
        "Revoke a token by its id (from `hoop token list`); its next login is refused.",
        "hoop token revoke 7",
    ),
    "sessions": (
        "List recent sessions, newest first: user, connection, door, duration, status, counts.",
        "hoop sessions --since 1h --user alice --connection pg",
    ),
    "replay": (
        "Replay a recorded session: its statements, or the terminal of an SSH session.",
        "hoop replay 42 --text | less",
    ),
    "audit": (
        "List the audit trail (one line per event, newest last), verify its chain and checkpoints, "
        "print its head or checkpoint key.",
        "hoop audit --since 1h --decision block\nhoop audit verify --recordings",
    ),
    "approvals": (
        "List approval requests (pending ones unless --all or --decision).",
        "hoop approvals --all --since 1d --user alice",
    ),
    "approve": (
        "Approve a held command; the held session goes on at once.",
        "hoop approve 12 --reason 'ticket 881' --grant 30m",
    ),
    "deny": (
        "Deny a held command; the client gets an error naming the reason.",
        "hoop deny 12 --reason 'not during the freeze'",
    ),
    "kill": (
        "Disconnect a live session (admins only); the client is told the reason.",
        "hoop kill 42 --reason 'left open'",
    ),
    "rules": (
        "List, show, change and test guardrail (guard) and masking (mask) rules kept in the store.",
        "hoop rules list\nhoop rules show no-destructive",
    ),
    "rules list": (
        "List the current version of every rule: kind, on/off, name, version, action, author.",
        "hoop rules list --kind guard --json",
    ),
    "rules show": (
        "Show every version of a rule; the kind may be left out when only one kind has the name.",
        "hoop rules show prod-writes",
    ),
    "rules add": (
        "Add a rule from TOML (the keys of one [[rules]] or [[masking]] table), from FILE or stdin.",
        "hoop rules add guard rule.toml\n"
        'printf \'name = "no-copy"\\naction = "block"\\nstatements = ["copy"]\\n\' | hoop rules add guard',
    ),
    "rules edit": (
        "Store a new version of a rule from TOML (FILE or stdin).",
        "hoop rules edit guard prod-writes rule.toml",
    ),
    "rules enable": ("Turn a rule on.", "hoop rules enable prod-writes"),
    "rules disable": (
        "Turn a rule off (a built-in rule needs --reason, which is audited).",
        "hoop rules disable guard prod-writes --reason 'migration window'",
    ),
    "rules remove": ("Remove a rule (its versions stay in the history).", "hoop rules remove mask pii-old"),
    "rules test": (
        "Run a draft rule over the recorded history: what it would have blocked, held or masked.",
        "hoop rules test guard draft.toml --limit 5000",
    ),
    "login": ("Log in at the OIDC provider and store the credential for the other commands.", "hoop login --device"),
    "logout": ("Forget the stored OIDC credential.", "hoop logout"),
    "env": (
        "Print shell exports (PGHOST, PGPASSWORD, ...) to reach CONNECTION as yourself.",
        'eval "$(hoop env pg)" && psql',
    ),
    "psql": ("Run psql through the gateway with your credential.", "hoop psql pg -c 'select 1'"),
    "tui": (
        "Open the approvers' console: sessions, approvals, rules and recordings.",
        "HOOP_TOKEN=$(hoop token issue bob | tail -1) hoop tui",
    ),
    "health": (
        "Ask the running gateway whether its records are being stored and how many wait.",
        "hoop health || echo 'recording is failing'",
    ),
    "whoami": ("Show your identity, roles and the rules whose holds you may approve.", "hoop whoami --json"),
    "migrate": (
        "Copy every table, the audit chain and the recordings into another store (SQLite or PostgreSQL); "
        "the target must be empty, and its audit chain is verified at the end.",
        'hoop migrate --to "postgresql://hoop:${HOOP_STORE_PASSWORD}@127.0.0.1:5432/hoop"',
    ),
    "connections": ("", "hoop connections --json"),
    "users": ("", "hoop users"),
}


def subcommands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every subcommand parser under `parser`, by its path ("rules show")."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                path = f"{prefix} {name}".strip()
                found[path] = child
                found.update(subcommands(child, path))
    return found


def describe(parser: argparse.ArgumentParser) -> None:
    """Give each subcommand its description and example, keeping line breaks in examples."""
    for path, child in subcommands(parser).items():
        description, example = HELP.get(path, ("", ""))
        child.description = child.description or description or None
        if example and not child.epilog:
            child.epilog = "example:\n" + "\n".join(f"  {line}" for line in example.splitlines())
        child.formatter_class = argparse.RawDescriptionHelpFormatter
