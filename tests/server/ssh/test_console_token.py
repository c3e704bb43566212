"""The SSH-hosted console's token: alive only while the console keeps extending it, and never
brought back once revoked (its session killed) or expired."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from hoop.core.config import parse_config
from hoop.core.identity import TokenService
from hoop.core.store.base import Store
from hoop.server.ssh.tui_bridge import console_env, keep_token_alive


def tokens(tmp_path: Path, store: Store) -> TokenService:
    raw = {"gateway": {"data_dir": str(tmp_path)}, "users": [{"name": "bob", "groups": ["dba"]}]}
    return TokenService(store, parse_config(raw, tmp_path / "hoop.toml"))


def expires(service: TokenService, token_id: str) -> float:
    return next(t["expires"] for t in service.list() if t["id"] == token_id)


async def test_the_token_lives_while_extended_and_stops_when_revoked(tmp_path: Path, store: Store) -> None:
    service = tokens(tmp_path, store)
    issued = service.issue("bob", 1.0, "ssh tui session")
    keeper = asyncio.ensure_future(keep_token_alive(service, issued.id, 1.0, 0.2))
    await asyncio.sleep(1.5)  # past the first expiry: extended meanwhile
    assert service.authenticate("bob", issued.token).name == "bob"
    service.revoke(issued.id)
    await asyncio.wait_for(keeper, 2)  # the keeper gives up on a revoked token
    assert expires(service, issued.id) < time.time() + 1.0


async def test_cancelled_keeper_lets_the_token_expire(tmp_path: Path, store: Store) -> None:
    service = tokens(tmp_path, store)
    issued = service.issue("bob", 0.5, "ssh tui session")
    keeper = asyncio.ensure_future(keep_token_alive(service, issued.id, 0.5, 0.1))
    await asyncio.sleep(0.3)
    keeper.cancel()
    await asyncio.sleep(0.7)
    assert expires(service, issued.id) <= time.time()


def test_console_env_is_an_allow_list() -> None:
    parent = {"PATH": "/bin", "HOME": "/h", "LANG": "C.UTF-8", "LC_ALL": "C", "DB_PASSWORD": "x", "AWS_SECRET": "y"}
    env = console_env(parent, "hoop_1_t", "xterm")
    assert env == {
        "PATH": "/bin",
        "HOME": "/h",
        "LANG": "C.UTF-8",
        "LC_ALL": "C",
        "HOOP_TOKEN": "hoop_1_t",
        "TERM": "xterm",
        "COLORTERM": "truecolor",
    }
