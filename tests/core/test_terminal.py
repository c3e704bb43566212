"""Asciicast writer, keyframes, seeking reader and submitted-line detection (pure, no SSH)."""

from __future__ import annotations

import io
import json

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
