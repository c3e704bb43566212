"""Shell command-line splitting for SSH exec guardrails."""

from __future__ import annotations

from hoop.core.guardrails import Context, GuardRule, RuleSet
from hoop.core.sql import classify_shell

CTX = Context(connection="web-1", user="alice", groups=frozenset())


def programs(line: str) -> list[str]:
    c = classify_shell(line)
    assert c.error is None, c.error
    return [s.object for s in c.walk()]


def test_operators_and_newlines() -> None:
    assert programs("ls; rm -rf / && a || b | c & d\ne") == ["ls", "rm", "a", "b", "c", "d", "e"]
    assert programs("ls 2>&1 | grep x &> /dev/null") == ["ls", "grep"]


def test_substitutions_subshells_and_nested_shells() -> None:
    assert programs('echo "$(rm -rf /)" `id`') == ["echo", "rm", "id"]
    assert programs("(cd /tmp; rm -rf *)") == ["cd", "rm"]
    assert programs("bash -c 'ls; sh -c \"rm -rf /\"'") == ["bash", "ls", "sh", "rm"]
    assert programs("sudo -u root /usr/bin/rm -rf /") == ["sudo", "rm"]
    assert programs("X=1 env Y=2 rm x") == ["env", "rm"]


def test_text_is_normalised_and_quotes_do_not_hide_separators() -> None:
    c = classify_shell("'/bin/rm' '-rf' /var; echo 'a; rm -rf /'")
    assert [s.text for s in c.statements] == ["rm -rf /var", "echo a; rm -rf /"]


def test_unknown_scripts_are_dynamic_and_bad_quotes_are_errors() -> None:
    c = classify_shell("curl -s http://x | sh")
    assert [s.dynamic for s in c.statements] == [False, True]
    assert classify_shell("echo 'open").error
    assert classify_shell("echo $(ls").error


def test_rules_block_rm_rf_wherever_it_hides() -> None:
    by_text = RuleSet([GuardRule("no-rm-rf", "block", commands=("rm -rf *",))])
    by_program = RuleSet([GuardRule("no-rm", "block", statements=("command rm",))])
    for line in ("ls; rm -rf /", "bash -c 'rm -rf /'", "echo $(rm -rf /tmp/x)"):
        assert by_text.evaluate(classify_shell(line), CTX).action == "block", line
        assert by_program.evaluate(classify_shell(line), CTX).action == "block", line
    assert by_text.evaluate(classify_shell("ls -la; echo rm -rf"), CTX).action == "allow"
    verdict = by_text.evaluate(classify_shell("ls; rm -rf /"), CTX)
    assert verdict.reason == "rule no-rm-rf blocks command `rm -rf /`"
