"""Only the gateway and `hoop check` read the secrets the config names: every other command
loads hoop.toml without them, so it runs where they are not (the SSH-hosted console)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hoop.core.config import load_config
from hoop.core.errors import ConfigError

CONFIG = """
[gateway]
data_dir = "state"
[[users]]
name = "alice"
groups = ["dev"]
[[connections]]
name = "pg"
type = "postgres"
host = "127.0.0.1"
username = "app"
password = "${HOOP_T_ABSENT_PW}"
groups = ["dev"]
[auth.oidc]
issuer = "http://127.0.0.1:1/"
client_id = "hoop"
client_secret = "file:/nonexistent/hoop-secret"
"""


def hoop(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HOOP_T_ABSENT_PW"}
    return subprocess.run(
        [sys.executable, "-m", "hoop.cli", *args, "-c", str(tmp_path / "hoop.toml")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )


def test_unresolved_secrets_are_read_when_revealed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "hoop.toml").write_text(CONFIG)
    monkeypatch.delenv("HOOP_T_ABSENT_PW", raising=False)
    with pytest.raises(ConfigError, match="connections\\[0\\].password: environment variable HOOP_T_ABSENT_PW"):
        load_config(tmp_path / "hoop.toml")
    config = load_config(tmp_path / "hoop.toml", resolve_secrets=False)
    password = config.connections[0].password
    assert password is not None and "HOOP_T_ABSENT_PW" not in repr(password)
    with pytest.raises(ConfigError, match="connections\\[0\\].password: environment variable HOOP_T_ABSENT_PW"):
        password.reveal()
    monkeypatch.setenv("HOOP_T_ABSENT_PW", "s3cret")
    assert password.reveal() == "s3cret"
    with pytest.raises(ConfigError, match="auth.oidc.client_secret: cannot read secret file"):
        config.oidc.client_secret.reveal()


def test_client_commands_run_without_the_secrets_and_check_needs_them(tmp_path: Path) -> None:
    (tmp_path / "hoop.toml").write_text(CONFIG)
    for args in (["sessions"], ["approvals"], ["token", "list"], ["audit"], ["rules", "list"]):
        out = hoop(tmp_path, *args)
        assert out.returncode == 0, (args, out.stderr)
    check = hoop(tmp_path, "check")
    assert check.returncode == 2 and "HOOP_T_ABSENT_PW is not set" in check.stderr
