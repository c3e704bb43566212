"""Fixtures for TUI tests: the deterministic store and an app factory."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tui_fixtures import NOW, FakeControl, build_store  # noqa: E402

from hoop.tui.app import HoopApp  # noqa: E402
from hoop.tui.data import GatewayLink  # noqa: E402


@pytest.fixture
def history(tmp_path: Path) -> Any:
    h = build_store(tmp_path)
    yield h
    h.store.close()


@pytest.fixture
def control() -> FakeControl:
    return FakeControl()


@pytest.fixture
def make_app(history: Any, control: FakeControl) -> Any:
    def make(start: str = "approvals", ctl: Any = None) -> HoopApp:
        return HoopApp(history, GatewayLink(ctl if ctl is not None else control), now=lambda: NOW, poll=0, start=start)

    return make
