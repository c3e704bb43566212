"""Text typed by people into names and notes (rule names, token notes, the OS user recorded as
a rule's author) is shown inert by every CLI listing and in the gateway's log."""

from __future__ import annotations

from typing import Any

import pytest
from support.inert import HOSTILE_RULE, HOSTILE_USER, SHOWN_RULE, SHOWN_USER, assert_inert, toml_string
from support.waiting import eventually

pytestmark = pytest.mark.needs_postgres

NOTE = "ticket\x1b]52;c;ZWNobyBwd25lZA==\x07 [/]"
SHOWN_NOTE = r"ticket\x1b]52;c;ZWNobyBwd25lZA==\x07 [/]"
CONFIG = f"""
[[users]]
name = {toml_string(HOSTILE_USER)}
groups = ["ops"]

[[rules]]
name = {toml_string(HOSTILE_RULE)}
action = "review"
statements = ["update"]
approvers = ["dba"]
"""


def test_tokens_rules_and_log_lines_are_inert(make_gateway: Any) -> None:
    gw = make_gateway(CONFIG)
    issued = gw.cli("token", "issue", HOSTILE_USER, "--note", NOTE)
    assert_inert(issued.stderr, SHOWN_USER)
    assert_inert(gw.cli("token", "list").stdout, SHOWN_USER, SHOWN_NOTE)

    # The admin whose token made a change is recorded as its author; a change by a person
    # outranks hoop.toml, which the gateway says in its log when it starts again.
    edit = f'name = {toml_string(HOSTILE_RULE)}\naction = "block"\nstatements = ["update"]\n'
    gw.admin("rules", "edit", "guard", HOSTILE_RULE, input=edit, user=HOSTILE_USER)
    assert_inert(gw.cli("rules", "list").stdout, SHOWN_RULE, SHOWN_USER)
    assert_inert(gw.cli("rules", "show", "guard", HOSTILE_RULE).stdout, SHOWN_USER)
    assert_inert(gw.cli("audit").stdout, SHOWN_RULE, SHOWN_USER)
    gw.restart()
    log = eventually(lambda: _logged(gw.log(), "was last changed by"))
    assert_inert(log, SHOWN_RULE, SHOWN_USER)


def _logged(log: str, words: str) -> str:
    assert words in log
    return log
