"""Split a shell command line (SSH exec) into simple commands for the guardrail engine.

Each simple command becomes Statement(kind="command", object=<program basename>, text=<argv joined
by spaces, program as basename>). Command substitutions ($(...), backticks, <(...)), subshells,
`bash -c '...'`, `eval ...` and wrappers (`sudo rm ...`, `env X=1 rm ...`) are classified
recursively into `inner`. Scripts we cannot see (a shell or interpreter reading a file or stdin,
`$PROG args`) are marked dynamic, as is anything whose program the gateway cannot know without
expanding it (a substitution, glob or brace in the program name, a backslash-newline, `.`/`source`,
`find -exec`, builtins such as `alias`), with the reason in `why_dynamic`.
Unterminated quotes or brackets are an error: fail closed.
"""

from __future__ import annotations

import os
import re
import shlex

from .model import Classification, Statement

SHELLS = {"sh", "bash", "zsh", "dash", "ksh", "ash", "busybox", "fish", "csh", "tcsh"}
INTERPRETERS = {"python", "python2", "python3", "perl", "ruby", "node", "php", "lua", "awk", "gawk"}
WRAPPERS = {
    "sudo",
    "doas",
    "env",
    "nohup",
    "exec",
    "command",
    "builtin",
    "time",
    "nice",
    "ionice",
    "timeout",
    "stdbuf",
    "chroot",
    "su",
    "xargs",
    "watch",
    "setsid",
    "strace",
    "runuser",
}
# Options of wrappers that take a separate argument (`sudo -u root rm ...`): skip the argument too.
_WRAPPER_ARG_OPTS = {
    "sudo": "ugpChDrtUT",
    "doas": "uC",
    "exec": "a",
    "nice": "n",
    "ionice": "cnp",
    "timeout": "sk",
    "env": "uC",
    "runuser": "ug",
    "stdbuf": "ioe",
    "xargs": "aEeIiLlnPsd",
    "strace": "eopsuE",
    "watch": "nd",
}
_LONG_ARG_OPTS = {
    "user",
    "group",
    "host",
    "prompt",
    "chdir",
    "role",
    "type",
    "close-from",
    "other-user",
    "signal",
    "kill-after",
    "adjustment",
    "unset",
    "interval",
}
KEYWORDS = {
    "if",
    "then",
    "else",
    "elif",
    "do",
    "while",
    "until",
    "!",
    "{",
    "}",
    "fi",
    "done",
    "esac",
    "time",
}
# Builtins that make a name run other code, or run a string later: what runs is not what the
# gateway sees (`alias l='rm -rf'`, `hash -p /bin/rm ls`, `trap 'rm -rf x' EXIT`, `coproc NAME {...}`).
_INDIRECT = {"alias", "function", "hash", "enable", "coproc", "bind", "complete", "fc", "trap"}
# find actions that run a command of their own (its words come from file names at run time).
_FIND_RUNS = {"-exec", "-execdir", "-ok", "-okdir"}
_ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# Variables that change which program a name runs, or load code into any program
# (`PATH=/tmp x`, `LD_PRELOAD=/tmp/x.so ls`, `BASH_ENV=x bash s`): set by an assignment, `env`
# or `export`, what runs is not what the gateway sees.
_PROGRAM_ENV = {
    "PATH",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "GCONV_PATH",
    "BASH_ENV",
    "ENV",
    "IFS",
    "PROMPT_COMMAND",
    "PS4",
    "SHELLOPTS",
    "BASHOPTS",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PERL5LIB",
    "PERL5OPT",
    "RUBYOPT",
    "NODE_OPTIONS",
    "GIT_SSH_COMMAND",
    "GIT_EXEC_PATH",
    "EDITOR",
    "VISUAL",
    "PAGER",
}
_EXPORTS = {"export", "declare", "typeset", "readonly", "local"}
# `$((...))` holding only numbers and operators is arithmetic and runs nothing (its `*` is no
# glob). Anything else in it (names, `$`, quotes, backticks) is parsed as commands, as a shell
# that falls back to a command substitution would: that fails closed.
_ARITHMETIC = re.compile(r"[\d\s+\-*/%<>=!&|^~?:,.()]*")
_MAX_DEPTH = 16


class ShellSyntaxError(ValueError):
    """The command line cannot be split safely."""


