"""`[[notify]]` in hoop.toml: where approval requests and decisions are announced."""

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
"""

HOOK = """
[[notify]]
name = "hooks"
url = "https://hooks.example.com/hoop"
format = "json"
secret = "${HOOP_T_NOTIFY}"
"""


def load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "hoop.toml"
    path.write_text(BASE + text)
    return load_config(path)


def test_defaults_and_secret_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOP_T_NOTIFY", "sign-me")
    [target] = load(tmp_path, HOOK).notify
    assert (target.name, target.format, target.url.reveal()) == ("hooks", "json", "https://hooks.example.com/hoop")
    assert target.secret is not None and target.secret.reveal() == "sign-me"
    assert target.events == ("requested", "decided")
    assert target.connections == () and target.attempts == 5 and target.timeout == 5.0
    assert "sign-me" not in repr(target)


def test_slack_target_with_globs_and_events(tmp_path: Path) -> None:
    (tmp_path / "url").write_text("https://hooks.slack.com/services/T/B/X\n")
    [target] = load(
        tmp_path,
        f"""
[[notify]]
name = "chat"
url = "file:{tmp_path}/url"
format = "slack"
events = ["requested", "decided", "progress"]
connections = ["prod-*"]
attempts = 2
timeout = "10s"
queue = 50
""",
    ).notify
    assert target.url.reveal() == "https://hooks.slack.com/services/T/B/X"
    assert target.wants("requested", "prod-db") and not target.wants("requested", "staging")
    assert target.wants("progress", "prod-db") and (target.attempts, target.timeout, target.queue) == (2, 10.0, 50)
    assert "hooks.slack.com" not in repr(target)  # a webhook URL is a credential


@pytest.mark.parametrize(
    ("edit", "key", "expect"),
    [
        (('format = "json"', 'format = "xml"'), "notify[0].format", "expected one of json, slack"),
        (("https://hooks", "ftp://hooks"), "notify[0].url", "expected an http:// or https:// URL"),
        (("https://hooks.example.com/hoop", "https:///nohost"), "notify[0].url", "expected an http:// or https://"),
        (('secret = "${HOOP_T_NOTIFY}"\n', ""), "notify[0].secret", "json bodies are signed"),
        (('format = "json"', 'format = "slack"'), "notify[0].secret", "slack bodies are not signed"),
        (('name = "hooks"', 'name = "hooks"\nevents = ["killed"]'), "notify[0].events", "expected some of"),
        (('name = "hooks"', 'name = "hooks"\nevents = []'), "notify[0].events", "at least one"),
        (('name = "hooks"', 'name = "hooks"\nattempts = 0'), "notify[0].attempts", "between 1 and 20"),
        (('name = "hooks"', 'name = "hooks"\nretries = 3'), "notify[0].retries", "unknown key"),
        (('name = "hooks"\n', ""), "notify[0].name", "is required"),
        (("${HOOP_T_NOTIFY}", "${HOOP_T_NOTIFY_MISSING}"), "notify[0].secret", "HOOP_T_NOTIFY_MISSING is not set"),
    ],
)
def test_errors_name_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit: tuple[str, str], key: str, expect: str
) -> None:
    monkeypatch.setenv("HOOP_T_NOTIFY", "sign-me")
    with pytest.raises(ConfigError) as err:
        load(tmp_path, HOOK.replace(*edit))
    assert err.value.key == key and expect in err.value.problem


def test_names_are_unique_and_notify_is_an_array(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOP_T_NOTIFY", "sign-me")
    with pytest.raises(ConfigError) as err:
        load(tmp_path, HOOK + HOOK)
    assert err.value.key == "notify[1].name" and "duplicate" in err.value.problem
    with pytest.raises(ConfigError) as err:
        load(tmp_path, '[notify]\nname = "x"\n')
    assert err.value.key == "notify" and "[[notify]]" in err.value.problem
