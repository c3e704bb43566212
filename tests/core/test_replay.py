"""How `hoop replay` prints a statement's result line."""

from __future__ import annotations

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
