"""SSH command rules match the parsed argv, not the text, and what the gateway cannot expand
is `dynamic`: every spelling of `rm -rf` meets a rule `"rm -rf *"`."""

from __future__ import annotations

import pytest

from hoop.core.guardrails import Context, GuardRule, RuleSet
from hoop.core.sql import classify_shell

CTX = Context(connection="web-1", user="alice", groups=frozenset())
RM_RF = RuleSet([GuardRule("no-rm-rf", "block", commands=("rm -rf *",))])


def verdict(line: str, rules: RuleSet = RM_RF) -> tuple[str, str]:
    v = rules.evaluate(classify_shell(line), CTX)
    return v.action, v.reason


@pytest.mark.parametrize(
    "line",
    [
        "rm -rf x",
        "rm -fr x",
        "rm -r -f x",
        "rm -R -f x",
        "rm --recursive --force x",
        "rm --force -r x",
        "rm --rec --for x",
        "exec -a foo rm -fr x",
        "/bin/rm -rf x",
        "rm x -rf",
        "sudo rm -fr x",
        "ls; rm -r -f x",
    ],
)
def test_every_spelling_of_the_flags_matches(line: str) -> None:
    action, reason = verdict(line)
    assert action == "block" and "rule no-rm-rf blocks command" in reason, (line, reason)
    assert "cannot be known" not in reason, reason


@pytest.mark.parametrize("line", ["rm x", "rm -r x", "rm -f x", "ls -la", "echo rm -rf x", "rm -- -rf"])
def test_other_commands_do_not_match(line: str) -> None:
    assert verdict(line)[0] == "allow", line


def test_a_pattern_with_only_a_program_matches_any_use_and_argument_globs_match_in_order() -> None:
    rules = RuleSet(
        [
            GuardRule("no-shutdown", "block", commands=("shutdown",)),
            GuardRule("no-stop", "block", commands=("systemctl stop *",)),
            GuardRule("no-force-push", "block", commands=("git push --force",)),
        ]
    )
    for line in ("shutdown", "/sbin/shutdown -h now", "systemctl stop nginx", "git push -f origin main"):
        assert verdict(line, rules)[0] == "block", line
    for line in ("systemctl status nginx", "git push origin main", "git log"):
        assert verdict(line, rules)[0] == "allow", line


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("`echo rm` -rf x", "substitution"),
        ("$(echo rm) -rf x", "substitution"),
        ("{rm,-rf,x}", "brace"),
        ("/bin/r? -rf x", "glob"),
        ("/bin/r[m] -rf x", "glob"),
        ("r\\\nm -rf x", "backslash-newline"),
        (". ./script", "script"),
        ("source ./script", "script"),
        ("find x -exec rm -rf {} +", "find"),
        ("find x -execdir rm -rf {} ;", "find"),
        ("find x -ok rm {} ;", "find"),
        ("rm {-r,-f} x", "brace"),
        ("rm $FLAGS x", "expanded"),
        ("rm -r? x", "glob"),
        ("alias r='rm -rf'; r x", "alias"),
        ("hash -p /bin/rm ls; ls -rf x", "hash"),
        ("trap 'rm -fr x' EXIT", "trap"),
        ("coproc rm -rf x", "coproc"),
        ("function f { rm -rf x; }; f", "function"),
    ],
)
def test_what_the_gateway_cannot_expand_is_dynamic_with_a_reason(line: str, why: str) -> None:
    action, reason = verdict(line)
    assert action == "block", (line, reason)
    assert "cannot be known before it runs" in reason and why in reason, (line, reason)


def test_what_was_caught_before_still_is() -> None:
    for line in (
        "bash -c 'rm -fr x'",
        "echo cm0gLXJmIHgK | base64 -d | sh",
        "sh <<EOF\nrm -rf x\nEOF",
        "$x -rf d",
        "echo $(rm -r -f x)",
        "true && rm -fr x",
        "true; rm -fr x",
        "sudo -u root rm -fr x",
        "eval rm -fr x",
        "env -i rm -fr x",
        "echo x | xargs rm -fr",
        "python3 -c 'import shutil'",
    ):
        assert verdict(line)[0] == "block", line


def test_ordinary_commands_stay_allowed() -> None:
    for line in ("ls -la", "git log --oneline", "echo hi", "systemctl status x", "grep -r --include=*.py foo ."):
        assert verdict(line)[0] == "allow", line


def test_arithmetic_runs_nothing_but_commands_inside_it_are_judged() -> None:
    shutdown = RuleSet([GuardRule("no-shutdown", "block", commands=("shutdown",))])
    assert verdict("echo ran-$((6*7))", shutdown)[0] == "allow"  # its * is no glob
    for line in ("echo $(( $(rm -rf x) + 1 ))", "echo $((`rm -rf x`))", "echo $((rm -rf x))"):
        assert verdict(line)[0] == "block", line


def test_a_pattern_with_an_unbalanced_quote_still_loads() -> None:
    rules = RuleSet([GuardRule("odd", "block", commands=("rm 'x",))])
    assert verdict('rm "\'x"', rules)[0] == "block"


KILL_9 = RuleSet([GuardRule("no-kill-9", "block", commands=("kill -9 *", "pkill -KILL *"))])


@pytest.mark.parametrize(
    "line",
    [
        "kill -9 1",
        "kill -KILL 1",
        "kill -SIGKILL 1",
        "kill -s KILL 1",
        "kill -s sigkill 1",
        "kill -s 9 1",
        "kill -n 9 1",
        "kill --signal=KILL 1",
        "kill -sKILL 1",
        "/bin/kill --signal KILL 1",
        "pkill -9 nginx",
        "pkill --signal KILL nginx",
    ],
)
def test_every_spelling_of_a_signal_is_its_number(line: str) -> None:
    assert verdict(line, KILL_9)[0] == "block", line


@pytest.mark.parametrize("line", ["kill 1", "kill -15 1", "kill -s TERM 1", "kill -l", "pkill -f nginx"])
def test_other_signals_do_not_match(line: str) -> None:
    assert verdict(line, KILL_9)[0] == "allow", line


@pytest.mark.parametrize(
    "line",
    [
        "PATH=/tmp/bin x -rf d",
        "PATH=/tmp/bin; x -rf d",
        "export PATH=/tmp/bin; x -rf d",
        "env LD_PRELOAD=/tmp/evil.so ls",
        "BASH_ENV=/tmp/evil bash -c ls",
        "declare -x IFS=/; x",
        "EDITOR=/tmp/evil git commit",
    ],
)
def test_variables_that_change_what_runs_are_dynamic(line: str) -> None:
    action, reason = verdict(line)
    assert action == "block" and "cannot be known" in reason and "changes which program" in reason, (line, reason)


@pytest.mark.parametrize("line", ["LANG=C ls", "env TZ=UTC date", "export A=1; ls"])
def test_other_variables_are_not(line: str) -> None:
    assert verdict(line)[0] == "allow", line
