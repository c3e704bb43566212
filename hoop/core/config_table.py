"""Reading one TOML table of hoop.toml: typed values, keys consumed, errors naming the file
and the dotted key. Whatever a table's reader leaves unread is an unknown key (`done`)."""

from __future__ import annotations

import builtins
import math
import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, overload

from hoop.core.durations import MAX_DURATION, bounded, parse_duration_text
from hoop.core.errors import ConfigError
from hoop.core.secrets import DeferredSecret, Secret, resolve_secret

# Whether the config being parsed reads its `${VAR}` / `file:` secrets now (see load_config).
RESOLVE_SECRETS: ContextVar[bool] = ContextVar("resolve_secrets", default=True)


class Table:
    """Reads typed values out of one TOML table and remembers which keys were consumed."""

    def __init__(self, data: Any, file: str, key: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(file, key, f"expected a table, got {type(data).__name__}")
        self.data = dict(data)
        self.file = file
        self.key = key

    def _k(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def error(self, name: str, problem: str) -> ConfigError:
        return ConfigError(self.file, self._k(name), problem)

    # `str`/`int` shadow the builtins inside this class body, hence `builtins.` in annotations below.
    # The overloads say when None can come back: only with no default and required=False.
    @overload
    def str(self, name: builtins.str, default: builtins.str, *, required: bool = ...) -> builtins.str: ...
    @overload
    def str(self, name: builtins.str, default: None = ..., *, required: Literal[True]) -> builtins.str: ...
    @overload
    def str(self, name: builtins.str, default: None = ..., *, required: bool = ...) -> builtins.str | None: ...
    def str(
        self, name: builtins.str, default: builtins.str | None = None, *, required: bool = False
    ) -> builtins.str | None:
        if name not in self.data:
            if required:
                raise self.error(name, "is required (expected a string)")
            return default
        value = self.data.pop(name)
        if not isinstance(value, str) or (required and not value):
            raise self.error(name, f"expected a non-empty string, got {value!r}")
        return value

    @overload
    def int(
        self, name: builtins.str, default: builtins.int, *, lo: builtins.int = ..., hi: builtins.int = ...
    ) -> builtins.int: ...
    @overload
    def int(
        self, name: builtins.str, default: None = ..., *, lo: builtins.int = ..., hi: builtins.int = ...
    ) -> builtins.int | None: ...
    def int(
        self, name: builtins.str, default: builtins.int | None = None, *, lo: builtins.int = 0, hi: builtins.int = 2**62
    ) -> builtins.int | None:
        if name not in self.data:
            return default
        value = self.data.pop(name)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self.error(name, f"expected an integer between {lo} and {hi}, got {value!r}")
        return value

    def float(self, name: builtins.str, default: float) -> float:
        if name not in self.data:
            return default
        value = self.data.pop(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise self.error(name, f"expected a positive, finite number, got {value!r}")
        return float(value)

    def duration(
        self, name: builtins.str, default: builtins.float, maximum: builtins.float = MAX_DURATION
    ) -> builtins.float:
        """Seconds, or a text such as "30m", "8h", "30d"; positive, finite, at most `maximum`."""
        if name not in self.data:
            return default
        value = self.data.pop(name)
        try:
            seconds = parse_duration_text(value) if isinstance(value, builtins.str) else value
            return bounded(seconds, maximum)
        except ValueError as exc:
            raise self.error(name, f"expected a duration such as 30m, 8h or 30d: {exc}") from None

    def bool(self, name: builtins.str, default: bool) -> bool:
        if name not in self.data:
            return default
        value = self.data.pop(name)
        if not isinstance(value, bool):
            raise self.error(name, f"expected true or false, got {value!r}")
        return value

    def strs(self, name: builtins.str) -> tuple[builtins.str, ...]:
        if name not in self.data:
            return ()
        value = self.data.pop(name)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(name, f"expected a list of strings, got {value!r}")
        return tuple(value)

    def path(self, name: builtins.str, base: Path, default: builtins.str | None = None) -> Path | None:
        raw = self.str(name, default)
        if raw is None:
            return None
        p = Path(os.path.expanduser(raw))
        return p if p.is_absolute() else (base / p)

    def secret(self, name: builtins.str) -> Secret | None:
        raw = self.str(name)
        if raw is None:
            return None
        if not RESOLVE_SECRETS.get():
            return DeferredSecret(raw, self.file, self._k(name))
        try:
            return resolve_secret(raw)
        except ValueError as exc:
            raise self.error(name, str(exc)) from None

    def done(self) -> None:
        if self.data:
            unknown = ", ".join(sorted(self.data))
            raise ConfigError(self.file, self._k(sorted(self.data)[0]), f"unknown key(s): {unknown}")


def parse_address(value: str, file: str, key: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(file, key, f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)
