"""`[[notify]]` in hoop.toml: HTTP endpoints told about approval requests and decisions.

Each target names a URL (a credential itself for chat webhooks, so it is read like one:
`${VAR}`, `file:` or literal, and never logged), a body format, and which events and
connections it wants. JSON bodies are signed with the target's secret; Slack-compatible ones
are not (the webhook URL is what the chat service trusts). The delivery itself is the
gateway's (hoop/server/notify.py).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from hoop.core.durations import bounded, parse_duration_text
from hoop.core.errors import ConfigError
from hoop.core.secrets import DeferredSecret, Secret, resolve_secret

FORMATS = ("json", "slack")
# What an Approvals listener announces, grouped as a notification target names them:
# "requested" (a new hold), "progress" (one approval of several), "decided" (any end).
EVENTS = ("requested", "progress", "decided")
DEFAULT_EVENTS = ("requested", "decided")
KEYS = ("name", "url", "format", "secret", "events", "connections", "attempts", "timeout", "queue")


@dataclass(frozen=True)
class NotifyTarget:
    name: str
    url: Secret
    format: str = "json"
    secret: Secret | None = None  # json: HMAC-SHA256 key of the signature header
    events: tuple[str, ...] = DEFAULT_EVENTS
    connections: tuple[str, ...] = ()  # globs; none means every connection
    attempts: int = 5  # delivery attempts per event, with exponential back-off between them
    timeout: float = 5.0  # seconds one attempt may take, connecting included
    queue: int = 1000  # events waiting for this target; beyond it the oldest is dropped (logged)

    def wants(self, event: str, connection: str) -> bool:
        if event not in self.events:
            return False
        return not self.connections or any(fnmatch.fnmatchcase(connection, g) for g in self.connections)


def notify_from_list(value: Any, *, file: str, resolve: bool = True) -> tuple[NotifyTarget, ...]:
    """The `[[notify]]` array; every error names the dotted key (`notify[1].url`)."""
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(file, "notify", "expected an array of tables ([[notify]])")
    targets: list[NotifyTarget] = []
    for i, table in enumerate(value):
        target = _target(dict(table), file, f"notify[{i}]", resolve)
        if any(t.name == target.name for t in targets):
            raise ConfigError(file, f"notify[{i}].name", f"duplicate name {target.name!r}")
        targets.append(target)
    return tuple(targets)


def _target(data: dict[str, Any], file: str, key: str, resolve: bool) -> NotifyTarget:
    def error(name: str, problem: str) -> ConfigError:
        return ConfigError(file, f"{key}.{name}", problem)

    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise error(unknown[0], f"unknown key(s): {', '.join(unknown)}")

    def text(name: str, default: str | None = None) -> str:
        value = data.get(name, default)
        if value is None:
            raise error(name, "is required (expected a string)")
        if not isinstance(value, str) or not value:
            raise error(name, f"expected a non-empty string, got {value!r}")
        return value

    def secret(name: str) -> Secret | None:
        if name not in data:
            return None
        raw = text(name)
        if not resolve:
            return DeferredSecret(raw, file, f"{key}.{name}")
        try:
            return resolve_secret(raw)
        except ValueError as exc:
            raise error(name, str(exc)) from None

    def words(name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = data.get(name, list(default))
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise error(name, f"expected a list of strings, got {value!r}")
        return tuple(value)

    def whole(name: str, default: int, lo: int, hi: int) -> int:
        value = data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise error(name, f"expected an integer between {lo} and {hi}, got {value!r}")
        return value

    name = text("name")
    fmt = text("format", "json")
    if fmt not in FORMATS:
        raise error("format", f"expected one of {', '.join(FORMATS)}, got {fmt!r}")
    url = secret("url")
    if url is None:
        raise error("url", "is required (expected an http:// or https:// URL)")
    if not isinstance(url, DeferredSecret):
        _check_url(url.reveal(), error)
    signing = secret("secret")
    if fmt == "json" and signing is None:
        raise error("secret", "json bodies are signed: set a secret (${VAR} or file:PATH) the receiver shares")
    if fmt == "slack" and signing is not None:
        raise error("secret", "slack bodies are not signed (the webhook URL is the credential); remove it")
    events = words("events", DEFAULT_EVENTS)
    if not events:
        raise error("events", f"expected at least one of {', '.join(EVENTS)}")
    if bad := [e for e in events if e not in EVENTS]:
        raise error("events", f"expected some of {', '.join(EVENTS)}, got {bad[0]!r}")
    timeout = data.get("timeout", 5.0)
    try:
        seconds = bounded(parse_duration_text(timeout) if isinstance(timeout, str) else timeout, 300.0)
    except ValueError as exc:
        raise error("timeout", f"expected a duration up to 5m such as 5s: {exc}") from None
    return NotifyTarget(
        name=name,
        url=url,
        format=fmt,
        secret=signing,
        events=events,
        connections=words("connections", ()),
        attempts=whole("attempts", 5, 1, 20),
        timeout=seconds,
        queue=whole("queue", 1000, 1, 100_000),
    )


def _check_url(url: str, error: Any) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # The URL may carry a webhook token: the message never repeats it.
        raise error("url", "expected an http:// or https:// URL with a host")
