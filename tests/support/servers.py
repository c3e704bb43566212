"""Reachability of the real servers the tests use; missing ones fail under CI, skip elsewhere."""

from __future__ import annotations

import os
import socket

import pytest


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def missing(reason: str) -> None:
    """A server or tool the test needs is absent: a failure under CI, a skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: a missing server is a failure, not a skip)")
    pytest.skip(reason)


def require(host: str, port: int, what: str) -> None:
    if not port_open(host, port):
        missing(f"{what} is not answering on {host}:{port}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
