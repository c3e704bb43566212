"""Terminal recordings: asciicast v2 files plus a keyframe sidecar for seeking.

A recorded SSH terminal session is two files in recordings_dir:

- `<id>.cast`: asciicast v2 (a JSON header line, then `[t, code, data]` lines with code `o`
  output, `i` input, `r` resize "COLSxROWS"), playable by `asciinema play` / `asciinema cat`.
- `<id>.keyframes.jsonl`: a header line `{"format": "hoop-keyframes", "version": 1, ...}` then
  one keyframe per line: `{"t", "offset", "cols", "rows", "cursor": [x, y], "lines": [...]}`.
  `offset` is the byte offset in the cast of the first event *after* the keyframe, so a reader
  restores the screen from the keyframe and replays only the events from that offset.

Screen state comes from pyte (a real VT100 emulator). The emulator is fed lazily, only when a
keyframe is due or a submitted line must be read from the screen, so a large burst of output
costs one JSON encode per chunk on the data path. When more than `MAX_PENDING` characters of
output wait to be rendered, only the tail is rendered: the screen after a huge dump is
determined by its last screenfuls, and a keyframe taken then may differ from an exact
rendering in rare cases (documented trade-off; the cast itself is always complete).

Pure: no asyncio, no asyncssh. The writer buffers in memory; the caller calls `flush()`.
"""

from __future__ import annotations

import codecs
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TextIO

import pyte
from wcwidth import wcwidth

from hoop.core.inert_terminal import InertTerminal
from hoop.core.visible import visible

KEYFRAME_FORMAT = "hoop-keyframes"
KEYFRAME_VERSION = 1
MAX_PENDING = 1 << 20  # characters of output waiting for the emulator before we keep only a tail
KEEP_TAIL = 256 * 1024
# A shell prompt usually ends with one of these followed by a space: "user@host:~$ ".
_PROMPT = re.compile(r"^.{0,80}?[$#%>] ")


class RecordingFormatError(Exception):
    """A cast or keyframe file is not in the format this version reads."""


def cast_path(recordings_dir: Path, session_id: int) -> Path:
    return recordings_dir / f"{session_id}.cast"


def keyframes_path(cast: Path) -> Path:
    return cast.with_suffix(".keyframes.jsonl")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class _Emulator:
    """A pyte screen fed lazily from pending output."""

    def __init__(self, cols: int, rows: int) -> None:
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.Stream(self.screen)
        self.pending: list[str] = []
        self.pending_len = 0

    def add(self, text: str) -> None:
        self.pending.append(text)
        self.pending_len += len(text)
        if self.pending_len > MAX_PENDING:
            tail = "".join(self.pending)[-KEEP_TAIL:]
            self.pending = [tail]
            self.pending_len = len(tail)

    def render(self) -> pyte.Screen:
        if self.pending:
            self.stream.feed("".join(self.pending))
            self.pending.clear()
            self.pending_len = 0
        return self.screen

    def resize(self, cols: int, rows: int) -> None:
        self.render()
        self.screen.resize(rows, cols)

    def lines(self) -> list[str]:
        screen = self.render()
        return [_row_text(screen, y) for y in range(screen.lines)]


def _row_text(screen: pyte.Screen, y: int) -> str:
    """Row `y` as `screen.display[y].rstrip()` shows it, in time proportional to the cells
    written on it rather than to the screen's width: `display` renders every cell of every
    row, seconds of the event loop for a terminal thousands of cells wide and high."""
    line = screen.buffer.get(y)  # a defaultdict: .get does not create the row
    if not line:
        return ""
    out: list[str] = []
    pos = 0  # the next column to render
    for x in sorted(line):
        if x >= screen.columns:
            break
        if x < pos:  # the stub cell after a wide character
            continue
        if x > pos:
            out.append(" " * (x - pos))
        char = line[x].data
        out.append(char)
        pos = x + (2 if char and wcwidth(char[0]) == 2 else 1)
    return "".join(out).rstrip()


