"""`hoop rules`: the kind is inferred from a name when only one kind has it; `rules add`
reading a terminal says what it waits for."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from typing import Any

import pytest
from support.gateway import HOOP

pytestmark = pytest.mark.needs_postgres

RULES = """
[[rules]]
name = "cli-shared-name"
action = "block"
statements = ["truncate"]

[[rules]]
name = "cli-guard-only"
action = "block"
statements = ["drop"]

[[masking]]
name = "cli-shared-name"
columns = ["*.cli_secret"]
style = "redact"
"""


def test_rules_show_infers_the_kind_when_only_one_has_the_name(make_gateway: Any) -> None:
    gw = make_gateway(RULES)
    shown = gw.cli("rules", "show", "cli-guard-only").stdout
    assert "v1" in shown and '"drop"' in shown
    assert gw.cli("rules", "show", "guard", "cli-guard-only").stdout == shown

    both = gw.cli("rules", "show", "cli-shared-name", check=False)
    assert both.returncode == 1 and "guard cli-shared-name or mask cli-shared-name" in both.stderr
    assert "redact" in gw.cli("rules", "show", "mask", "cli-shared-name").stdout

    missing = gw.cli("rules", "show", "cli-nothing", check=False)
    assert missing.returncode == 1 and "no rule named 'cli-nothing'" in missing.stderr

    assert "disabled guard rule cli-guard-only" in gw.admin("rules", "disable", "cli-guard-only").stdout
    assert "enabled guard rule cli-guard-only" in gw.admin("rules", "enable", "cli-guard-only").stdout


def test_rules_add_at_a_terminal_says_what_it_waits_for(make_gateway: Any) -> None:
    gw = make_gateway()
    gw.issue_tokens("alice")
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [*HOOP, "rules", "add", "guard", "-c", str(gw.config)],
        stdin=follower,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**gw.env, "HOOP_TOKEN": gw.tokens["alice"]},
        cwd=gw.root,
    )
    os.close(follower)
    try:
        prompt = _read_until(proc, b"Ctrl-D", timeout=20)
        assert b"type the guard rule as TOML" in prompt
    finally:
        proc.kill()
        proc.wait()
        os.close(leader)


def _read_until(proc: subprocess.Popen[bytes], words: bytes, timeout: float) -> bytes:
    assert proc.stderr is not None
    seen = b""
    deadline = time.monotonic() + timeout
    while words not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 0.2)
        if ready:
            chunk = os.read(proc.stderr.fileno(), 4096)
            if not chunk:
                break
            seen += chunk
    return seen
