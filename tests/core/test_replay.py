"""How `hoop replay` prints a statement's frames: plain words, hostile text inert."""

from __future__ import annotations

from support.inert import (
    HOSTILE_RULE,
    HOSTILE_USER,
    OSC52,
    SHOWN,
    SHOWN_RULE,
    SHOWN_STATEMENT,
    SHOWN_USER,
    STATEMENT,
    assert_inert,
)

from hoop.core.replay import describe_frame


def test_result_lines_count_rows_in_plain_words() -> None:
    def line(**data: object) -> str:
        text = describe_frame(1.5, "r", {"ms": 0.5, **data})
        assert text is not None
        return text

    assert line(rows=1).endswith("-> ok, 1 row (0.5 ms)")
    assert line(rows=0).endswith("-> ok, 0 rows (0.5 ms)")
    assert line(rows=3, tag="SELECT 3").endswith("-> SELECT 3, 3 rows (0.5 ms)")
    assert line(rows=None).endswith("-> ok (0.5 ms)")
    assert line(error="1146 no such table").endswith("-> error: 1146 no such table (0.5 ms)")


def test_frames_show_hostile_text_inert() -> None:
    def line(kind: str, **data: object) -> str:
        text = describe_frame(1.5, kind, data)
        assert text is not None
        return text

    assert_inert(line("q", text=STATEMENT, decision="review", rule=HOSTILE_RULE), SHOWN_STATEMENT, SHOWN_RULE)
    assert_inert(line("r", error=f"no relation {OSC52}", ms=1.0), SHOWN["osc52"])
    sample = line("r", rows=1, ms=1.0, tag=f"SELECT\r{OSC52}", sample=[[OSC52, "a\nb"]])
    assert_inert(sample, SHOWN["osc52"], r"a\nb")
    assert len(sample.splitlines()) == 2, "a value cannot start a line of its own"
    assert_inert(line("e", event="start", user=HOSTILE_USER), SHOWN_USER)
