"""Session recordings: one file per session in recordings_dir (or, on a shared PostgreSQL
store, the same bytes in its `recording_chunks`: see store/recordings.py), in a versioned format.

Format `hoop-recording` version 1 is JSON lines. The first line is a header object; every
later line is one frame `[t, kind, data]` where `t` is seconds since the session started.
Database sessions use these kinds:

- `"q"`  a statement: {"text", "decision", "rule", "reason"}
- `"r"`  its outcome: {"tag", "rows", "ms", "error", "columns", "sample"} where `sample` holds
         the first result rows exactly as the client saw them (masked) and `columns` names
         them ("schema.table.column" where the origin is known); both only when sampled
- `"e"`  a session event: {"event", ...} (start, end, held, approved, denied, ...)

Terminal sessions (SSH) are recorded as asciicast v2 next to it (see `terminal.py`); this
module reads both so replay tools have one entry point.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson  # frames are encoded once per statement by the journal writer: the fast encoder

FORMAT = "hoop-recording"
VERSION = 1
# Result samples, the same for every door: the first rows of the first statements of a
# session, then of every 100th, so a busy session does not pay to decode rows nobody reads.
SAMPLE_ROWS = 3
SAMPLE_FIRST = 20
SAMPLE_EVERY = 100
SAMPLE_CHARS = 200


@dataclass
class Recording:
    header: dict[str, Any]
    frames: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)


class RecordingError(Exception):
    pass


def sampled(n: int) -> bool:
    """Are the results of a session's statement number `n` (from 0) sampled?"""
    return n < SAMPLE_FIRST or n % SAMPLE_EVERY == 0


def sample_value(v: bytes | None) -> str | None:
    """One value of a sample row as text, shortened for readability."""
    if v is None:
        return None
    text = v.decode("utf-8", "replace")
    return text if len(text) <= SAMPLE_CHARS else text[:SAMPLE_CHARS] + "…"


def header(session_id: int, protocol: str, user: str, connection: str, started: float) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "session": session_id,
        "protocol": protocol,
        "user": user,
        "connection": connection,
        "started": started,
    }


def encode_header(session_id: int, protocol: str, user: str, connection: str, started: float) -> str:
    """The header line of a recording."""
    head = header(session_id, protocol, user, connection, started)
    return json.dumps(head, ensure_ascii=False, separators=(",", ":"))


def encode_frame(t: float, kind: str, data: dict[str, Any]) -> str:
    return orjson.dumps([round(t, 6), kind, data], default=str).decode()


def iter_frames(path: Path) -> Iterator[tuple[float, str, dict[str, Any]]]:
    with path.open(encoding="utf-8") as fh:
        first = fh.readline()
        _check_header(first, path)
        for line in fh:
            if not line.strip():
                continue
            try:
                t, kind, data = json.loads(line)
            except (ValueError, TypeError):
                # A crash can leave a half-written last line; everything before it is intact.
                break
            yield float(t), str(kind), data


def read(path: Path) -> Recording:
    with path.open(encoding="utf-8") as fh:
        head = _check_header(fh.readline(), path)
    return Recording(head, list(iter_frames(path)))


def _check_header(line: str, path: Path) -> dict[str, Any]:
    try:
        head = json.loads(line)
    except ValueError:
        raise RecordingError(f"{path}: not a Hoop recording (bad header)") from None
    if not isinstance(head, dict) or head.get("format") != FORMAT:
        raise RecordingError(f"{path}: not a Hoop recording")
    if head.get("version") != VERSION:
        raise RecordingError(f"{path}: recording version {head.get('version')} is not supported (expected {VERSION})")
    return head
