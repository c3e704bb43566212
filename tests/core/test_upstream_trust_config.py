"""Connections verify their server unless told otherwise; `hoop check` warns when a password
would go to a connection that does not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hoop.core.config import load_config
from hoop.core.errors import ConfigError

BASE = """
[gateway]
data_dir = "state"
[listen]
postgres = "127.0.0.1:15432"
[[connections]]
name = "{name}"
type = "{kind}"
host = "127.0.0.1"
username = "app"
password = "{password}"
groups = ["dev"]
{extra}
"""


def _config(tmp_path: Path, name: str = "pg", kind: str = "postgres", password: str = "pw", extra: str = "") -> Path:
    path = tmp_path / "hoop.toml"
    path.write_text(BASE.format(name=name, kind=kind, password=password, extra=extra))
    return path


def test_the_default_is_verify_full_with_the_system_store(tmp_path: Path) -> None:
    conn = load_config(_config(tmp_path)).connection("pg")
    assert conn is not None and conn.sslmode == "verify-full" and conn.sslrootcert is None


def test_verify_ca_needs_a_private_ca(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"connections\[0\]\.sslmode: verify-ca needs sslrootcert"):
        load_config(_config(tmp_path, extra='sslmode = "verify-ca"'))
    conn = load_config(_config(tmp_path, extra='sslmode = "verify-ca"\nsslrootcert = "ca.pem"')).connection("pg")
    assert conn is not None and conn.sslrootcert == tmp_path / "ca.pem"


def test_server_public_key_is_for_mysql_only(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"connections\[0\]\.server_public_key: only MySQL"):
        load_config(_config(tmp_path, extra='server_public_key = "k.pem"'))
    conn = load_config(_config(tmp_path, "my", "mysql", extra='server_public_key = "k.pem"')).connection("my")
    assert conn is not None and conn.server_public_key == tmp_path / "k.pem"


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hoop.cli", "check", "-c", str(path)], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("sslmode", ["disable", "prefer", "require"])
def test_check_warns_about_a_password_to_an_unverified_server(tmp_path: Path, sslmode: str) -> None:
    result = _check(_config(tmp_path, extra=f'sslmode = "{sslmode}"'))
    assert result.returncode == 0, result.stderr
    assert f"warning: connection 'pg' has a password but sslmode={sslmode} does not verify" in result.stderr
    assert "pw" not in result.stderr.replace("password", "")


@pytest.mark.parametrize(
    ("password", "extra"),
    [
        ("pw", ""),
        ("pw", 'sslmode = "require"\nsslrootcert = "ca.pem"'),
        ("", 'sslmode = "disable"'),
    ],
)
def test_check_is_quiet_when_nothing_secret_goes_unverified(tmp_path: Path, password: str, extra: str) -> None:
    result = _check(_config(tmp_path, password=password, extra=extra))
    assert result.returncode == 0 and "warning" not in result.stderr, result.stderr


def test_the_repository_example_says_what_it_needs() -> None:
    text = (Path(__file__).parents[2] / "hoop.toml").read_text()
    config = load_config(Path(__file__).parents[2] / "hoop.toml")
    for conn in config.connections:
        if conn.type in ("postgres", "mysql"):
            assert conn.sslmode == "disable" and conn.host == "127.0.0.1"
    assert "verify-full" in text and "sslrootcert" in text and "server_public_key" in text
