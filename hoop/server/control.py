"""The control endpoint: a Unix socket in data_dir where `hoop approve`, `hoop deny`, the TUI
and other local tools ask the running gateway to act.

One JSON object per line each way. Every request carries the caller's token; the gateway
authenticates it like any login, performs the action as that identity and audits it. The
socket file is created mode 0600, so only the gateway's OS user can connect at all.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from hoop.core.approvals import DecisionRefused
from hoop.core.errors import AuthError, HoopError
from hoop.core.identity import Identity
from hoop.server import control_tui
from hoop.server.services import Services

log = logging.getLogger("hoop.control")
MAX_REQUEST = 1 << 20

Handler = Callable[[Services, Identity, dict[str, Any]], Awaitable[Any]]
HANDLERS: dict[str, Handler] = {}


def handler(op: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[op] = fn
        return fn

    return register


@handler("whoami")
async def _whoami(services: Services, who: Identity, req: dict[str, Any]) -> Any:
    return {"user": who.name, "groups": sorted(who.groups)}


@handler("approve")
async def _approve(services: Services, who: Identity, req: dict[str, Any]) -> Any:
    # The grant goes as sent: decide() refuses anything but a finite number within [gateway] max_grant.
    return services.approvals.decide(int(req["id"]), who, True, str(req.get("reason", "")), req.get("grant_seconds"))


@handler("deny")
async def _deny(services: Services, who: Identity, req: dict[str, Any]) -> Any:
    return services.approvals.decide(int(req["id"]), who, False, str(req.get("reason", "")))


@handler("live")
async def _live(services: Services, who: Identity, req: dict[str, Any]) -> Any:
    return [
        {"id": s.id, "protocol": s.protocol, "kind": s.kind, "user": s.user, "connection": s.connection}
        for s in services.live.values()
    ]


@handler("health")
async def _health(services: Services, who: Identity, req: dict[str, Any]) -> Any:
    """Whether records are being stored, and how many wait: for monitoring and the CLI."""
    health = services.journal.health()
    return {
        "recording": "healthy" if health.healthy else "unavailable",
        "waiting": health.waiting,
        "problem": health.problem,
        "failing_since": health.since,
        "refusing": bool(services.refusing),
    }


@handler("kill")
async def _kill(services: Services, who: Identity, req: dict[str, Any]) -> Any:
    session_id, reason = int(req["id"]), str(req.get("reason", "")).strip()
    if not reason:
        raise HoopError("a reason is required to kill a session")
    if not services.is_approver(who):
        raise HoopError("only members of an approver group may kill sessions")
    live = services.live.get(session_id)
    if live is None:
        raise HoopError(f"session {session_id} is not live")
    services.journal.audit(who.name, "session.kill", live.connection, session=session_id, reason=reason, user=live.user)
    live.kill(reason)
    return {"id": session_id, "status": "killed"}


class ControlServer:
    def __init__(self, services: Services, path: Path) -> None:
        self.services = services
        self.path = path

    async def start(self) -> asyncio.base_events.Server:
        if self.path.exists():
            self.path.unlink()
        old = os.umask(0o177)
        try:
            server = await asyncio.start_unix_server(self.serve, str(self.path), limit=MAX_REQUEST)
        finally:
            os.umask(old)
        return server

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                reply = await self.handle(line)
                writer.write(json.dumps(reply, default=str).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()

    async def handle(self, line: bytes) -> dict[str, Any]:
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise ValueError("expected a JSON object")
        except ValueError as exc:
            return {"ok": False, "error": f"malformed request: {exc}"}
        op = req.get("op")
        fn = HANDLERS.get(op)  # type: ignore[arg-type]
        if fn is None:
            return {"ok": False, "error": f"unknown operation {op!r}"}
        try:
            who = await self.services.authenticate(
                str(req.get("user", "")), str(req.get("token", "")), door="control", client="local"
            )
        except AuthError as exc:
            return {"ok": False, "error": f"authentication failed: {exc.reason}"}
        try:
            return {"ok": True, "result": await fn(self.services, who, req)}
        except (DecisionRefused, HoopError) as exc:
            return {"ok": False, "error": str(exc)}
        except (KeyError, TypeError, ValueError) as exc:
            return {"ok": False, "error": f"bad request for {op}: {exc}"}


HANDLERS.update(control_tui.OPERATIONS)  # the TUI's rule operations
