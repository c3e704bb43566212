"""`[[notify]]`: approval requests and decisions POSTed to a receiver the test runs on loopback.

A real `hoop serve`, a real psql statement held by a review rule and decided with `hoop approve`;
the receiver checks the signature as a deployment would. A receiver that fails or never answers
must not change when the held statement runs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from support.postgres import connect_target

pytestmark = pytest.mark.needs_postgres

SECRET = "notify-canary-7f3a9c"
EMAIL = "carol.private@example.com"  # masked by the detectors in stored statement text

RULE = """
[[rules]]
name = "notify-hold"
action = "review"
statements = ["update"]
tables = ["notify_accounts"]
approvers = ["dba"]
timeout = "30s"
"""


@dataclass
class Receiver:
    """A loopback HTTP endpoint: `mode` is "ok" (204), "fail" (500) or "hang" (never answers)."""

    mode: str = "ok"
    posts: list[dict[str, Any]] = field(default_factory=list)
    hits: int = 0
    server: ThreadingHTTPServer | None = None
    release: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.posts) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.posts)


@pytest.fixture
def receivers() -> Iterator[Any]:
    started: list[Receiver] = []

    def start(mode: str = "ok") -> Receiver:
        receiver = Receiver(mode)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                receiver.hits += 1
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if receiver.mode == "hang":
                    receiver.release.wait(30)
                    return
                if receiver.mode == "fail":
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                receiver.posts.append({"headers": dict(self.headers), "body": body})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        receiver.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        receiver.server.daemon_threads = True
        threading.Thread(target=receiver.server.serve_forever, daemon=True).start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.release.set()
        assert receiver.server is not None
        receiver.server.shutdown()
        receiver.server.server_close()


@pytest.fixture
def table(pg_target: dict[str, str]) -> None:
    with connect_target(pg_target) as conn:
        conn.execute("DROP TABLE IF EXISTS notify_accounts")
        conn.execute("CREATE TABLE notify_accounts (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO notify_accounts VALUES (1, '')")


def _gateway(make_gateway: Any, notify: str) -> Any:
    gw = make_gateway(RULE + notify, start=False)
    gw.env["HOOP_TEST_NOTIFY_SECRET"] = SECRET
    gw.start()
    return gw


def _hold(gw: Any) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    held = subprocess.Popen(
        [
            "psql",
            f"host=127.0.0.1 port={gw.ports['postgres']} user=alice dbname=pg sslmode=disable",
            "-X",
            "-c",
            f"UPDATE notify_accounts SET note = '{EMAIL}' WHERE id = 1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PGPASSWORD": gw.token("alice")},
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pending = json.loads(gw.cli("approvals", "--json").stdout)
        if pending:
            return held, pending[0]
        time.sleep(0.1)
    raise AssertionError("no approval request appeared")


def _approve_and_time(gw: Any, held: subprocess.Popen[str], approval_id: int) -> tuple[str, float]:
    """Approve; how long from running `hoop approve` until the held psql has finished."""
    token = gw.token("bob")
    started = time.monotonic()
    gw.cli("approve", str(approval_id), "--token", token, "--reason", "ok")
    out, _ = held.communicate(timeout=20)
    return out, time.monotonic() - started


def _verify(post: dict[str, Any]) -> dict[str, Any]:
    """What a receiver does: recompute the HMAC over timestamp and body, then parse."""
    headers = {k.lower(): v for k, v in post["headers"].items()}
    stamp = headers["x-hoop-timestamp"]
    assert abs(time.time() - int(stamp)) < 60
    expected = hmac.new(SECRET.encode(), stamp.encode() + b"." + post["body"], hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-hoop-signature"], f"sha256={expected}")
    assert headers["content-type"] == "application/json"
    return dict(json.loads(post["body"]))


def test_request_and_decision_reach_the_receiver_signed(make_gateway, receivers, table) -> None:  # type: ignore[no-untyped-def]
    receiver = receivers()
    notify = f"""
