"""A small line editor for the built-in session and its SQL shell (bytes in, bytes out).

Keys: printable text, Backspace, Delete, Left/Right, Home/End (and Ctrl-A/Ctrl-E), Up/Down
through history, Ctrl-U (clear), Ctrl-C (abandon the line), Ctrl-D (end on an empty line),
Enter. The line is redrawn after each edit, which is simple and right for one-line input.
asyncssh's own editor works on str channels; ours stays on the byte channel the relays use,
so the session can switch between editing and relaying without reopening anything.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable

KEYS = {"A": "up", "B": "down", "C": "right", "D": "left", "H": "home", "F": "end"}


class LineEditor:
    """`feed(bytes)` returns events: ("line", text), ("interrupt", ""), ("eof", "")."""

    def __init__(self, write: Callable[[bytes], None], prompt: str = "> ", echo: bool = True) -> None:
        self.write = write
        self.prompt = prompt
        self.echo = echo
        self.buf: list[str] = []
        self.pos = 0
        self.history: list[str] = []
        self.hpos = 0
        self._esc = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._last_cr = False

    def show_prompt(self) -> None:
        self.buf, self.pos, self.hpos = [], 0, len(self.history)
        self.write(self.prompt.encode())

    def _redraw(self) -> None:
        if not self.echo:
            return
        text = "".join(self.buf)
        back = len(self.buf) - self.pos
        self.write(f"\r\x1b[K{self.prompt}{text}".encode() + (f"\x1b[{back}D".encode() if back else b""))

    def feed(self, data: bytes) -> list[tuple[str, str]]:
        events: list[tuple[str, str]] = []
        for ch in self._decoder.decode(data):
            if self._esc:
                self._escape(ch)
                continue
            if ch == "\n" and self._last_cr:  # CR LF from a pipe counts once
                self._last_cr = False
                continue
            self._last_cr = ch == "\r"
            if ch in "\r\n":
                line = "".join(self.buf)
                if self.echo:
                    self.write(b"\r\n")
                if line.strip() and (not self.history or self.history[-1] != line):
                    self.history.append(line)
                self.buf, self.pos = [], 0
                events.append(("line", line))
            elif ch == "\x03":
                if self.echo:
                    self.write(b"^C\r\n")
                self.buf, self.pos = [], 0
                events.append(("interrupt", ""))
            elif ch == "\x04":
                if not self.buf:
                    events.append(("eof", ""))
                elif self.pos < len(self.buf):
                    del self.buf[self.pos]
                    self._redraw()
            elif ch in "\x7f\x08":
                if self.pos:
                    self.pos -= 1
                    del self.buf[self.pos]
                    self._redraw()
            elif ch == "\x15":
                self.buf, self.pos = [], 0
                self._redraw()
            elif ch == "\x01":
                self.pos = 0
                self._redraw()
            elif ch == "\x05":
                self.pos = len(self.buf)
                self._redraw()
            elif ch == "\x1b":
                self._esc = ch
            elif ch >= " ":
                self.buf.insert(self.pos, ch)
                self.pos += 1
                if self.pos == len(self.buf) and self.echo:
                    self.write(ch.encode())
                else:
                    self._redraw()
        return events

    def _escape(self, ch: str) -> None:
        self._esc += ch
        seq = self._esc
        if seq in ("\x1b[", "\x1bO") or (seq.startswith("\x1b[") and (ch.isdigit() or ch == ";")):
            return  # sequence continues
        self._esc = ""
        key = KEYS.get(seq[-1]) if seq[:2] in ("\x1b[", "\x1bO") else None
        if seq == "\x1b[3~" and self.pos < len(self.buf):
            del self.buf[self.pos]
        elif key == "left" and self.pos:
            self.pos -= 1
        elif key == "right" and self.pos < len(self.buf):
            self.pos += 1
        elif key == "home":
            self.pos = 0
        elif key == "end":
            self.pos = len(self.buf)
        elif key in ("up", "down") and self.history:
            self.hpos = max(0, self.hpos - 1) if key == "up" else min(len(self.history), self.hpos + 1)
            self.buf = list(self.history[self.hpos]) if self.hpos < len(self.history) else []
            self.pos = len(self.buf)
        else:
            return
        self._redraw()
