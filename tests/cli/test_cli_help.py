"""Every subcommand says what it does and shows an example."""

from __future__ import annotations

import subprocess

from support.gateway import HOOP

from hoop.cli import build_parser
from hoop.commands.help_text import subcommands


def test_every_subcommand_has_a_description_and_an_example() -> None:
    commands = subcommands(build_parser())
    assert {"sessions", "audit", "rules show", "token issue", "connections", "users"} <= set(commands)
    for path, parser in commands.items():
        assert parser.description, f"hoop {path}: no description"
        assert parser.epilog and parser.epilog.startswith("example:"), f"hoop {path}: no example"
        assert f"hoop {path.split()[0]}" in parser.epilog, f"hoop {path}: the example does not use it"


def test_help_prints_them() -> None:
    result = subprocess.run([*HOOP, "audit", "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert "List the audit trail" in result.stdout
    assert "example:\n  hoop audit --since 1h --decision block\n" in result.stdout