class CastWriter:
    """Writes one terminal session as asciicast v2 plus keyframes."""

    def __init__(
        self,
        path: Path,
        cols: int,
        rows: int,
        *,
        started: float | None = None,
        title: str = "",
        env: dict[str, str] | None = None,
        record_input: bool = False,
        keyframe_every: float = 10.0,
        keyframe_bytes: int = 512 * 1024,
        sink: Callable[[str, bytes], None] | None = None,
    ) -> None:
        """`sink(file name, bytes)`: where the cast and keyframes go instead of files beside
        `path` (the journal, on a store that keeps recordings in itself)."""
        self.path = path
        self.sink = sink
        self.kf_path = keyframes_path(path)
        self.started = started if started is not None else time.time()
        self.record_input = record_input
        self.keyframe_every = keyframe_every
        self.keyframe_bytes = keyframe_bytes
        self.cols, self.rows = max(cols, 1), max(rows, 1)
        self.emu = _Emulator(self.cols, self.rows)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._cast: BinaryIO | None = None if sink else path.open("ab")
        self._kf: TextIO | None = None if sink else self.kf_path.open("a", encoding="utf-8")
        self._pending: list[bytes] = []
        self._pending_kf: list[str] = []
        self._offset = self._cast.tell() if self._cast else 0
        self._last_kf_t = 0.0
        self._last_kf_offset = self._offset
        self.closed = False
        self.lines: list[str] = []  # submitted lines detected so far (caller drains)
        self._await_line = False
        header = {
            "version": 2,
            "width": self.cols,
            "height": self.rows,
            "timestamp": int(self.started),
            "env": env or {"TERM": "xterm-256color"},
        }
        if title:
            header["title"] = title
        if self._offset == 0:
            self._emit(_json(header))
            self._pending_kf.append(_json({"format": KEYFRAME_FORMAT, "version": KEYFRAME_VERSION, "cast": path.name}))

    @property
    def size(self) -> int:
        """Bytes of the cast so far (written or waiting for `flush`)."""
        return self._offset

    def _emit(self, line: str) -> None:
        data = (line + "\n").encode("utf-8")
        self._pending.append(data)
        self._offset += len(data)

    def _event(self, code: str, data: str, now: float | None) -> float:
        t = (now if now is not None else time.time()) - self.started
        self._emit(_json([round(t, 6), code, data]))
        return t

    def output(self, data: bytes, now: float | None = None) -> None:
        text = self._decoder.decode(data)
        if not text:
            return
        t = self._event("o", text, now)
        if self._await_line and "\n" in text:
            # The target's echo of Enter: the row the cursor is on before it is the line.
            cut = text.index("\n")
            self.emu.add(text[:cut])
            self._await_line = False
            line = self.submitted_line()
            if line:
                self.lines.append(line)
            text = text[cut:]
            if t - self._last_kf_t >= 1.0:  # command boundaries are natural seek points
                self.emu.add(text)
                self.keyframe(now)
                return
        self.emu.add(text)
        if t - self._last_kf_t >= self.keyframe_every or self._offset - self._last_kf_offset >= self.keyframe_bytes:
            self.keyframe(now)

    def input(self, data: bytes, now: float | None = None) -> None:
        if self.record_input:
            self._event("i", data.decode("utf-8", "replace"), now)

    def resize(self, cols: int, rows: int, now: float | None = None) -> None:
        cols, rows = max(cols, 1), max(rows, 1)
        if (cols, rows) == (self.cols, self.rows):
            return
        self.cols, self.rows = cols, rows
        self._event("r", f"{cols}x{rows}", now)
        self.emu.resize(cols, rows)

    def keyframe(self, now: float | None = None) -> None:
        """Full screen state at this point; the next event starts at the current offset."""
        t = (now if now is not None else time.time()) - self.started
        screen = self.emu.render()
        self._pending_kf.append(
            _json(
                {
                    "t": round(t, 6),
                    "offset": self._offset,
                    "cols": self.cols,
                    "rows": self.rows,
                    "cursor": [screen.cursor.x, screen.cursor.y],
                    "lines": self.emu.lines(),
                }
            )
        )
        self._last_kf_t = t
        self._last_kf_offset = self._offset

    def mark_submit(self) -> None:
        """Enter was typed: the line is read from the screen when the target echoes the
        newline (typed-ahead input may not be on screen yet at this moment)."""
        self._await_line = True

    def submitted_line(self) -> str:
        """The command line the user just submitted (call when Enter is typed): the text of the
        cursor's row on the rendered screen, minus a recognisable prompt. Best effort only."""
        screen = self.emu.render()
        row = _row_text(screen, screen.cursor.y) if 0 <= screen.cursor.y < self.rows else ""
        m = _PROMPT.match(row)
        return (row[m.end() :] if m else row).strip()

    def flush(self) -> None:
        if self.sink is not None:
            if self._pending:
                self.sink(self.path.name, b"".join(self._pending))
                self._pending.clear()
            if self._pending_kf:
                self.sink(self.kf_path.name, ("\n".join(self._pending_kf) + "\n").encode())
                self._pending_kf.clear()
            return
        assert self._cast is not None and self._kf is not None
        if self._pending:
            self._cast.write(b"".join(self._pending))
            self._pending.clear()
            self._cast.flush()
        if self._pending_kf:
            self._kf.write("\n".join(self._pending_kf) + "\n")
            self._pending_kf.clear()
            self._kf.flush()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._offset > self._last_kf_offset:
            self.keyframe()
        self.flush()
        if self._cast is not None:
            self._cast.close()
        if self._kf is not None:
            self._kf.close()


@dataclass(frozen=True)
class Keyframe:
    t: float
    offset: int
    cols: int
    rows: int
    cursor: tuple[int, int]
    lines: tuple[str, ...]