def _matching(text: str, i: int, open_: str, close: str) -> int:
    """Index of the `close` matching the `open_` at text[i], honouring quotes and nesting."""
    depth, j, n = 0, i, len(text)
    while j < n:
        c = text[j]
        if c == "\\":
            j += 2
            continue
        if c == "'":
            k = text.find("'", j + 1)
            if k < 0:
                raise ShellSyntaxError("unterminated single quote")
            j = k + 1
            continue
        if c == '"':
            j = _dquote_end(text, j)
            continue
        if c == "`":
            k = _backtick_end(text, j)
            j = k + 1
            continue
        if c == open_:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return j
        j += 1
    raise ShellSyntaxError(f"unterminated {open_!r}")


def _dquote_end(text: str, i: int) -> int:
    j = i + 1
    while j < len(text):
        c = text[j]
        if c == "\\":
            j += 2
        elif c == '"':
            return j + 1
        elif text.startswith("$(", j):
            j = _matching(text, j + 1, "(", ")") + 1
        elif c == "`":
            j = _backtick_end(text, j) + 1
        else:
            j += 1
    raise ShellSyntaxError("unterminated double quote")


def _backtick_end(text: str, i: int) -> int:
    j = i + 1
    while j < len(text):
        if text[j] == "\\":
            j += 2
        elif text[j] == "`":
            return j
        else:
            j += 1
    raise ShellSyntaxError("unterminated backtick")


def _substitutions(raw: str, depth: int) -> list[Statement]:
    """Commands run by $(...), `...` and <(...) / >(...) inside one simple command (quotes included)."""
    out: list[Statement] = []
    j, in_single = 0, False
    while j < len(raw):
        c = raw[j]
        if c == "\\" and not in_single:
            j += 2
            continue
        if c == "'":
            in_single = not in_single  # approximation: '...' inside "..." is literal either way
        elif not in_single and c == "$" and raw.startswith("((", j + 1):
            end = _matching(raw, j + 1, "(", ")")
            if raw[end - 1] == ")" and _ARITHMETIC.fullmatch(raw[j + 3 : end - 1]):
                j = end + 1  # arithmetic expansion: no command runs
                continue
            out.extend(_parse(raw[j + 2 : end], depth + 1))
            j = end + 1
            continue
        elif not in_single and c in "$<>" and raw.startswith("(", j + 1):
            end = _matching(raw, j + 1, "(", ")")
            out.extend(_parse(raw[j + 2 : end], depth + 1))
            j = end + 1
            continue
        elif not in_single and c == "`":
            end = _backtick_end(raw, j)
            out.extend(_parse(raw[j + 1 : end], depth + 1))
            j = end + 1
            continue
        j += 1
    return out


def _command(raw: str, depth: int) -> list[Statement]:
    inner = _substitutions(raw, depth)
    try:
        argv = shlex.split(raw, comments=True, posix=True)
    except ValueError as exc:
        raise ShellSyntaxError(str(exc)) from exc
    assigned = []
    while argv and (argv[0] in KEYWORDS or _ASSIGN.match(argv[0])):
        assigned += argv[:1] if _ASSIGN.match(argv[0]) else []
        argv = argv[1:]
    env = _program_env(assigned)
    if not argv:  # only assignments: they still change what later commands run
        if not env:
            return inner
        text = " ".join(assigned)
        return [
            *inner,
            Statement(
                kind="command",
                text=text,
                object=text.split("=", 1)[0] + "=",
                dynamic=True,
                argv=tuple(assigned),
                why_dynamic=env,
            ),
        ]
    # The shell removes a backslash-newline inside a word (`r\<newline>m` runs rm); shlex keeps it.
    joined = "a backslash-newline inside a word joins what the gateway sees apart" if "\\\n" in raw else ""
    return [_simple(argv, inner, depth, joined or env)]


def _program_env(words: list[str]) -> str:
    """Why assignments among `words` make what runs unknowable (empty when they do not)."""
    names = sorted({w.split("=", 1)[0] for w in words if _ASSIGN.match(w)} & _PROGRAM_ENV)
    return f"{names[0]}= changes which program a name runs or what code it loads" if names else ""


