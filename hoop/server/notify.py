"""`[[notify]]` delivery: approval requests and decisions POSTed to each target.

The gateway's Approvals announce every request and decision to their listeners; this one
takes a snapshot of the approval's row (a primary-key read, no I/O beyond the store) and puts
it in each interested target's queue. One task per target sends its queue in order, each
attempt bounded by the target's timeout, failures retried with exponential back-off up to
its attempt count. Nothing here is awaited by a hold or a decision: a failing, slow or silent
target delays only its own later notifications, and the held statement runs (or not) on the
decision alone. A queue that overflows drops its oldest event, saying so in the log.

Every attempt is logged with the target's name, the event, the approval and the outcome —
never the URL (chat webhooks carry their credential in it), the secret or the statement.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
import time
from collections import deque
from collections.abc import Sequence
from urllib.parse import unquote, urlsplit

from hoop.core.durations import format_span
from hoop.core.notify_config import NotifyTarget
from hoop.core.notify_message import ApprovalEvent, event_from_row, json_body, sign, slack_body
from hoop.core.store.base import Store

log = logging.getLogger("hoop.notify")

FIRST_BACKOFF = 0.5  # seconds before the second attempt; doubled for each one after
MAX_BACKOFF = 60.0
MAX_STATUS_LINE = 8192


class DeliveryFailed(Exception):
    def __init__(self, why: str, *, final: bool = False) -> None:
        super().__init__(why)
        self.final = final  # retrying cannot help (the receiver refused the request itself)


class _Outbox:
    """One target's queue and the task that empties it."""

    def __init__(self, target: NotifyTarget) -> None:
        self.target = target
        self.queue: deque[ApprovalEvent] = deque()
        self.ready = asyncio.Event()
        self.task = asyncio.create_task(self._run(), name=f"notify-{target.name}")

    def put(self, event: ApprovalEvent) -> None:
        if len(self.queue) >= self.target.queue:
            dropped = self.queue.popleft()
            log.warning(
                "notify %s: queue full (%d events); dropped %s #%d",
                self.target.name,
                self.target.queue,
                dropped.event,
                dropped.approval,
            )
        self.queue.append(event)
        self.ready.set()

    async def _run(self) -> None:
        while True:
            await self.ready.wait()
            self.ready.clear()
            while self.queue:
                await self._deliver(self.queue.popleft())

    async def _deliver(self, event: ApprovalEvent) -> None:
        target = self.target
        body = json_body(event) if target.format == "json" else slack_body(event)
        for attempt in range(1, target.attempts + 1):
            what = f"notify {target.name}: {event.event} #{event.approval} attempt {attempt}"
            try:
                status = await post(target.url.reveal(), self._headers(body), body, target.timeout)
            except DeliveryFailed as exc:
                if exc.final or attempt == target.attempts:
                    log.error("%s: failed (%s); giving up", what, exc)
                    return
                wait = min(FIRST_BACKOFF * 2 ** (attempt - 1), MAX_BACKOFF)
                log.warning("%s: failed (%s); retrying in %gs", what, exc, wait)
                await asyncio.sleep(wait)
                continue
            except Exception as exc:  # a bug here must not end the target's task
                log.error("%s: failed (%s); giving up", what, type(exc).__name__)
                return
            log.info("%s: delivered (HTTP %d)", what, status)
            return

    def _headers(self, body: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.target.secret is not None:
            # Signed per attempt: the timestamp says when this copy was sent.
            stamp = str(int(time.time()))
            headers["X-Hoop-Timestamp"] = stamp
            headers["X-Hoop-Signature"] = sign(self.target.secret.reveal(), stamp, body)
        return headers


class Notifier:
    """Listens to the gateway's Approvals and feeds each target's outbox."""

    def __init__(self, targets: Sequence[NotifyTarget], store: Store) -> None:
        self.store = store
        self.loop = asyncio.get_running_loop()
        self.outboxes = [_Outbox(t) for t in targets]

    def announce(self, announced: str, approval_id: int) -> None:
        """An Approvals listener: snapshot the row now, send later."""
        row = self.store.one("SELECT * FROM approvals WHERE id = ?", (approval_id,))
        if row is None:
            return
        event = event_from_row(announced, row, time.time())
        if event is None:
            return
        for outbox in self.outboxes:
            if outbox.target.wants(event.kind, event.connection):
                # Decisions are announced on the event loop; the hop keeps this safe from any thread.
                self.loop.call_soon_threadsafe(outbox.put, event)

    def close(self) -> None:
        for outbox in self.outboxes:
            outbox.task.cancel()


async def post(url: str, headers: dict[str, str], body: bytes, timeout: float) -> int:
    """POST `body`, return the 2xx status; DeliveryFailed saying why otherwise (never the URL)."""
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if secure else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    head = {"Host": parts.netloc.rpartition("@")[2], "User-Agent": "hoop-notify", **headers}
    if parts.username is not None:
        credential = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        head["Authorization"] = "Basic " + base64.b64encode(credential.encode()).decode()
    head |= {"Content-Length": str(len(body)), "Connection": "close"}
    request = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in head.items()) + "\r\n"
    context = ssl.create_default_context() if secure else None  # certificate and host name verified
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=context, server_hostname=host if secure else None, limit=MAX_STATUS_LINE
            )
            writer.write(request.encode("latin-1") + body)
            await writer.drain()
            line = await reader.readline()
    except TimeoutError:
        raise DeliveryFailed(f"no answer within {format_span(timeout)}") from None
    except ssl.SSLError as exc:
        raise DeliveryFailed(f"TLS: {exc.reason or type(exc).__name__}") from None
    except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
        raise DeliveryFailed(getattr(exc, "strerror", None) or type(exc).__name__) from None
    finally:
        if writer is not None:
            writer.close()
    words = line.split()
    if len(words) < 2 or not words[0].startswith(b"HTTP/") or not words[1].isdigit():
        raise DeliveryFailed("not an HTTP response")
    status = int(words[1])
    if 200 <= status < 300:
        return status
    # A request the receiver refuses as such is refused again: only server trouble, a timeout
    # (408) or rate limiting (429) is worth another attempt.
    raise DeliveryFailed(f"HTTP {status}", final=400 <= status < 500 and status not in (408, 429))
