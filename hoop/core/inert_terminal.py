"""Terminal output made safe to replay on an approver's terminal: the screen, and nothing that
acts outside it.

A recorded terminal session is the target's raw output. Written as it is to the approver's
terminal, it could set the clipboard (OSC 52), the window title (OSC 0/2), plant hyperlinks
(OSC 8), send control strings (DCS, SOS, PM, APC) to the terminal itself, ask questions the
terminal answers as if typed (device status, device attributes), or switch input modes
(mouse reporting, bracketed paste) that outlive the replay.

`InertTerminal` parses the output with pyte (the same VT100 emulator that renders recordings
in the TUI) and writes back, in canonical form, only what draws the screen: text (with stray
control characters shown visibly, see hoop.core.visible), CR/LF/BS/TAB, cursor movement,
erasing, inserting and deleting, scroll margins, colours and attributes (SGR), and the few
display modes listed in `_DISPLAY_MODES`. Everything else is dropped. Control strings are
removed, payload included, before pyte sees them: pyte would otherwise draw their payload as
text. `finish()` returns what puts the terminal back as the replay found it. With
`plain=True` only the text is kept (for `hoop replay --text`).
"""

from __future__ import annotations

import re
from typing import Any, cast

import pyte

from hoop.core.visible import visible

# Private (DEC) display modes replayed, with the state to restore at the end (None: leave as is).
# Modes that change what the terminal sends (mouse reporting, bracketed paste, cursor keys) or
# its window (132 columns) are left out.
_DISPLAY_MODES: dict[int, bool | None] = {
    5: False,  # reverse video
    6: False,  # origin mode
    7: True,  # auto-wrap
    12: None,  # cursor blink
    25: True,  # cursor shown
    47: False,  # alternate screen
    1047: False,  # alternate screen
    1048: None,  # saved cursor
    1049: False,  # alternate screen, cursor saved
}
_INSERT_MODE = 4  # the one ANSI mode replayed (insert instead of replace)


class _ControlStrings:
    """Removes DCS, SOS, PM and APC strings (7- and 8-bit), payload included, across chunks."""

    _START = re.compile("\x1b[PX^_]|[\x90\x98\x9e\x9f]")
    _END = re.compile("\x1b\\\\|[\x9c\x18\x1a]")  # ST, or CAN/SUB, which abort the string

    def __init__(self) -> None:
        self.inside = False
        self.held = ""  # a trailing ESC: the next chunk tells what it starts

    def feed(self, text: str) -> str:
        text, self.held = self.held + text, ""
        out: list[str] = []
        pos = 0
        while True:
            match = (self._END if self.inside else self._START).search(text, pos)
            if match is None:
                rest = text[pos:]
                if rest.endswith("\x1b"):
                    self.held, rest = "\x1b", rest[:-1]
                if not self.inside:
                    out.append(rest)
                return "".join(out)
            if not self.inside:
                out.append(text[pos : match.start()])
            self.inside = not self.inside
            pos = match.end()


