"""The CLI in scripts: `--version`, and output cut short by a reader that stops (`| head -1`)
ends quietly, as other Unix tools do."""

from __future__ import annotations

import shlex
import subprocess
from typing import Any

import pytest
from support.gateway import HOOP

pytestmark = pytest.mark.needs_postgres

HOOP_CMD = shlex.join(HOOP)
STATEMENTS = 600  # enough audit lines that `hoop audit` writes well past the pipe's buffer


def _shell(cmd: str, gw: Any) -> subprocess.CompletedProcess[str]:
    """`cmd` in bash with pipefail: the pipeline's status is hoop's when hoop fails."""
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, env=gw.env, cwd=gw.root, timeout=60
    )


def test_version_prints_the_version() -> None:
    from importlib.metadata import version

    result = subprocess.run([*HOOP, "--version"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"hoop {version('hoop')}"


def test_listings_cut_short_by_the_reader_end_quietly(make_gateway: Any) -> None:
    gw = make_gateway()
    token = gw.token("alice")
    script = "".join(f"SELECT {i};\n" for i in range(STATEMENTS))
    assert gw.psql("alice", token, None, "-q", input=script).returncode == 0
    gw.audit(until=lambda events: sum(e["action"] == "statement" for e in events) >= STATEMENTS)

    config = gw.config
    for cmd in (
        f"{HOOP_CMD} audit --limit 5000 -c {config} | head -1",
        f"{HOOP_CMD} audit -c {config} | true",
        f"{HOOP_CMD} sessions -c {config} | true",
        f"{HOOP_CMD} replay 1 --text -c {config} | head -1",
        f"{HOOP_CMD} audit --json --limit 5000 -c {config} | head -c 10",
    ):
        result = _shell(cmd, gw)
        assert result.returncode == 0, f"{cmd}: exit {result.returncode}\n{result.stderr}"
        assert result.stderr == "", f"{cmd}:\n{result.stderr}"
