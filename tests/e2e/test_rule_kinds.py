"""An unknown statement kind in a rule is a configuration error at every entry point: `hoop
check`, `hoop serve` (refuses to start), `hoop rules add|edit`, and the control endpoint the
TUI saves through. The error names the entry and lists the valid kinds."""

from __future__ import annotations

import pytest

from hoop.control_client import ControlClient, ControlError

pytestmark = pytest.mark.needs_postgres

TYPO = """
[[rules]]
name = "no-truncate"
action = "block"
statements = ["drop *", "trunc"]
"""


def _says_unknown_kind(text: str) -> None:
    assert "unknown statement kind 'trunc'" in text
    assert "truncate" in text and "merge" in text and "delete" in text  # the valid kinds are listed


def test_hoop_check_and_serve_refuse_an_unknown_kind(make_gateway) -> None:  # type: ignore[no-untyped-def]
    gw = make_gateway(TYPO, start=False)
    checked = gw.cli("check", check=False)
    assert checked.returncode != 0
    _says_unknown_kind(checked.stdout + checked.stderr)
    assert "rules[0].statements" in checked.stdout + checked.stderr
    with pytest.raises(RuntimeError) as refused:
        gw.start(timeout=30)
    _says_unknown_kind(str(refused.value))


def test_globs_matching_known_kinds_and_ssh_commands_load(make_gateway) -> None:  # type: ignore[no-untyped-def]
    gw = make_gateway(
        '[[rules]]\nname = "ddl"\naction = "block"\nstatements = ["drop *", "create *", "drop column", "merge"]\n'
        '[[rules]]\nname = "no-rm"\naction = "block"\nstatements = ["command rm"]\n',
        start=False,
    )
    assert gw.cli("check").returncode == 0


APPROVERS = """
[[rules]]
name = "hold-updates"
action = "review"
statements = ["update"]
approvers = ["dba"]
"""


def test_cli_and_control_endpoint_refuse_an_unknown_kind(make_gateway) -> None:  # type: ignore[no-untyped-def]
    gw = make_gateway(APPROVERS)  # ada (ops) is an admin: she may change rules through the control endpoint
    added = gw.admin(
        "rules", "add", "guard", check=False, input='name = "t"\naction = "block"\nstatements = ["trunc"]\n'
    )
    assert added.returncode != 0
    _says_unknown_kind(added.stderr + added.stdout)
    gw.admin("rules", "add", "guard", input='name = "t"\naction = "block"\nstatements = ["truncate"]\n')
    edited = gw.admin("rules", "edit", "guard", "t", check=False, input='action = "block"\nstatements = ["trunc"]\n')
    assert edited.returncode != 0
    _says_unknown_kind(edited.stderr + edited.stdout)
    assert "statements" in gw.cli("rules", "show", "guard", "t").stdout  # v1 kept
    assert '"trunc"' not in gw.cli("rules", "show", "guard", "t").stdout

    control = ControlClient(gw.root / "data" / "control.sock", gw.token("ada"))
    body = {"name": "from-tui", "action": "block", "statements": ["trunc"]}
    with pytest.raises(ControlError) as refused:
        control.call("rules.save", kind="guard", body=body)
    _says_unknown_kind(str(refused.value))
    listed = gw.cli("rules", "list").stdout
    assert "from-tui" not in listed
