"""The control endpoint: a Unix socket in data_dir where `hoop approve`, `hoop deny`, the TUI
and other local tools ask the running gateway to act.

One JSON object per line each way. Every request carries the caller's token; the gateway
authenticates it like any login, authorises the operation by the caller's roles
(hoop/core/roles.py), performs it as that identity and audits it; a refusal is audited as
`control.refused` with the operation and why. Only `health` (read-only status) is answered
without a token. The socket file is created mode 0600, so only the gateway's OS user can
connect at all.

Who may do what: admins change rules and masking, reload the config and kill any session; approvers decide the
requests of the rules that name their group and watch and kill sessions on the connections
those rules cover; auditors read everything and change nothing; anyone else sees only their
own sessions.
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
from hoop.core.roles import NotAllowed, RoleSet
from hoop.server import control_tui
from hoop.server.services import Services

log = logging.getLogger("hoop.control")
MAX_REQUEST = 1 << 20

Handler = Callable[[Services, Identity, dict[str, Any]], Awaitable[Any]]
HANDLERS: dict[str, Handler] = {}
# Read-only status anyone who can reach the socket may ask for, without a token.
PUBLIC = frozenset({"health"})
NOBODY = Identity("", frozenset(), "socket")
TOKEN_NEEDED = "a token is required for {op}: pass --token, set HOOP_TOKEN or run `hoop login`"


def handler(op: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[op] = fn
        return fn

    return register


def role_text(roles: RoleSet) -> str:
    return f"your roles: {', '.join(roles.names)}" if roles.names else "you hold no role"


@handler("whoami")
async def _whoami(services: Services, who: Identity, req: dict[str, Any]) -> Any:
    """The caller's name, groups, roles and approver scope (the rules and connection globs)."""
    return {"user": who.name, "groups": sorted(who.groups), **services.roles_of(who).as_dict()}


@handler("approve")
async def _approve(services: Services, who: Identity, req: dict[str, Any]) -> Any:
    # The grant goes as sent: decide() refuses anything but a finite number within [gateway] max_grant.
    return services.approvals.decide(int(req["id"]), who, True, str(req.get("reason", "")), req.get("grant_seconds"))


@handler("deny")
async def _deny(services: Services, who: Identity, req: dict[str, Any]) -> Any:
    return services.approvals.decide(int(req["id"]), who, False, str(req.get("reason", "")))


@handler("live")
async def _live(services: Services, who: Identity, req: dict[str, Any]) -> Any:
    """Admins and auditors see every live session, approvers those in their scope, anyone their
    own: on a shared store, those every gateway carries."""
    roles = services.roles_of(who)
    here = services.config.gateway.name
    sessions: list[dict[str, Any]] = [
        {"id": s.id, "protocol": s.protocol, "kind": s.kind, "user": s.user, "connection": s.connection}
        for s in services.live.values()
    ]
    sessions = [{**s, "gateway": here} for s in sessions]
    if services.peers is not None:
        sessions += [{**row, "kind": ""} for row in await services.peers.open_elsewhere()]
    return [s for s in sessions if roles.watches(s["connection"]) or s["user"] == who.name]


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


async def _session(services: Services, session_id: int) -> tuple[str, str, str | None]:
    """(connection, user, the gateway carrying it when not this one) of a live session."""
    live = services.live.get(session_id)
    if live is not None:
        return live.connection, live.user, None
    row = None if services.peers is None else await services.peers.session_elsewhere(session_id)
    if row is None:
        raise HoopError(f"session {session_id} is not live")
    return row["connection"], row["user"], row["gateway"]


@handler("kill")
async def _kill(services: Services, who: Identity, req: dict[str, Any]) -> Any:
    session_id, reason = int(req["id"]), str(req.get("reason", "")).strip()
    if not reason:
        raise HoopError("a reason is required to kill a session")
    roles = services.roles_of(who)
    if not (roles.admin or roles.approver):
        if roles.auditor:
            raise NotAllowed("auditors read, they may not kill sessions")
        raise NotAllowed(f"only admins and approvers may kill sessions ({role_text(roles)})")
    connection, user, elsewhere = await _session(services, session_id)
    if not roles.admin and not roles.scope.covers(connection):
        raise NotAllowed(
            f"session {session_id} is on connection {connection!r}, outside the connections your rules "
            f"cover ({', '.join(roles.scope.connections) or 'none'})"
        )
    if elsewhere is not None and services.peers is not None:  # the gateway carrying it kills and audits
        return await services.peers.ask(elsewhere, "kill", id=session_id, reason=reason, by=who.name)
    live = services.live[session_id]
    services.journal.audit(who.name, "session.kill", connection, session=session_id, reason=reason, user=user)
    live.kill(reason)
    return {"id": session_id, "status": "killed"}


@handler("reload")
async def _reload(services: Services, who: Identity, req: dict[str, Any]) -> Any:
    """Admins only: re-read hoop.toml (hoop/server/reload.py); a refusal comes back as the error."""
    roles = services.roles_of(who)
    if not roles.admin:
        raise NotAllowed(f"only admins may reload the configuration ({role_text(roles)})")
    return services.reload(who.name)


@handler("moderate")
async def _moderate(services: Services, who: Identity, req: dict[str, Any]) -> Any:
    """Watch a moderated session as its moderator, renewing the lease each call (or `leave`);
    a session that is not moderated answers `moderated: false` to whoever may watch it."""
    session_id = int(req["id"])
    connection, user, elsewhere = await _session(services, session_id)
    roles = services.roles_of(who)
    if not (roles.watches(connection) or user == who.name):
        raise NotAllowed(f"session {session_id} is outside what you may watch ({role_text(roles)})")
    if elsewhere is not None and services.peers is not None:  # the lease lives where the session runs
        return await services.peers.ask(
            elsewhere, "moderate", id=session_id, by=who.name, groups=sorted(who.groups), leave=bool(req.get("leave"))
        )
    return services.moderators.moderate(session_id, who, bool(req.get("leave")))


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
        who = NOBODY
        if op not in PUBLIC:
            token = str(req.get("token") or "")
            if not token:
                self.services.journal.audit("-", "control.refused", str(op), op=op, why="no token")
                return {"ok": False, "error": TOKEN_NEEDED.format(op=op)}
            try:
                who = await self.services.authenticate(str(req.get("user", "")), token, door="control", client="local")
            except AuthError as exc:
                return {"ok": False, "error": f"authentication failed: {exc.reason}"}
        try:
            return {"ok": True, "result": await fn(self.services, who, req)}
        except NotAllowed as exc:
            self.services.journal.audit(who.name, "control.refused", str(op), op=op, why=str(exc))
            return {"ok": False, "error": str(exc)}
        except (DecisionRefused, HoopError) as exc:
            return {"ok": False, "error": str(exc)}
        except (KeyError, TypeError, ValueError) as exc:
            return {"ok": False, "error": f"bad request for {op}: {exc}"}


HANDLERS.update(control_tui.OPERATIONS)  # the TUI's rule operations
