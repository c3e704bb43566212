"""Rules (validation as you type, live preview, save/toggle through the gateway), recordings
search, and replay: stepping, statements, jump, search in a long recording."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_pilot import status_text
from textual.widgets import DataTable, Input, TextArea
from tui_fixtures import FakeControl, new_rule_editor, settle, write_cast

from hoop.tui.screens.replay import ReplayScreen
from hoop.tui.timeline import CastTimeline


async def test_new_guardrail_validates_previews_and_saves(make_app: Any, control: FakeControl) -> None:
    app = make_app(start="rules")
    async with app.run_test(size=(120, 40)) as pilot:
        area = await new_rule_editor(pilot)
        area.text = 'name = "hold-orders"\naction = "sometimes"\nstatements = ["update"]\n'
        await settle(pilot)
        assert "expected one of block, review" in status_text(app, "#rule-problem")
        area.text = 'name = "hold-orders"\naction = "review"\nstatements = ["update"]\ntables = ["orders"]\n'
        await settle(pilot)
        assert "names no approvers" in status_text(app, "#rule-problem")
        area.text += 'approvers = ["dba"]\n'
        await settle(pilot)
        assert status_text(app, "#rule-problem") == "valid"
        preview = status_text(app, "#rule-preview")
        assert "would stop 2" in preview and "void" in preview and "customers" not in preview
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert control.calls == []  # the diff is shown first
        assert '+action = "review"' in status_text(app, "#confirm-details")
        await pilot.press("y")
        await settle(pilot)
        assert control.calls == [
            (
                "rules.save",
                {
                    "kind": "guard",
                    "body": {
                        "name": "hold-orders",
                        "action": "review",
                        "statements": ["update"],
                        "tables": ["orders"],
                        "approvers": ["dba"],
                    },
                },
            )
        ]


async def test_mask_preview_on_sample_and_recorded_rows(make_app: Any) -> None:
    app = make_app(start="rules")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("m")
        await settle(pilot)
        app.screen.query_one(TextArea).text = 'name = "ids"\ncolumns = ["id"]\nstyle = "redact"\n'
        app.screen.query_one(Input).value = "call 555 at bob@example.com"
        await settle(pilot)
        preview = status_text(app, "#rule-preview")
        assert "bob@example.com" in preview  # no detector in this draft: free text untouched
        assert "session 1" in preview and "a***@example.com" in preview
        assert "| 1 |" not in preview and " 1 | a***" not in preview  # the id column is redacted


async def test_toggle_sends_new_version(make_app: Any, control: FakeControl) -> None:
    app = make_app(start="rules")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("space", "enter")  # switching off asks why; the reason is optional here
        await settle(pilot)
        assert control.calls[0] == ("rules.disable", {"kind": "guard", "name": "hold-writes", "reason": ""})


async def test_recordings_search_by_statement_text(make_app: Any) -> None:
    app = make_app(start="recordings")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"hostname")
        await settle(pilot)
        table = app.screen.query_one("#recordings", DataTable)
        assert table.row_count == 1 and str(table.get_row_at(0)[0]) == "3"
        await pilot.press("enter", "enter")
        await settle(pilot)
        assert isinstance(app.screen, ReplayScreen)


async def test_db_replay_step_back_is_identical_and_statements(make_app: Any) -> None:
    app = make_app(start="recordings")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.push_screen(ReplayScreen(app.history.session(1)))
        await settle(pilot)
        screen = app.screen
        await pilot.press("right_square_bracket")
        assert screen.index == 1 and "select id, email" in screen.screen_text()
        await pilot.press("right_square_bracket")
        before = screen.screen_text()
        await pilot.press("right")
        assert screen.screen_text() != before and "blocked by rule" in screen.screen_text()
        await pilot.press("left")
        assert screen.screen_text() == before
        await pilot.press("left_square_bracket")
        assert screen.index == 1
        await pilot.press("j", *"25", "enter")
        await pilot.pause()
        assert screen.index == 4  # the last frame at or before 25 s


async def test_cast_search_finds_late_text_and_steps_back(make_app: Any, history: Any) -> None:
    chunks = [f"line {i} of boring output\r\n" for i in range(3000)]
    chunks[2900] = "root@web1:~# echo needle-4711\r\n"
    write_cast(history.recordings_dir / "3.cast", chunks, step=0.1)
    app = make_app(start="recordings")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.push_screen(ReplayScreen(app.history.session(3)))
        await settle(pilot)
        screen = app.screen
        screen.search("needle-4711")
        assert screen.index == 2900 and "needle-4711" in screen.screen_text()
        await pilot.press("right", "right")
        forward = screen.screen_text()
        await pilot.press("right", "left")
        assert screen.screen_text() == forward
        await pilot.press("space", "plus", "plus")
        assert screen.playing and "4x" in status_text(app, "#replay-bar")


def test_cast_seek_uses_keyframes(tmp_path: Path) -> None:
    path = tmp_path / "9.cast"
    write_cast(path, [f"row {i}\r\n" for i in range(2000)], step=0.1, keyframe_every=5.0)
    timeline = CastTimeline(path)
    screen = timeline.view(1500, 12)
    assert "row 1500" in "\n".join(screen)
    assert timeline.replayed < 100  # rebuilt from a keyframe, not from the start
    again = timeline.view(1500, 12)
    assert again == screen


def test_the_tui_preview_of_a_draft_masks_recorded_expressions_through_their_lineage() -> None:
    from hoop.core.masking import MaskRule
    from hoop.tui.data import Sample
    from hoop.tui.preview import mask_preview

    recorded = Sample(
        7,
        ["e", "public.users.name"],
        [["grace.hopper at navy.example", "Grace"]],
        statement="select replace(email, '@', ' at ') as e, name from users",
    )
    draft = MaskRule("draft", columns=("users.email",), style="redact")
    _, rows = mask_preview(draft, "pg", "", recorded)
    assert rows == [["****", "Grace"]]
    _, rows = mask_preview(MaskRule("other", columns=("users.ssn",)), "pg", "", recorded)
    assert rows == [["grace.hopper at navy.example", "Grace"]]
