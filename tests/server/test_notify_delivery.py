"""Delivery to `[[notify]]` targets: retries, back-off, give-up, a bounded queue, verified TLS.

Real sockets on loopback and a real store; the end-to-end proof with `hoop serve`, psql and
`hoop approve` is tests/e2e/test_notify.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hoop.core.notify_config import NotifyTarget
from hoop.core.notify_message import sign
from hoop.core.secrets import Secret
from hoop.core.store.base import Store, open_store
from hoop.core.tlscert import ensure_self_signed, server_context
from hoop.server.notify import Notifier

SECRET = "delivery-secret-5b1e"
URL_TOKEN = "T0KEN-in-the-path-9c2d"


class Receiver:
    """An asyncio HTTP endpoint answering each request with the next status of `statuses`."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.requests: list[tuple[float, dict[str, str], bytes]] = []
        self.server: asyncio.Server | None = None

    async def start(self, tls: ssl.SSLContext | None = None) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=tls)
        port = self.server.sockets[0].getsockname()[1]
        return f"{'https' if tls else 'http'}://127.0.0.1:{port}/hooks/{URL_TOKEN}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        lines = head.decode().split("\r\n")[1:]
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
        body = await reader.readexactly(int(headers["content-length"]))
        self.requests.append((time.monotonic(), headers, body))
        status = self.statuses.pop(0) if self.statuses else 204
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


@pytest.fixture
def store(store_target: Path | Secret) -> Iterator[Store]:
    store = open_store(store_target)  # each engine: the notifier reads the request's row
    for n in range(1, 5):
        with store.transaction() as conn:
            conn.execute(
                "INSERT INTO approvals(session_id, user, connection, statement, rule, status, created, expires) "
                "VALUES (1, 'alice', 'pg', ?, 'hold-updates', 'pending', 0, 0)",
                (f"UPDATE t SET n = {n}",),
            )
    yield store
    store.close()


def target(url: str, **kw: Any) -> NotifyTarget:
    return NotifyTarget(name="hooks", url=Secret(url), format="json", secret=Secret(SECRET), **kw)


async def until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def test_server_errors_are_retried_with_back_off(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "hoop.notify")
    receiver = Receiver([500, 503])
    notifier = Notifier([target(await receiver.start())], store)
    try:
        notifier.announce("request", 1)
        await until(lambda: len(receiver.requests) == 3)
    finally:
        notifier.close()
        receiver.close()
    times = [t for t, _, _ in receiver.requests]
    assert 0.4 < times[1] - times[0] < 1.0 and 0.9 < times[2] - times[1] < 1.6  # 0.5 s, then doubled
    for _, headers, body in receiver.requests:  # each attempt signed for its own timestamp
        assert headers["x-hoop-signature"] == sign(SECRET, headers["x-hoop-timestamp"], body)
        assert json.loads(body)["event"] == "approval.requested"
    text = caplog.text
    assert "notify hooks: approval.requested #1 attempt 1: failed (HTTP 500); retrying in 0.5s" in text
    assert "notify hooks: approval.requested #1 attempt 2: failed (HTTP 503); retrying in 1s" in text
    assert "notify hooks: approval.requested #1 attempt 3: delivered (HTTP 204)" in text
    assert URL_TOKEN not in text and SECRET not in text and "UPDATE" not in text


async def test_a_refused_request_is_not_retried(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    receiver = Receiver([400])
    notifier = Notifier([target(await receiver.start())], store)
    try:
        notifier.announce("denied", 2)
        await until(lambda: "giving up" in caplog.text)
        await asyncio.sleep(0.7)  # past the first back-off: no second attempt comes
    finally:
        notifier.close()
        receiver.close()
    assert len(receiver.requests) == 1
    assert "notify hooks: approval.decided #2 attempt 1: failed (HTTP 400); giving up" in caplog.text


async def test_a_full_queue_drops_the_oldest_and_says_so(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    receiver = Receiver([])
    notifier = Notifier([target(await receiver.start(), queue=2)], store)
    try:
        for approval in range(1, 5):  # all four arrive before the sender runs
            notifier.announce("request", approval)
        await until(lambda: len(receiver.requests) == 2)
        await asyncio.sleep(0.3)
    finally:
        notifier.close()
        receiver.close()
    assert [json.loads(body)["approval"] for _, _, body in receiver.requests] == [3, 4]
    assert "notify hooks: queue full (2 events); dropped approval.requested #1" in caplog.text
    assert "notify hooks: queue full (2 events); dropped approval.requested #2" in caplog.text


async def test_https_receivers_must_have_a_trusted_certificate(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    receiver = Receiver([])
    cert, key = ensure_self_signed(tmp_path)
    notifier = Notifier([target(await receiver.start(server_context(cert, key)), attempts=1)], store)
    try:
        notifier.announce("request", 1)
        await until(lambda: "giving up" in caplog.text)
    finally:
        notifier.close()
        receiver.close()
    assert receiver.requests == []
    assert "attempt 1: failed (TLS: CERTIFICATE_VERIFY_FAILED); giving up" in caplog.text


async def test_only_wanted_events_and_connections(store: Store) -> None:
    receiver = Receiver([])
    url = await receiver.start()
    notifier = Notifier([target(url, events=("decided",), connections=("prod-*",))], store)
    with store.transaction() as conn:
        conn.execute("UPDATE approvals SET connection = 'prod-db', status = 'approved' WHERE id = 4")
    try:
        notifier.announce("request", 4)  # not an event it wants
        notifier.announce("approved", 3)  # not a connection it wants
        notifier.announce("approved", 4)
        await until(lambda: len(receiver.requests) == 1)
        await asyncio.sleep(0.3)
    finally:
        notifier.close()
        receiver.close()
    [(_, _, body)] = receiver.requests
    sent = json.loads(body)
    assert (sent["event"], sent["approval"], sent["decision"], sent["connection"]) == (
        "approval.decided",
        4,
        "approved",
        "prod-db",
    )
