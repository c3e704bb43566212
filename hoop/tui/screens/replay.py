"""Replay one recording frame by frame.

Space play/pause, +/- speed (0.5x-8x), Right/Left step one frame forward/back, ]/[ next or
previous statement (or command), j jump to a time, / search the whole recording, n/N next or
previous hit, Home/End first/last frame. The view is a pure function of the frame index.
The recording's lines are shown inert, each on a line of its own (hoop.tui.inert).
"""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Label

from hoop.core.visible import visible
from hoop.tui.inert import inert
from hoop.tui.screens.base import HoopScreen
from hoop.tui.screens.modals import AskText, parse_clock, seconds_problem
from hoop.tui.timeline import Timeline, open_timeline
from hoop.tui.widgets.plain import Plain

SPEEDS = (0.5, 1.0, 2.0, 4.0, 8.0)
TICK = 0.05


class ReplayScreen(HoopScreen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("space", "play", "Play/pause"),
        Binding("right", "step(1)", "Step"),
        Binding("left", "step(-1)", "Back step"),
        Binding("plus,equals_sign", "speed(1)", "Faster"),
        Binding("minus", "speed(-1)", "Slower"),
        Binding("right_square_bracket", "statement(1)", "Next stmt"),
        Binding("left_square_bracket", "statement(-1)", "Prev stmt"),
        Binding("j", "jump", "Jump"),
        Binding("slash", "search", "Search"),
        Binding("n", "hit(1)", "Next hit"),
        Binding("N", "hit(-1)", "Prev hit", show=False),
        Binding("home", "goto(0)", "Start", show=False),
        Binding("end", "goto(-1)", "End", show=False),
    ]

    def __init__(self, session: dict[str, Any]) -> None:
        super().__init__()
        self.session = session
        self.timeline: Timeline | None = None
        self.index = 0
        self.playing = False
        self.speed_i = 1
        self.playhead = 0.0
        self.hits: list[int] = []
        self.hit_i = -1
        self.query_text = ""
        self.problem = ""
        self._last_tick = 0.0

    def compose(self) -> ComposeResult:
        s = self.session
        yield Label(
            inert(f"Replay of session {s['id']}: {s['user']} on {s['connection']} ({s['protocol']})"),
            classes="section",
        )
        yield Plain("loading...", id="replay-view")
        yield Plain("", id="replay-bar")
        yield Footer()

    def on_mount(self) -> None:
        self.load()
        self.set_interval(TICK, self._tick)

    @work(thread=True, group="replay-load")
    def load(self) -> None:
        from hoop.core.errors import HoopError
        from hoop.core.terminal import RecordingFormatError

        history = self.app.history
        times: list[float] = []
        if self.session["protocol"] == "ssh":
            rows = history.statements_after(self.session["id"], 0, 10_000)
            times = [r["started"] - self.session["started"] for r in rows]
        try:
            timeline = open_timeline(history.copies, self.session, times)
        except (HoopError, RecordingFormatError, OSError, ValueError) as exc:
            self.app.call_from_thread(self._failed, str(exc))
            return
        self.app.call_from_thread(self._loaded, timeline)

    def _failed(self, problem: str) -> None:
        self.problem = problem
        self.query_one("#replay-view", Plain).update(inert(problem, style="red"))

    def _loaded(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.goto(0)

    # -- the view -------------------------------------------------------------------------------

    def lines(self) -> list[str]:
        """The recording's lines at the current frame, as recorded."""
        if self.timeline is None:
            return []
        rows = max(self.query_one("#replay-view").size.height, 5)
        return self.timeline.view(self.index, rows)

    def screen_text(self) -> str:
        """What the replay shows now (the tests compare these)."""
        return "\n".join(visible(line) for line in self.lines())

    def goto(self, index: int, *, follow: bool = True) -> None:
        if self.timeline is None or len(self.timeline) == 0:
            return
        self.index = min(max(index, 0), len(self.timeline) - 1)
        if follow:
            self.playhead = self.timeline.times[self.index]
        self.query_one("#replay-view", Plain).update(Text("\n").join(inert(line) for line in self.lines()))
        self._bar()

    def _bar(self) -> None:
        tl = self.timeline
        if tl is None:
            return
        state = "PLAY" if self.playing else "PAUSE"
        hits = f"   /{self.query_text}: {self.hit_i + 1} of {len(self.hits)}" if self.query_text else ""
        self.query_one("#replay-bar", Plain).update(
            f"{state} {SPEEDS[self.speed_i]:g}x   frame {self.index + 1}/{len(tl)}   "
            f"{tl.times[self.index]:.2f}s of {tl.duration:.2f}s   {tl.label(self.index)}{hits}"
        )

    def _tick(self) -> None:
        now = time.monotonic()
        elapsed, self._last_tick = now - self._last_tick, now
        if not self.playing or self.timeline is None:
            return
        self.playhead += min(elapsed, 0.5) * SPEEDS[self.speed_i]
        index = self.timeline.index_at(self.playhead)
        if index != self.index:
            self.goto(index, follow=False)
        if self.index >= len(self.timeline) - 1:
            self.playing = False
            self._bar()

    # -- actions ------------------------------------------------------------------------------------

    def action_play(self) -> None:
        if self.timeline is None:
            return
        if not self.playing and self.index >= len(self.timeline) - 1:
            self.goto(0)
        self.playing = not self.playing
        self._last_tick = time.monotonic()
        self._bar()

    def action_step(self, delta: int) -> None:
        self.playing = False
        self.goto(self.index + delta)

    def action_goto(self, index: int) -> None:
        if self.timeline is not None:
            self.goto(index if index >= 0 else len(self.timeline) - 1)

    def action_speed(self, delta: int) -> None:
        self.speed_i = min(max(self.speed_i + delta, 0), len(SPEEDS) - 1)
        self._bar()

    def action_statement(self, direction: int) -> None:
        if self.timeline is None:
            return
        target = self.timeline.next_statement(self.index) if direction > 0 else self.timeline.prev_statement(self.index)
        if target is None:
            self.notify("no further statement" if direction > 0 else "no earlier statement")
        else:
            self.goto(target)

    def action_jump(self) -> None:
        def answer(text: str | None) -> None:
            if text and self.timeline is not None:
                self.goto(self.timeline.index_at(parse_clock(text)))

        self.app.push_screen(
            AskText(
                "Jump to time", "Seconds from the start (90) or m:ss (1:30):", validate=seconds_problem, required=True
            ),
            answer,
        )

    def action_search(self) -> None:
        def answer(text: str | None) -> None:
            if text:
                self.search(text)

        self.app.push_screen(
            AskText("Search the recording", "Text to find:", value=self.query_text, required=True), answer
        )

    def search(self, text: str) -> None:
        """Find every frame showing `text` and jump to the first hit after the current frame."""
        if self.timeline is None:
            return
        self.query_text = text
        self.hits = self.timeline.search(text)
        if not self.hits:
            self.hit_i = -1
            self.notify(f"{text!r} does not occur in this recording", severity="warning")
            self._bar()
            return
        after = [i for i, h in enumerate(self.hits) if h >= self.index]
        self.hit_i = after[0] if after else 0
        self.goto(self.hits[self.hit_i])

    def action_hit(self, direction: int) -> None:
        if not self.hits:
            return
        self.hit_i = (self.hit_i + direction) % len(self.hits)
        self.goto(self.hits[self.hit_i])
