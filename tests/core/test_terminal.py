"""Asciicast writer, keyframes, seeking reader and submitted-line detection (pure, no SSH)."""

from __future__ import annotations

import io
import json

from support.inert import active_characters

from hoop.core.terminal import CastReader, CastWriter, cast_text, play_cast


def _session(tmp_path, record_input=False):
    w = CastWriter(tmp_path / "7.cast", 40, 5, started=1000.0, record_input=record_input, keyframe_every=5.0)
    for i in range(20):
        w.output(f"line {i}\r\n".encode(), now=1000.0 + i)
    w.input(b"secret\r", now=1020.5)
    w.resize(50, 6, now=1021.0)
    w.output("é".encode()[:1], now=1021.5)  # a split UTF-8 character
    w.output("é".encode()[1:] + b" end", now=1021.6)
    w.close()
    return tmp_path / "7.cast"


def test_cast_is_asciicast_v2(tmp_path):
    lines = _session(tmp_path).read_text(encoding="utf-8").splitlines()
    head = json.loads(lines[0])
    assert head["version"] == 2 and (head["width"], head["height"]) == (40, 5)
    events = [json.loads(line) for line in lines[1:]]
    assert [e[1] for e in events].count("o") == 21
    assert ["r" == e[1] and e[2] == "50x6" for e in events].count(True) == 1
    assert all(e[1] != "i" for e in events), "input is only recorded when the connection opts in"
    assert events[-1][2] == "é end"


def test_input_recorded_when_opted_in(tmp_path):
    text = _session(tmp_path, record_input=True).read_text()
    assert '"i","secret\\r"' in text


def test_seek_uses_keyframe_and_matches_full_replay(tmp_path):
    reader = CastReader(_session(tmp_path))
    assert len(reader.keyframes) >= 3
    screen, kf = reader.screen_at(12.5)
    assert kf is not None and kf.t <= 12.5
    assert reader.replayed < 13, "only events after the keyframe are replayed"
    assert screen[-2] == "line 12"
    # same screen as replaying from the start without keyframes
    reader.keyframes = []
    full, _ = reader.screen_at(12.5)
    assert full == screen


def test_submitted_line_read_from_screen_when_enter_echoes(tmp_path):
    w = CastWriter(tmp_path / "1.cast", 80, 10)
    w.output(b"root@web1:~# ")
    w.mark_submit()  # typed ahead: the echo has not arrived yet
    w.output(b"ls -la /tmp\r\n")
    w.output(b"total 0\r\nroot@web1:~# ")
    assert w.lines == ["ls -la /tmp"]
    w.close()


def test_text_and_play(tmp_path):
    path = _session(tmp_path)
    assert "line 19\n" in cast_text(path)
    out = io.StringIO()
    play_cast(path, start=15.0, out=out)
    assert "line 19" in out.getvalue()
    assert "line 2\r" not in out.getvalue(), "playing from 15 s starts at a keyframe"


# What acts outside the screen: clipboard, window title, hyperlinks, control strings (DCS, APC,
# PM, SOS, in 7- and 8-bit form), queries the terminal would answer, terminal input modes.
OUTSIDE = [
    "\x1b]52;c;ZWNobyBwd25lZA==\x07",
    "\x1b]0;pwned-title\x07",
    "\x1b]2;other-title\x1b\\",
    "\x1b]8;;https://example.com\x07",
    "\x1b]8;;\x07",
    "\x9d0;c1-title\x9c",
    "\x1bP1$qpayload\x1b\\",
    "\x90c1-payload\x9c",
    "\x1b_apc-payload\x1b\\",
    "\x1b^pm-payload\x1b\\",
    "\x1bXsos-payload\x1b\\",
    "\x1b[6n",
    "\x1b[c",
    "\x1b[>c",
    "\x1b[18t",
    "\x1b[?1000h",
    "\x1b[?2004h",
    "\x1b[20h",
    "\x05",
    "\x1bc",
]
# What draws the screen: colours, cursor movement, erasing, the alternate screen.
SCREEN = ["\x1b[31m", "\x1b[0m", "\x1b[2;5H", "\x1b[1A", "\x1b[2K", "\x1b[?1049h", "\x1b[?1049l", "\x1b[?25l"]


def _hostile_cast(tmp_path):
    w = CastWriter(tmp_path / "5.cast", 80, 24, started=1000.0)
    w.output(b"root@web1:~# ", now=1000.5)
    w.output(OUTSIDE[0][:6].encode(), now=1000.6)  # a sequence split across two events
    for i, seq in enumerate([OUTSIDE[0][6:], *OUTSIDE[1:]]):
        w.output(f"{seq}link-{i} ".encode(), now=1001.0 + i * 0.1)
    w.output(("".join(SCREEN[:2]) + "\x1b[31mred\x1b[0m " + "".join(SCREEN[2:]) + "done\r\n").encode(), now=1010.0)
    w.close()
    return tmp_path / "5.cast"


def test_play_sends_the_screen_and_nothing_that_acts_outside_it(tmp_path):
    path = _hostile_cast(tmp_path)
    out = io.StringIO()
    play_cast(path, out=out)
    played = out.getvalue()
    for seq in OUTSIDE:
        assert seq not in played, seq
    for word in ("payload", "pwned-title", "other-title", "c1-title", "https://"):
        assert word not in played, word
    assert "\x1b]" not in played and "\x1bP" not in played and "\x07" not in played
    assert active_characters(played, keep="\n\r\x1b") == []
    assert "\x1b[31mred\x1b[0m" in played
    for seq in SCREEN[2:]:
        assert seq in played, seq
    assert all(f"link-{i}" in played for i in range(len(OUTSIDE))), "the text around them is kept"
    assert played.endswith("\x1b[0m\x1b[?25h"), "colours and the cursor are restored at the end"
    text = cast_text(path)
    assert active_characters(text, keep="\n\t") == []
    assert "red done" in text and "payload" not in text and "pwned-title" not in text


def test_play_from_a_keyframe_is_inert(tmp_path):
    path = _hostile_cast(tmp_path)
    kf = path.with_suffix(".keyframes.jsonl")
    lines = kf.read_text().splitlines()
    frame = json.loads(lines[-1])
    frame["lines"][0] = "\x1b]52;c;ZWNobyBwd25lZA==\x07forged"  # a keyframe file edited on disk
    kf.write_text("\n".join([*lines[:-1], json.dumps(frame)]) + "\n")
    out = io.StringIO()
    play_cast(path, start=frame["t"], out=out)
    assert "\x1b]" not in out.getvalue() and "\\x1b]52;c;ZWNobyBwd25lZA==\\x07forged" in out.getvalue()
