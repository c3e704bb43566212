"""Gateways that share a PostgreSQL store act as one (`[gateway] store`, each its own `name`).

Everything durable is in the store already; what one gateway must tell another at once goes
through PostgreSQL LISTEN/NOTIFY (hoop/core/store/listen.py), never through a side channel:

- `hoop_approvals`: the id of a request decided through this gateway but held by another. The
  holder reads the decision from the store and wakes the held statement. A notification lost
  while a listener reconnects costs at most RECHECK seconds: every gateway also re-reads its
  own pending holds on that timer, so no request is stranded.
- `hoop_control`: an operation for the gateway that carries a session (kill, moderate), as
  JSON naming that gateway, and its answer, naming the asker. The asking gateway has already
  authenticated and authorised the caller against the stored session row; the carrier acts
  and audits in the caller's name. Whoever can NOTIFY on the store database can write to the
  store anyway: the store is the root of trust of every gateway sharing it.

A gateway on its own SQLite store starts none of this.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Callable
from typing import Any

from hoop.core.errors import HoopError
from hoop.core.identity import Identity
from hoop.core.roles import NotAllowed
from hoop.core.secrets import Secret
from hoop.core.store.base import StoreUnavailable
from hoop.core.store.listen import Listener
from hoop.core.store.postgres import PostgresStore
from hoop.server.services import Services

log = logging.getLogger("hoop.cluster")
APPROVALS = "hoop_approvals"
CONTROL = "hoop_control"
RECHECK = 1.0  # seconds between re-reads of this gateway's pending holds
ANSWER_WITHIN = 3.0  # seconds another gateway has to answer a forwarded operation
MAX_MESSAGE = 7000  # bytes of one forwarded operation (a NOTIFY payload is at most 8000)

Operation = Callable[[Services, dict[str, Any]], dict[str, Any]]


def _kill(services: Services, msg: dict[str, Any]) -> dict[str, Any]:
    session_id, reason = int(msg["id"]), str(msg["reason"])
    live = services.live.get(session_id)
    if live is None:
        raise HoopError(f"session {session_id} is not live")
    services.journal.audit(
        str(msg["by"]), "session.kill", live.connection, session=session_id, reason=reason, user=live.user,
        via=str(msg["from"]),
    )  # fmt: skip
    live.kill(reason)
    return {"id": session_id, "status": "killed"}


def _moderate(services: Services, msg: dict[str, Any]) -> dict[str, Any]:
    session_id = int(msg["id"])
    who = Identity(str(msg["by"]), frozenset(map(str, msg["groups"])), "control")
    return services.moderators.moderate(session_id, who, bool(msg.get("leave")))


OPERATIONS: dict[str, Operation] = {"kill": _kill, "moderate": _moderate}


class Peers:
    """This gateway's link to the others on its store (`services.peers`)."""

    def __init__(self, services: Services, store: PostgresStore) -> None:
        self.services = services
        self.store = store
        self.name = services.config.gateway.name
        self.loop = asyncio.get_running_loop()
        self.answers: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        dsn = store.target
        assert isinstance(dsn, Secret)  # a PostgreSQL store is opened from its DSN
        self.listener = Listener(dsn, [APPROVALS, CONTROL], self._heard_in_thread, self._connected)
        services.approvals.remote_wake = self._wake_holder

    def start(self) -> None:
        self.listener.start()
        self._spawn(self._recheck())

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.to_thread(self.listener.stop)

    # -- asking another gateway ------------------------------------------------------------

    async def session_elsewhere(self, session_id: int) -> dict[str, Any] | None:
        """The stored row of an open session another gateway carries, or None."""
        return await asyncio.to_thread(
            self.store.one,
            "SELECT id, user, connection, protocol, gateway FROM sessions "
            "WHERE id = ? AND ended IS NULL AND gateway != ?",
            (session_id, self.name),
        )

    async def open_elsewhere(self) -> list[dict[str, Any]]:
        """Every open session the other gateways carry (stored rows)."""
        return await asyncio.to_thread(
            self.store.query,
            "SELECT id, user, connection, protocol, gateway FROM sessions WHERE ended IS NULL AND gateway != ? "
            "ORDER BY id",
            (self.name,),
        )

    async def ask(self, gateway: str, op: str, **params: Any) -> dict[str, Any]:
        """Have `gateway` perform `op` (already authorised here) and return its answer."""
        nonce = secrets.token_hex(8)
        answer: asyncio.Future[dict[str, Any]] = self.loop.create_future()
        self.answers[nonce] = answer
        message = json.dumps({**params, "to": gateway, "from": self.name, "op": op, "nonce": nonce})
        if len(message.encode()) > MAX_MESSAGE:
            raise HoopError(f"the request is too long to pass to gateway {gateway} (a shorter reason?)")
        try:
            await asyncio.to_thread(self.store.notify, CONTROL, message)
            reply = await asyncio.wait_for(answer, ANSWER_WITHIN)
        except TimeoutError:
            raise HoopError(
                f"gateway {gateway} did not answer within {ANSWER_WITHIN:g}s (it may be down or cut off from the store)"
            ) from None
        except StoreUnavailable as exc:
            raise HoopError(f"cannot reach gateway {gateway}: {exc}") from None
        finally:
            self.answers.pop(nonce, None)
        if "error" in reply:
            raise (NotAllowed if reply.get("refused") else HoopError)(str(reply["error"]))
        return dict(reply["result"])

    def _wake_holder(self, approval_id: int) -> None:
        """Tell the gateway holding `approval_id` that it was decided (the decision is stored:
        if this notification is lost, that gateway's re-check finds it within RECHECK)."""
        try:
            self.store.notify(APPROVALS, str(approval_id))
        except StoreUnavailable as exc:
            log.warning("request #%d is decided, but its holder could not be told at once: %s", approval_id, exc)

    # -- hearing the others ----------------------------------------------------------------

    def _heard_in_thread(self, channel: str, payload: str) -> None:
        try:
            self.loop.call_soon_threadsafe(self._heard, channel, payload)
        except RuntimeError:  # the loop has closed: the gateway is stopping
            pass

    def _connected(self) -> None:
        """(Re)connected: catch up on decisions that may have been announced while deaf."""
        try:
            self.loop.call_soon_threadsafe(lambda: self._spawn(self._catch_up()))
        except RuntimeError:
            pass

    def _heard(self, channel: str, payload: str) -> None:
        if channel == APPROVALS:
            if payload.isdigit() and int(payload) in self.services.approvals.pending:
                self._spawn(self._catch_up([int(payload)]))
            return
        try:
            msg = json.loads(payload)
        except ValueError:
            return
        if not isinstance(msg, dict) or msg.get("to") != self.name:
            return
        if "answers" in msg:
            answer = self.answers.get(str(msg["answers"]))
            if answer is not None and not answer.done():
                answer.set_result(msg)
            return
        self._spawn(self._perform(msg))

    async def _perform(self, msg: dict[str, Any]) -> None:
        reply: dict[str, Any] = {"to": msg.get("from"), "from": self.name, "answers": msg.get("nonce")}
        operation = OPERATIONS.get(str(msg.get("op")))
        try:
            if operation is None:
                raise HoopError(f"gateway {self.name} does not perform {msg.get('op')!r} for another gateway")
            reply["result"] = operation(self.services, msg)
        except NotAllowed as exc:
            reply.update(error=str(exc), refused=True)
        except (HoopError, KeyError, TypeError, ValueError) as exc:
            reply["error"] = str(exc)
        try:
            await asyncio.to_thread(self.store.notify, CONTROL, json.dumps(reply, default=str))
        except StoreUnavailable as exc:
            log.warning("could not answer gateway %s: %s", msg.get("from"), exc)

    async def _catch_up(self, ids: list[int] | None = None) -> None:
        approvals = self.services.approvals
        wanted = ids if ids is not None else list(approvals.pending)
        if not wanted:
            return
        try:
            rows = await asyncio.to_thread(approvals.decided_elsewhere, wanted)
        except StoreUnavailable:
            return  # held on: the next re-check reads them again
        approvals.wake(rows)

    async def _recheck(self) -> None:
        while True:
            await asyncio.sleep(RECHECK)
            await self._catch_up()

    def _spawn(self, coro: Any) -> None:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


def join(services: Services) -> Peers | None:
    """Link this gateway to the others on a shared store (None on a store of its own)."""
    store = services.store
    if not isinstance(store, PostgresStore):
        return None
    peers = Peers(services, store)
    peers.start()
    services.peers = peers
    return peers