class CastReader:
    """Reads a cast and its keyframes; seeks to a time without replaying from the start."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with path.open("rb") as fh:
            first = fh.readline()
            self.events_offset = fh.tell()
        try:
            self.header: dict[str, Any] = json.loads(first)
        except ValueError:
            raise RecordingFormatError(f"{path}: not an asciicast file") from None
        if not isinstance(self.header, dict) or self.header.get("version") != 2:
            raise RecordingFormatError(f"{path}: asciicast version {self.header.get('version')!r} is not 2")
        self.keyframes = self._load_keyframes()
        self.replayed = 0  # events fed by the last screen_at(), for tests and diagnostics

    def _load_keyframes(self) -> list[Keyframe]:
        kf_file = keyframes_path(self.path)
        if not kf_file.exists():
            return []
        out: list[Keyframe] = []
        with kf_file.open(encoding="utf-8") as fh:
            head = json.loads(fh.readline() or "{}")
            if head.get("format") != KEYFRAME_FORMAT or head.get("version") != KEYFRAME_VERSION:
                raise RecordingFormatError(f"{kf_file}: not a version {KEYFRAME_VERSION} keyframe file")
            for line in fh:
                try:
                    k = json.loads(line)
                except ValueError:
                    break  # a half-written last line after a crash
                out.append(Keyframe(k["t"], k["offset"], k["cols"], k["rows"], tuple(k["cursor"]), tuple(k["lines"])))
        return out

    def events(self, offset: int | None = None) -> Iterator[tuple[float, str, str]]:
        with self.path.open("rb") as fh:
            fh.seek(self.events_offset if offset is None else offset)
            for raw in fh:
                try:
                    t, code, data = json.loads(raw)
                except ValueError:
                    break
                yield float(t), str(code), str(data)

    def duration(self) -> float:
        last = 0.0
        for t, _, _ in self.events(self.keyframes[-1].offset if self.keyframes else None):
            last = t
        return max(last, self.keyframes[-1].t if self.keyframes else 0.0)

    def keyframe_before(self, t: float) -> Keyframe | None:
        best = None
        for k in self.keyframes:
            if k.t <= t:
                best = k
            else:
                break
        return best

    def screen_at(self, t: float) -> tuple[list[str], Keyframe | None]:
        """The screen lines at time t, and the keyframe the reconstruction started from."""
        kf = self.keyframe_before(t)
        if kf is not None:
            screen, stream = restore_screen(kf)
            start = kf.offset
        else:
            screen = pyte.Screen(int(self.header.get("width", 80)), int(self.header.get("height", 24)))
            stream = pyte.Stream(screen)
            start = None
        self.replayed = 0
        for et, code, data in self.events(start):
            if et > t:
                break
            self.replayed += 1
            if code == "o":
                stream.feed(data)
            elif code == "r":
                cols, _, rows = data.partition("x")
                screen.resize(int(rows), int(cols))
        return [line.rstrip() for line in screen.display], kf


def restore_screen(kf: Keyframe) -> tuple[pyte.Screen, pyte.Stream]:
    """A pyte screen showing a keyframe's text with the cursor where it was."""
    screen = pyte.Screen(kf.cols, kf.rows)
    stream = pyte.Stream(screen)
    stream.feed(keyframe_ansi(kf))
    return screen, stream


def keyframe_ansi(kf: Keyframe) -> str:
    """Escape sequences that paint a keyframe on a cleared terminal. The lines are the text of a
    screen; should a keyframe file hold anything else, it is shown, never sent as a control."""
    parts = ["\x1b[H\x1b[2J"]
    for i, line in enumerate(kf.lines):
        if line:
            parts.append(f"\x1b[{i + 1};1H{visible(line)}")
    parts.append(f"\x1b[{kf.cursor[1] + 1};{kf.cursor[0] + 1}H")
    return "".join(parts)


def cast_text(path: Path) -> str:
    """The session's output as plain text: escape sequences and carriage returns removed, stray
    control characters shown visibly."""
    term = InertTerminal(plain=True)
    return "".join(term.feed(data) for _, code, data in CastReader(path).events() if code == "o")


def play_cast(path: Path, *, speed: float = 0.0, start: float = 0.0, as_text: bool = False, out: Any = None) -> int:
    """`hoop replay` for terminal sessions: with timing (`speed` > 0) or at once, from `start`
    seconds (painting the nearest keyframe first instead of replaying from the beginning).
    The output goes through `InertTerminal`: the screen is drawn, and nothing that acts outside
    it (clipboard, title, hyperlinks, control strings, queries) reaches the terminal."""
    import sys

    out = out or sys.stdout
    if as_text:
        out.write(cast_text(path))
        out.flush()
        return 0
    reader = CastReader(path)
    term = InertTerminal()
    kf = reader.keyframe_before(start) if start > 0 else None
    offset = None
    last = start
    if kf is not None:
        out.write(keyframe_ansi(kf))
        offset, last = kf.offset, kf.t
    for t, code, data in reader.events(offset):
        if code != "o":
            continue
        if t >= start and speed > 0 and t > last:
            out.flush()
            time.sleep(min(t - last, 5.0) / speed)  # long idle gaps are capped at 5 s
        if t >= start or kf is None or t >= kf.t:
            last = max(last, t)
        out.write(term.feed(data))
    out.write(term.finish())
    out.flush()
    return 0
