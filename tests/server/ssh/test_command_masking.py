"""An SSH command runs as typed; what the gateway stores of it is masked by the detectors and
keeps password values out."""

from __future__ import annotations

import json
import sqlite3
import time


def _stored(gateway, needle: str) -> list[str]:  # type: ignore[no-untyped-def]
    """The command as the statements table, its audit event and its recording keep it."""
    deadline = time.monotonic() + 10
    while True:
        db = sqlite3.connect(gateway.dir / "data" / "hoop.db")
        texts = [r[0] for r in db.execute("SELECT text FROM statements WHERE text LIKE ?", (f"%{needle}%",))]
        events = [json.loads(r[0]) for r in db.execute("SELECT detail FROM audit WHERE action = 'statement'")]
        db.close()
        texts += [e["text"] for e in events if needle in e.get("text", "")]
        if len(texts) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for path in gateway.recordings.glob("*.hoop.jsonl"):
        for line in path.read_text().splitlines()[1:]:
            frame = json.loads(line)
            if frame[1] == "q" and needle in frame[2]["text"]:
                texts.append(frame[2]["text"])
    return texts


def test_a_command_runs_as_typed_and_is_stored_masked(gateway) -> None:  # type: ignore[no-untyped-def]
    command = "echo mail cy@example.com; MYSQL_PWD=S3cret-pw-9d true"
    ran = gateway.ssh("alice+web1", command)
    assert ran.returncode == 0 and ran.stdout == b"mail cy@example.com\n"
    stored = _stored(gateway, "echo mail")
    assert stored and set(stored) == {"echo mail ****@example.com; MYSQL_PWD=**** true"}
