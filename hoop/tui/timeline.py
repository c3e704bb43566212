"""Frame-addressed timelines for replay: a position is a frame index, and the view at an index
is a pure function of it, so stepping forward then back shows the identical screen.

- `DbTimeline`: a database recording (`<id>.hoop.jsonl`) as statement/result lines.
- `CastTimeline`: an SSH terminal recording (`<id>.cast` + keyframes). The file is indexed
  once (time and byte offset of each event); the screen at an event is rebuilt from the
  nearest keyframe before it, replaying only the events in between (never from the start).
"""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyte

from hoop.core import recording
from hoop.core.replay import frame_lines
from hoop.core.store.recordings import LocalCopies, name_of
from hoop.core.terminal import CastReader, Keyframe, restore_screen

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[=>78DEHM]")


@dataclass(frozen=True)
class Mark:
    index: int
    label: str


class Timeline:
    """Common surface of both kinds."""

    times: list[float]
    statements: list[int]  # frame indices where a statement/command starts

    def __len__(self) -> int:
        return len(self.times)

    @property
    def duration(self) -> float:
        return self.times[-1] if self.times else 0.0

    def index_at(self, t: float) -> int:
        """The last frame at or before time t (0 when t precedes everything)."""
        return max(0, bisect.bisect_right(self.times, t) - 1)

    def next_statement(self, index: int) -> int | None:
        i = bisect.bisect_right(self.statements, index)
        return self.statements[i] if i < len(self.statements) else None

    def prev_statement(self, index: int) -> int | None:
        i = bisect.bisect_left(self.statements, index)
        return self.statements[i - 1] if i > 0 else None

    def view(self, index: int, rows: int) -> list[str]:
        """The lines shown at frame `index`, as recorded: a display writes each one inert."""
        raise NotImplementedError

    def search(self, text: str) -> list[int]:
        raise NotImplementedError

    def label(self, index: int) -> str:
        """What happens at this frame (statement, result, output, input, ...)."""
        raise NotImplementedError


class DbTimeline(Timeline):
    def __init__(self, path: Path) -> None:
        self.path = path
        self.frames: list[tuple[float, str, dict[str, Any]]] = list(recording.iter_frames(path))
        self.times = [f[0] for f in self.frames]
        self.statements = [i for i, f in enumerate(self.frames) if f[1] == "q"]
        self._lines: list[list[str]] = [frame_lines(*f) for f in self.frames]

    def view(self, index: int, rows: int) -> list[str]:
        """The timeline up to and including frame `index`, newest lines at the bottom."""
        if not self.frames:
            return ["(empty recording)"]
        out: list[str] = []
        i = min(max(index, 0), len(self.frames) - 1)
        while i >= 0 and len(out) < rows:
            out[:0] = self._lines[i]
            i -= 1
        return out[-rows:]

    def search(self, text: str) -> list[int]:
        needle = text.lower()
        return [
            i for i, f in enumerate(self.frames) if needle in json.dumps(f[2], ensure_ascii=False, default=str).lower()
        ]

    def label(self, index: int) -> str:
        t, kind, data = self.frames[index]
        return {"q": "statement", "r": "result", "e": str(data.get("event", "event"))}.get(kind, kind)


class CastTimeline(Timeline):
    def __init__(self, path: Path, statement_times: list[float] | None = None) -> None:
        self.path = path
        self.reader = CastReader(path)
        self.times, self.offsets, self.codes = [], [], []
        with path.open("rb") as fh:
            fh.seek(self.reader.events_offset)
            offset = self.reader.events_offset
            for raw in fh:
                try:
                    t, code, _ = json.loads(raw)
                except ValueError:
                    break
                self.times.append(float(t))
                self.offsets.append(offset)
                self.codes.append(str(code))
                offset += len(raw)
        self.kf_offsets = [k.offset for k in self.reader.keyframes]
        # Commands: submitted lines logged as statements (their times), else input Enter events.
        if statement_times:
            marks = {self.index_at(t) for t in statement_times}
        else:
            marks = set()
        self.statements = sorted(marks)
        self.replayed = 0

    def keyframe_for(self, index: int) -> Keyframe | None:
        """The last keyframe taken before event `index` (its offset is the next event's)."""
        k = bisect.bisect_right(self.kf_offsets, self.offsets[index]) - 1
        return self.reader.keyframes[k] if k >= 0 else None

    def screen(self, index: int) -> pyte.Screen:
        header = self.reader.header
        if not self.times:
            return pyte.Screen(int(header.get("width", 80)), int(header.get("height", 24)))
        index = min(max(index, 0), len(self.times) - 1)
        kf = self.keyframe_for(index)
        if kf is not None:
            screen, stream = restore_screen(kf)
            start = kf.offset
        else:
            screen = pyte.Screen(int(header.get("width", 80)), int(header.get("height", 24)))
            stream = pyte.Stream(screen)
            start = self.reader.events_offset
        end = self.offsets[index]
        self.replayed = 0
        with self.path.open("rb") as fh:
            fh.seek(start)
            while fh.tell() <= end:
                raw = fh.readline()
                if not raw:
                    break
                try:
                    _, code, data = json.loads(raw)
                except ValueError:
                    break
                self.replayed += 1
                if code == "o":
                    stream.feed(data)
                elif code == "r":
                    cols, _, rows = str(data).partition("x")
                    screen.resize(int(rows), int(cols))
        return screen

    def view(self, index: int, rows: int) -> list[str]:
        return [line.rstrip() for line in self.screen(index).display]

    def search(self, text: str) -> list[int]:
        """Events whose output (escape sequences removed) contains `text`, also when the text
        was written in pieces: each event is checked together with the tail before it."""
        needle = text.lower()
        hits: list[int] = []
        carry = ""
        for i, (_t, code, data) in enumerate(self.reader.events()):
            if code != "o":
                continue
            plain = _ANSI.sub("", data).lower()
            window = carry + plain
            if needle in window and needle not in carry:
                hits.append(i)
            carry = window[-max(len(needle) - 1, 0) :] if len(needle) > 1 else ""
        return hits

    def label(self, index: int) -> str:
        return {"o": "output", "i": "input", "r": "resize"}.get(self.codes[index], self.codes[index])


def open_timeline(copies: LocalCopies, session: dict[str, Any], statement_times: list[float] | None = None) -> Timeline:
    """The timeline of a session's recording (terminal cast first, then the DB recording), read
    from recordings_dir or from the chunks of a shared store (`LocalCopies`)."""
    from hoop.core.errors import HoopError
    from hoop.core.terminal import keyframes_path

    sid = session["id"]
    cast = copies.path(f"{sid}.cast")
    if cast is not None:
        copies.path(keyframes_path(cast).name)
        return CastTimeline(cast, statement_times)
    path = copies.path(name_of(session))
    if path is None and session.get("recording") and Path(session["recording"]).exists():
        path = Path(session["recording"])
    if path is None:
        raise HoopError(f"session {sid} has no recording")
    return DbTimeline(path)