class _ScreenOnly:
    """A pyte listener that writes back only what draws the screen (see the module docstring).
    pyte calls one method per parsed event; every event pyte knows has a method here."""

    def __init__(self, plain: bool) -> None:
        self.out: list[str] = []
        self.plain = plain
        self.modes: dict[tuple[int, bool], bool] = {}  # (mode, private) -> set
        self.margins = False

    def _emit(self, sequence: str) -> None:
        if not self.plain:
            self.out.append(sequence)

    def _csi(self, final: str, params: tuple[int, ...], private: bool) -> None:
        if not private:  # pyte reads `CSI ? ...` of any kind as private; only modes use it here
            self._emit("\x1b[" + ";".join(map(str, params)) + final)

    def _mode(self, modes: tuple[int, ...], private: bool, on: bool) -> None:
        for mode in modes:
            if (mode in _DISPLAY_MODES) if private else mode == _INSERT_MODE:
                self.modes[(mode, private)] = on
                self._emit(f"\x1b[{'?' if private else ''}{mode}{'h' if on else 'l'}")

    def restore(self) -> str:
        """What puts the terminal's state back: modes, scroll margins, attributes, cursor."""
        if self.plain:
            return ""
        parts = []
        for (mode, private), on in self.modes.items():
            default = _DISPLAY_MODES.get(mode) if private else False
            if default is not None and on != default and mode != 25:
                parts.append(f"\x1b[{'?' if private else ''}{mode}{'h' if default else 'l'}")
        if self.margins:
            parts.append("\x1b7\x1b[r\x1b8")  # resetting the margins homes the cursor: keep it
        self.modes.clear()
        self.margins = False
        return "".join(parts) + "\x1b[0m\x1b[?25h"

    # -- text and C0 controls --------------------------------------------------------------

    def draw(self, text: str) -> None:
        self.out.append(visible(text))

    def linefeed(self) -> None:
        self.out.append("\n")

    def tab(self) -> None:
        self.out.append("\t")

    def carriage_return(self) -> None:
        self._emit("\r")

    def backspace(self) -> None:
        self._emit("\b")

    # -- ESC sequences ---------------------------------------------------------------------

    def reset(self) -> None:
        self._emit("\x1b[0m\x1b[H\x1b[2J")  # what a full reset shows, without resetting the terminal

    def index(self) -> None:
        self._emit("\x1bD")

    def reverse_index(self) -> None:
        self._emit("\x1bM")

    def set_tab_stop(self) -> None:
        self._emit("\x1bH")

    def save_cursor(self) -> None:
        self._emit("\x1b7")

    def restore_cursor(self) -> None:
        self._emit("\x1b8")

    # -- CSI sequences ---------------------------------------------------------------------

    def insert_characters(self, *p: int, private: bool = False) -> None:
        self._csi("@", p, private)

    def cursor_up(self, *p: int, private: bool = False) -> None:
        self._csi("A", p, private)

    def cursor_down(self, *p: int, private: bool = False) -> None:
        self._csi("B", p, private)

    def cursor_forward(self, *p: int, private: bool = False) -> None:
        self._csi("C", p, private)

    def cursor_back(self, *p: int, private: bool = False) -> None:
        self._csi("D", p, private)

    def cursor_down1(self, *p: int, private: bool = False) -> None:
        self._csi("E", p, private)

    def cursor_up1(self, *p: int, private: bool = False) -> None:
        self._csi("F", p, private)

    def cursor_to_column(self, *p: int, private: bool = False) -> None:
        self._csi("G", p, private)

    def cursor_position(self, *p: int, private: bool = False) -> None:
        self._csi("H", p, private)

    def erase_in_display(self, *p: int, private: bool = False) -> None:
        self._csi("J", p, private)

    def erase_in_line(self, *p: int, private: bool = False) -> None:
        self._csi("K", p, private)

    def insert_lines(self, *p: int, private: bool = False) -> None:
        self._csi("L", p, private)

    def delete_lines(self, *p: int, private: bool = False) -> None:
        self._csi("M", p, private)

    def delete_characters(self, *p: int, private: bool = False) -> None:
        self._csi("P", p, private)

    def erase_characters(self, *p: int, private: bool = False) -> None:
        self._csi("X", p, private)

    def cursor_to_line(self, *p: int, private: bool = False) -> None:
        self._csi("d", p, private)

    def clear_tab_stop(self, *p: int, private: bool = False) -> None:
        self._csi("g", p, private)

    def select_graphic_rendition(self, *p: int, private: bool = False) -> None:
        self._csi("m", p, private)

    def set_margins(self, *p: int, private: bool = False) -> None:
        if not private:
            self.margins = any(p)
        self._csi("r", p, private)

    def set_mode(self, *modes: int, private: bool = False) -> None:
        self._mode(modes, private, True)

    def reset_mode(self, *modes: int, private: bool = False) -> None:
        self._mode(modes, private, False)

    # -- dropped: they act outside the screen, or make the terminal answer ---------------------

    def _drop(self, *args: Any, **kwargs: Any) -> None:
        pass

    bell = shift_in = shift_out = alignment_display = define_charset = _drop
    set_title = set_icon_name = report_device_attributes = report_device_status = debug = _drop


class InertTerminal:
    """Feed a terminal session's output in order; each call returns what is safe to write."""

    def __init__(self, *, plain: bool = False) -> None:
        self._strings = _ControlStrings()
        self._screen = _ScreenOnly(plain)
        self._stream = pyte.Stream(cast(Any, self._screen))  # strict: pyte checks every event is handled

    def feed(self, text: str) -> str:
        self._stream.feed(self._strings.feed(text))
        out = "".join(self._screen.out)
        self._screen.out.clear()
        return out

    def finish(self) -> str:
        """What puts the terminal back as the replay found it (modes, margins, attributes)."""
        return self._screen.restore()