def _unknown_program(word: str, rest: list[str]) -> str:
    """Why the program the shell will run cannot be known from `word` (empty when it can)."""
    if "$" in word or "`" in word:
        return "the program name is expanded by the shell (a substitution or variable)"
    if "{" in word:
        return "brace expansion in the program name"
    if any(c in word for c in "?*["):
        return "a glob in the program name"
    prog = os.path.basename(word) or word
    if prog in (".", "source"):
        return f"`{prog}` runs a script the gateway cannot see"
    if prog in _INDIRECT:
        return f"`{prog}` makes a name run code the gateway cannot follow"
    if prog == "find" and any(w in _FIND_RUNS for w in rest):
        return "find -exec/-execdir/-ok runs commands built from file names the gateway cannot see"
    if prog in _EXPORTS or prog == "env":
        return _program_env(rest)
    return ""


def _simple(argv: list[str], inner: list[Statement], depth: int, why: str = "") -> Statement:
    prog = os.path.basename(argv[0]) or argv[0]
    rest = argv[1:]
    why = why or _unknown_program(argv[0], rest)
    if prog in SHELLS or prog in INTERPRETERS:
        flag = next((k for k, a in enumerate(rest) if re.fullmatch(r"-[a-zA-Z]*[ce][a-zA-Z]*", a)), None)
        if prog in SHELLS and flag is not None and flag + 1 < len(rest):
            inner = inner + _parse(rest[flag + 1], depth + 1)
        else:  # a script from a file, stdin or another language: effect unknown
            why = why or f"{prog} runs code the gateway cannot see"
    elif prog == "eval" and rest:
        inner = inner + _parse(" ".join(rest), depth + 1)
    elif prog == "su" and "-c" in rest[:-1]:
        inner = inner + _parse(rest[rest.index("-c") + 1], depth + 1)
    elif prog in WRAPPERS and rest:
        k, arg_opts = 0, _WRAPPER_ARG_OPTS.get(prog, "")
        while k < len(rest) and (
            rest[k].startswith("-") or _ASSIGN.match(rest[k]) or (prog == "timeout" and rest[k][:1].isdigit())
        ):
            opt = rest[k]
            takes_arg = (len(opt) == 2 and opt[1] in arg_opts) or opt[2:] in _LONG_ARG_OPTS
            k += 2 if takes_arg else 1
        if k < len(rest):
            inner = inner + [_simple(rest[k:], [], depth + 1)]
    text = " ".join([prog, *rest])
    return Statement(
        kind="command",
        text=text,
        object=prog,
        dynamic=bool(why),
        inner=tuple(inner),
        argv=tuple(argv),
        why_dynamic=why,
    )


def _parse(text: str, depth: int) -> list[Statement]:
    if depth > _MAX_DEPTH:
        raise ShellSyntaxError("command nesting too deep")
    out: list[Statement] = []
    start, j, n = 0, 0, len(text)
    at_start = True  # no word yet in the current simple command

    def flush(end: int) -> None:
        out.extend(_command(text[start:end], depth))

    while j < n:
        c = text[j]
        if c == "\\":
            j += 2
            at_start = False
            continue
        if c == "'":
            k = text.find("'", j + 1)
            if k < 0:
                raise ShellSyntaxError("unterminated single quote")
            j, at_start = k + 1, False
            continue
        if c == '"':
            j, at_start = _dquote_end(text, j), False
            continue
        if c == "`":
            j, at_start = _backtick_end(text, j) + 1, False
            continue
        if c in "$<>" and text.startswith("(", j + 1):
            j, at_start = _matching(text, j + 1, "(", ")") + 1, False
            continue
        if c == "#" and (j == 0 or text[j - 1].isspace()):
            k = text.find("\n", j)
            j = n if k < 0 else k
            continue
        if c == "(" and at_start:  # subshell
            end = _matching(text, j, "(", ")")
            out.extend(_parse(text[j + 1 : end], depth + 1))
            j = start = end + 1
            continue
        if c == "&" and ((j > 0 and text[j - 1] in "<>") or text.startswith(">", j + 1)):
            j += 1  # 2>&1, &> file: a redirection, not a separator
            continue
        if c in ";&|\n":
            flush(j)
            j += 1
            while j < n and text[j] in "&|":
                j += 1
            start, at_start = j, True
            continue
        if c == ")":
            raise ShellSyntaxError("unbalanced ')'")
        if not c.isspace():
            at_start = False
        j += 1
    flush(n)
    return out


def classify_shell(command_line: str) -> Classification:
    """Split an SSH exec command line into simple commands; an unparseable line sets `error`."""
    try:
        return Classification(tuple(_parse(command_line, 0)), dialect="shell")
    except ShellSyntaxError as exc:
        return Classification((), f"shell syntax error: {exc}", dialect="shell")
