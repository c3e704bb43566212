"""The package seams of DESIGN.md, checked by importing each package in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHECKS = [
    # (modules to import, prefixes that must then be absent from sys.modules)
    (
        [
            "hoop.core.config",
            "hoop.core.pipeline",
            "hoop.core.guardrails",
            "hoop.core.masking",
            "hoop.core.audit",
            "hoop.core.approvals",
            "hoop.core.recording",
            "hoop.core.identity",
            "hoop.core.store.journal",
        ],
        ["hoop.server", "hoop.tui", "textual", "asyncssh"],
    ),
    (["hoop.server.postgres.listener"], ["hoop.server.mysql", "hoop.server.ssh", "hoop.tui", "textual"]),
    (["hoop.server.mysql.codec"], ["hoop.server.postgres", "hoop.server.ssh", "hoop.tui"]),
    (["hoop.control_client"], ["hoop.server"]),
    (
        [
            "hoop.tui.app",
            "hoop.tui.screens.sessions",
            "hoop.tui.screens.approvals",
            "hoop.tui.screens.rules",
            "hoop.tui.screens.recordings",
            "hoop.tui.screens.replay",
            "hoop.commands.tui",
        ],
        ["hoop.server"],
    ),
]


@pytest.mark.parametrize(("modules", "forbidden"), CHECKS, ids=[c[0][0] for c in CHECKS])
def test_imports_respect_seams(modules: list[str], forbidden: list[str]) -> None:
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"bad = sorted(n for n in sys.modules if any(n == f or n.startswith(f + '.') for f in {forbidden!r}))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"{modules} pulled in {result.stdout.strip()}"
