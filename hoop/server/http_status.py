"""`[listen] http`: /healthz, /readyz and /metrics for load balancers and Prometheus.

Served on the gateway's event loop (one small coroutine per request, no thread), one request
per connection. Nothing here logs anyone in or changes anything: GET and HEAD only; another
method is answered 405, another path 404, a malformed or slow request is dropped. Bind it to
loopback or a monitoring network: it tells who is connected where (as counts), nothing more.

- /healthz: 200 while the process serves its event loop.
- /readyz: 200 when every door listens and records are being stored; 503 naming what is not.
- /metrics: the gateway's registry (hoop/server/metrics.py) in Prometheus text format.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hoop.server.metrics import GatewayMetrics

log = logging.getLogger("hoop.http")
MAX_HEAD = 8192  # request line and headers
READ_TIMEOUT = 5.0
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
PATHS = ("/healthz", "/readyz", "/metrics")

# What keeps the gateway from being ready, in words ("" when nothing does).
Readiness = Callable[[], str]


class StatusServer:
    def __init__(self, metrics: GatewayMetrics, not_ready: Readiness) -> None:
        self.metrics = metrics
        self.not_ready = not_ready

    async def start(self, host: str, port: int) -> asyncio.Server:
        return await asyncio.start_server(self._serve, host, port, limit=MAX_HEAD)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            status, body, content_type, head_only = self._answer(head)
            extra = "Allow: GET, HEAD\r\n" if status == 405 else ""
            writer.write(
                (
                    f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: {content_type}\r\n"
                    f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n"
                ).encode()
                + (b"" if head_only else body)
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass  # a client that sends no valid request gets nothing
        except Exception:  # one request must never disturb the gateway
            log.exception("http status request failed")
        finally:
            writer.close()

    def _answer(self, head: bytes) -> tuple[int, bytes, str, bool]:
        text = "text/plain; charset=utf-8"
        parts = head.split(b"\r\n", 1)[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
            return 400, b"bad request\n", text, False
        method, target = parts[0], parts[1].split(b"?", 1)[0].decode("latin-1")
        if target not in PATHS:
            return 404, b"not found\n", text, False
        if method not in (b"GET", b"HEAD"):
            return 405, b"method not allowed\n", text, False
        head_only = method == b"HEAD"
        if target == "/healthz":
            return 200, b"ok\n", text, head_only
        if target == "/readyz":
            problem = self.not_ready()
            if problem:
                return 503, f"not ready: {problem}\n".encode(), text, head_only
            return 200, b"ready\n", text, head_only
        return 200, generate_latest(self.metrics.registry), CONTENT_TYPE_LATEST, head_only
