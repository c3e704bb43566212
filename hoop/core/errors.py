"""Typed errors raised by the core. Each protocol translates them to wire errors in one place."""

from __future__ import annotations


class HoopError(Exception):
    """Base class for every error Hoop raises on purpose."""


class ConfigError(HoopError):
    """A configuration value is missing or wrong; names the file, the key and what was expected."""

    def __init__(self, file: str, key: str, problem: str) -> None:
        self.file = file
        self.key = key
        self.problem = problem
        super().__init__(f"{file}: {key}: {problem}")


class AuthError(HoopError):
    """The identity could not be established (bad, expired or revoked credential)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class AccessDenied(HoopError):
    """The identity may not use the requested connection (or it does not exist)."""
