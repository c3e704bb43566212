"""Notification bodies: the JSON event, its signature, and the Slack line."""

from __future__ import annotations

import hashlib
import hmac
import json

from hoop.core.notify_message import event_from_row, json_body, sign, slack_body, slack_text

ROW = {
    "id": 7,
    "rule": "hold-updates",
    "user": "alice",
    "connection": "pg",
    "statement": "UPDATE accounts\nSET balance = 10\nWHERE id = 1",
    "decisions": '["bob", "carol"]',
    "required": 2,
}


def test_json_body_of_a_request_and_a_decision() -> None:
    request = event_from_row("request", ROW, 100.5)
    assert request is not None
    body = json.loads(json_body(request))
    assert body == {
        "event": "approval.requested",
        "approval": 7,
        "rule": "hold-updates",
        "user": "alice",
        "connection": "pg",
        "statement": ROW["statement"],
        "time": 100.5,
        "approvers": [],
        "required": 2,
    }
    decided = event_from_row("denied", ROW, 101.0)
    assert decided is not None
    body = json.loads(json_body(decided))
    assert (body["event"], body["decision"], body["approvers"]) == ("approval.decided", "denied", ["bob", "carol"])
    assert event_from_row("something-else", ROW, 0) is None


def test_signature_covers_timestamp_and_body() -> None:
    body = b'{"event":"approval.requested"}'
    expected = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("k", "1700000000", body) == f"sha256={expected}"
    assert sign("k", "1700000001", body) != sign("k", "1700000000", body)


def test_slack_line_is_one_line_inert_and_short() -> None:
    row = {**ROW, "user": "<!channel> eve", "statement": "SELECT '`x`' || '&' || '" + "y" * 400 + "'\x1b[2J"}
    event = event_from_row("request", row, 0)
    assert event is not None
    text = slack_text(event)
    assert "\n" not in text and "\x1b" not in text
    assert "<!channel>" not in text and "&lt;!channel&gt; eve" in text and "&amp;" in text
    assert "`x`" not in text and "…" in text and len(text) < 400
    assert "held for approval #7" in text and "hoop approve 7" in text
    assert json.loads(slack_body(event)) == {"text": text}
    decided = event_from_row("approved", ROW, 0)
    assert decided is not None
    assert slack_text(decided) == "Hoop: #7 by alice on pg (rule hold-updates) approved by bob, carol"
    progress = event_from_row("progress", {**ROW, "decisions": '["bob"]'}, 0)
    assert progress is not None and "has 1 of 2 approvals (bob)" in slack_text(progress)
