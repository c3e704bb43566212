"""hoop.toml: one typed schema; errors name the file, the key and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from hoop.core.config import load_config
from hoop.core.errors import ConfigError

BASE = """
[gateway]
data_dir = "state"
[listen]
postgres = "127.0.0.1:15432"
[[users]]
name = "alice"
groups = ["dev"]
[[connections]]
name = "pg"
type = "postgres"
host = "127.0.0.1"
database = "test"
username = "app"
password = "${HOOP_T_PW}"
groups = ["dev"]
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "hoop.toml"
    p.write_text(text)
    return p


def test_repository_example_is_valid() -> None:
    config = load_config(Path(__file__).parents[2] / "hoop.toml")
    assert config.connection("pg") is not None


def test_paths_resolve_against_config_folder_and_env_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOP_T_PW", "s3cret-value")
    config = load_config(write(tmp_path, BASE))
    assert config.gateway.data_dir == tmp_path / "state"
    assert config.gateway.recordings_dir == tmp_path / "recordings"
    conn = config.connection("pg")
    assert conn is not None and conn.port == 5432 and conn.password is not None
    assert conn.password.reveal() == "s3cret-value"
    assert "s3cret-value" not in repr(conn)


def test_file_secret(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("from-file\n")
    config = load_config(write(tmp_path, BASE.replace("${HOOP_T_PW}", f"file:{tmp_path}/pw")))
    assert config.connection("pg").password.reveal() == "from-file"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("edit", "key", "expect"),
    [
        (('username = "app"', 'usename = "app"'), "connections[0].username", "is required"),
        (("groups = [\"dev\"]\n'''", "groups = [\"dev\"]\nextra = 1\n'''"), "connections[0].extra", "unknown key"),
        (('type = "postgres"', 'type = "oracle"'), "connections[0].type", "expected one of"),
        (('postgres = "127.0.0.1:15432"', 'postgres = "15432"'), "listen.postgres", "expected HOST:PORT"),
        (("[gateway]", "[gateway]\nlog_level = 3"), "gateway.log_level", "expected a non-empty string"),
        (("${HOOP_T_PW}", "${HOOP_T_MISSING}"), "connections[0].password", "HOOP_T_MISSING is not set"),
        (("groups = [\"dev\"]\n'''", "ssh_client = \"putty\"\n'''"), "connections[0].ssh_client", "builtin, openssh"),
    ],
)
def test_errors_name_file_key_and_expectation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit: tuple[str, str], key: str, expect: str
) -> None:
    monkeypatch.setenv("HOOP_T_PW", "x")
    text = (BASE + "'''").replace(*edit).removesuffix("'''")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    message = str(excinfo.value)
    assert message.startswith(f"{path}: {key}: ") and expect in message


def test_not_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[gateway\n"))
