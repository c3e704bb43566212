"""`hoop replay SESSION_ID`: print a recorded session as a timeline, optionally with its timing.

Database sessions print one line per statement with its decision and outcome; every text in
them (statements, errors, result values, names) is shown inert (hoop.core.visible), one line
each. Terminal (SSH) recordings are handed to the terminal player (hoop.core.terminal), which
sends the screen and nothing that acts outside it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, TextIO

from hoop.core import recording
from hoop.core.errors import HoopError
from hoop.core.store.recordings import LocalCopies, name_of
from hoop.core.visible import visible


def frame_lines(t: float, kind: str, data: dict[str, Any]) -> list[str]:
    """The lines that show one frame, as recorded: a line's text may hold any character (a
    statement's newlines too), so a display writes each line inert and on a line of its own."""
    stamp = f"+{t:9.3f}s"
    if kind == "q":
        rule = f" rule={data['rule']}" if data.get("rule") else ""
        return [f"{stamp}  [{data.get('decision', '?')}{rule}]  {data.get('text', '')}"]
    if kind == "r":
        if data.get("error"):
            return [f"{stamp}    -> error: {data['error']} ({data.get('ms', 0):.1f} ms)"]
        n = data.get("rows")
        rows = "" if n is None else f", {n} row" + ("" if n == 1 else "s")
        lines = [f"{stamp}    -> {data.get('tag') or 'ok'}{rows} ({data.get('ms', 0):.1f} ms)"]
        for row in data.get("sample") or []:
            lines.append(" " * 17 + " | ".join("NULL" if v is None else str(v) for v in row))
        return lines
    if kind == "e":
        extra = " ".join(f"{k}={v}" for k, v in data.items() if k != "event")
        return [f"{stamp}  -- {data.get('event')} {extra}".rstrip()]
    return []


def describe_frame(t: float, kind: str, data: dict[str, Any]) -> str | None:
    """One frame as `hoop replay` prints it: its lines, each inert, or None for frames not shown."""
    lines = frame_lines(t, kind, data)
    return "\n".join(visible(line) for line in lines) if lines else None


def replay_session(
    store: Any,
    config: Any,
    session_id: int,
    *,
    speed: float = 0.0,
    start: float = 0.0,
    as_text: bool = False,
    out: TextIO = sys.stdout,
) -> int:
    row = store.one("SELECT * FROM sessions WHERE id = ?", (session_id,))
    if row is None:
        raise HoopError(f"no session {session_id}")
    # Files in recordings_dir, or (a shared store) the store's chunks copied for reading.
    copies = LocalCopies(store, config.gateway.recordings_dir)
    try:
        return _replay(copies, row, speed=speed, start=start, as_text=as_text, out=out)
    finally:
        copies.close()


def _replay(copies: LocalCopies, row: dict[str, Any], *, speed: float, start: float, as_text: bool, out: TextIO) -> int:
    session_id = row["id"]
    cast = copies.path(f"{session_id}.cast")
    if cast is not None:
        from hoop.core.terminal import keyframes_path, play_cast  # terminal recordings (SSH)

        copies.path(keyframes_path(cast).name)  # its seek points, beside it
        return play_cast(cast, speed=speed, start=start, as_text=as_text, out=out)
    name = name_of(row)
    path = copies.path(name)
    if path is None and row["recording"] and Path(row["recording"]).exists():
        path = Path(row["recording"])  # kept outside recordings_dir
    if path is None:
        where = f"in the store {copies.store.describe()}" if copies.store.shared else f"at {row['recording'] or name}"
        raise HoopError(f"session {session_id} has no recording {where}")
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["started"]))
    print(
        visible(
            f"session {session_id}: {row['user']} on {row['connection']} ({row['protocol']}), "
            f"started {started}, status {row['status']}"
        ),
        file=out,
    )
    last = start
    for t, kind, data in recording.iter_frames(path):
        if t < start:
            continue
        if speed > 0 and t > last:
            time.sleep((t - last) / speed)
        last = t
        line = describe_frame(t, kind, data)
        if line is not None:
            print(line, file=out, flush=speed > 0)
    return 0
