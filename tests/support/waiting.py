"""Waiting for what the gateway writes in the background (the journal writes every 0.2 s)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(check: Callable[[], T], timeout: float = 10.0) -> T:
    """Call `check` until it returns without an AssertionError and return its result; at the
    deadline, let the last AssertionError through, so the test fails with its message."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
