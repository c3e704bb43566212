"""Credentials the gateway holds, wrapped so they cannot leak by accident.

`Secret` hides its value from repr/str/format, so a credential that ends up in a log line,
an exception or a dataclass repr prints as `Secret(****)`. Code that really needs the value
calls `reveal()`, which keeps those places easy to find.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from hoop.core.errors import ConfigError

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(****)"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return "****"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("secret", self._value))

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("secrets are not picklable")


def resolve_secret(raw: str) -> Secret:
    """`${VAR}` (or `${VAR:-default}`) from the environment, `file:/path` from a file,
    anything else literally.

    Raises ValueError naming the variable or file (never the value) when it is missing.
    """
    if raw.startswith("file:"):
        path = Path(os.path.expanduser(raw[5:]))
        try:
            return Secret(path.read_text(encoding="utf-8").rstrip("\r\n"))
        except OSError as exc:
            raise ValueError(f"cannot read secret file {path}: {exc.strerror}") from None

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name not in os.environ:
            if default is not None:
                return default
            raise ValueError(f"environment variable {name} is not set")
        return os.environ[name]

    return Secret(_ENV.sub(substitute, raw))


class DeferredSecret(Secret):
    """A `${VAR}` or `file:` reference from the config, read only when revealed.

    Commands that never use a credential (the console, listings, replays) load the config
    with these, so they neither need the gateway's secrets in their environment nor hold
    them in memory. A missing variable or file is reported when the value is first needed,
    naming the file and key (never the value)."""

    __slots__ = ("_raw", "_file", "_key")

    def __init__(self, raw: str, file: str, key: str) -> None:
        super().__init__("")
        self._raw, self._file, self._key = raw, file, key

    def reveal(self) -> str:
        try:
            return resolve_secret(self._raw).reveal()
        except ValueError as exc:
            raise ConfigError(self._file, self._key, str(exc)) from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DeferredSecret) and other._raw == self._raw

    def __hash__(self) -> int:
        return hash(("deferred secret", self._raw))