[[notify]]
name = "hooks"
url = "{receiver.url}"
format = "json"
secret = "${{HOOP_TEST_NOTIFY_SECRET}}"
"""
    gw = _gateway(make_gateway, notify)
    held, request = _hold(gw)
    [first] = receiver.wait_for(1)
    sent = _verify(first)
    assert sent["event"] == "approval.requested" and sent["approval"] == request["id"]
    assert (sent["rule"], sent["user"], sent["connection"]) == ("notify-hold", "alice", "pg")
    assert sent["statement"] == request["statement"] and EMAIL not in first["body"].decode()
    assert "decision" not in sent and isinstance(sent["time"], (int, float))

    out, _ = _approve_and_time(gw, held, request["id"])
    assert "UPDATE 1" in out
    posts = receiver.wait_for(2)
    decided = _verify(posts[1])
    assert decided["event"] == "approval.decided" and decided["approval"] == request["id"]
    assert decided["decision"] == "approved" and decided["approvers"] == ["bob"]

    # A body signed for another time does not verify: the timestamp is part of what is signed.
    forged = {**posts[1], "headers": {**posts[1]["headers"], "X-Hoop-Timestamp": str(int(time.time()) + 5)}}
    with pytest.raises(AssertionError):
        _verify(forged)
    log = gw.log()
    assert f"notify hooks: approval.requested #{request['id']} attempt 1: delivered" in log
    assert SECRET not in log and EMAIL not in log


def test_failing_receivers_do_not_delay_the_approval(make_gateway, receivers, table) -> None:  # type: ignore[no-untyped-def]
    failing, hanging = receivers("fail"), receivers("hang")
    notify = f"""
[[notify]]
name = "broken"
url = "{failing.url}"
format = "json"
secret = "${{HOOP_TEST_NOTIFY_SECRET}}"
attempts = 3

[[notify]]
name = "silent"
url = "{hanging.url}"
format = "slack"
timeout = "5s"
"""
    gw = _gateway(make_gateway, notify)
    held, request = _hold(gw)
    out, after_decision = _approve_and_time(gw, held, request["id"])
    assert "UPDATE 1" in out
    # `hoop approve` itself takes a fraction of a second; a delivery in the decision's path
    # would add the silent target's 5 s timeout (or the failing target's retries).
    assert after_decision < 2.5, f"the held statement finished {after_decision:.2f}s after `hoop approve` began"
    approval = request["id"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        log = gw.log()
        if f"notify broken: approval.decided #{approval} attempt 3: failed" in log and "notify silent" in log:
            break
        time.sleep(0.2)
    assert f"notify broken: approval.requested #{approval} attempt 1: failed (HTTP 500)" in log
    assert f"notify broken: approval.requested #{approval} attempt 3: failed (HTTP 500); giving up" in log
    assert f"notify silent: approval.requested #{approval} attempt 1: failed (no answer within 5s)" in log
    assert failing.hits >= 3 and hanging.hits >= 1
    assert SECRET not in log


def test_slack_body_is_one_readable_line(make_gateway, receivers, table) -> None:  # type: ignore[no-untyped-def]
    receiver = receivers()
    notify = f"""
[[notify]]
name = "chat"
url = "{receiver.url}"
format = "slack"
events = ["requested"]
"""
    gw = _gateway(make_gateway, notify)
    held, request = _hold(gw)
    [post] = receiver.wait_for(1)
    body = json.loads(post["body"])
    assert list(body) == ["text"]
    text = body["text"]
    assert "\n" not in text and EMAIL not in text
    assert f"#{request['id']}" in text and "alice" in text and "notify-hold" in text and "pg" in text
    assert "hoop approve" in text
    _approve_and_time(gw, held, request["id"])
    time.sleep(0.5)
    assert len(receiver.posts) == 1  # only the events asked for
