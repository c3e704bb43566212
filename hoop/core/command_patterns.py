"""SSH command-rule patterns, matched on a command's argv rather than on its text.

A pattern such as ``"rm -rf *"`` is split like a command line: the program (matched by its
basename, whatever the path, as a glob), its flags as a set, and the remaining words as argument
globs that must match, in order, some of the command's arguments (a lone trailing ``*`` allows
any arguments, none included). Short clusters are expanded (``-rf`` is ``-r -f``) and a small
alias table maps common long forms and synonyms onto one spelling, so ``rm -fr``, ``rm -r -f``
and ``rm --recursive --force`` all have the flags of ``rm -rf``.

A word the shell would still expand (``$VAR``, a substitution, a glob or a brace in a flag) can
turn into flags or arguments the gateway never sees: when the program matches but the known
words alone do not, the match is unknown (None) and the rule's `dynamic` mode decides.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import signal
from dataclasses import dataclass, field

# Spellings of the same option, per program: each maps onto the short form the table is keyed
# by. Kept to options whose meaning is destructive or commonly ruled on; extend with care.
ALIASES: dict[str, dict[str, str]] = {
    "rm": {"-R": "-r", "--recursive": "-r", "--force": "-f", "--dir": "-d"},
    "cp": {"-R": "-r", "--recursive": "-r", "--force": "-f"},
    "mv": {"--force": "-f"},
    "ln": {"--force": "-f", "--symbolic": "-s"},
    "chmod": {"--recursive": "-R"},
    "chown": {"--recursive": "-R"},
    "chgrp": {"--recursive": "-R"},
    "git": {"--force": "-f"},
}
# Programs that send signals, and their options that name the signal in the next word: every
# spelling of a signal (`-KILL`, `-SIGKILL`, `-s KILL`, `-n 9`, `--signal=kill`) is the flag
# `-<number>`, so `"kill -9 *"` matches them all.
_SIGNAL_OPTIONS = {"kill": ("-s", "-n", "--signal"), "pkill": ("--signal",), "killall": ("-s", "--signal")}

_UNEXPANDED = re.compile(r"[$`]")  # parameter or command substitution
_GLOB = re.compile(r"[?*\[]")
_BRACE = re.compile(r"\{[^{}]*(,|\.\.)[^{}]*\}")


def _flags(program: str, word: str) -> set[str]:
    aliases = ALIASES.get(program, {})
    if word.startswith("--"):
        name = word.split("=", 1)[0]
        if name in aliases:
            return {aliases[name]}
        # getopt_long takes any unambiguous prefix (`rm --rec --for`): count every long form it
        # could stand for.
        prefixed = {short for long, short in aliases.items() if long.startswith(name) and len(name) > 2}
        return prefixed | {name}
    if word in aliases:  # a whole-word synonym such as kill -KILL
        return {aliases[word]}
    return {aliases.get("-" + c, "-" + c) for c in word[1:]}


def _signal(name: str) -> str | None:
    """A signal's number from any spelling (`9`, `KILL`, `sigkill`); None if it is none."""
    bare = name.upper().removeprefix("SIG")
    if bare.isdigit():
        return str(int(bare))
    try:
        return str(signal.Signals["SIG" + bare].value)
    except KeyError:
        return None


def _split(program: str, words: tuple[str, ...] | list[str]) -> tuple[frozenset[str], tuple[str, ...]]:
    flags: set[str] = set()
    args: list[str] = []
    options_end = False
    signal_options = _SIGNAL_OPTIONS.get(program, ())
    k = 0
    while k < len(words):
        w = words[k]
        k += 1
        if not options_end and w == "--":
            options_end = True
        elif not options_end and len(w) > 1 and w.startswith("-"):
            if signal_options and (named := _signal_word(w, words[k] if k < len(words) else "", signal_options)):
                number, used_next = named
                flags.add(f"-{number}")
                k += used_next
            else:
                flags |= _flags(program, w)
        else:
            args.append(w)
    return frozenset(flags), tuple(args)


def _signal_word(word: str, after: str, options: tuple[str, ...]) -> tuple[str, int] | None:
    """The signal `word` (with the word `after` it) names, and whether it used that next word."""
    if word in options:
        number = _signal(after)
        return (number or after, 1) if after else None
    if word.startswith("--signal="):
        value = word.split("=", 1)[1]
        return _signal(value) or value, 0
    if "-s" in options and word.startswith("-s") and len(word) > 2 and (number := _signal(word[2:])):
        return number, 0
    number = _signal(word[1:])
    return (number, 0) if number is not None else None


def unexpanded(word: str, *, flag_position: bool = True) -> bool:
    """A word the shell would still rewrite into something else (so its real value is unknown)."""
    if _UNEXPANDED.search(word) or _BRACE.search(word):
        return True
    return flag_position and word.startswith("-") and not word.startswith("--") and bool(_GLOB.search(word))


@dataclass(frozen=True, slots=True)
class CommandPattern:
    program: str
    flags: frozenset[str]
    args: tuple[str, ...]
    program_re: re.Pattern[str] = field(compare=False, default=re.compile(""))

    @classmethod
    def parse(cls, pattern: str) -> CommandPattern:
        try:
            words = shlex.split(pattern, posix=True) or [""]
        except ValueError:  # an unbalanced quote: the words as written (a rule must never fail to load)
            words = pattern.split() or [""]
        program = os.path.basename(words[0]) or words[0]
        rest = words[1:]
        if rest and rest[-1] == "*":
            rest = rest[:-1]
        flags, args = _split(program, rest)
        return cls(program, flags, args, re.compile(fnmatch.translate(program)))

    def matches(self, program: str, argv: tuple[str, ...]) -> bool | None:
        """Whether the command `argv`, whose program's basename is `program`, matches: True,
        False, or None when only words the shell still expands could make it match."""
        if not argv or not self.program_re.fullmatch(program):
            return False
        if not self.flags and not self.args:
            return True
        known = [w for w in argv[1:] if not unexpanded(w)]
        flags, args = _split(program, known)
        if self.flags <= flags and _in_order(self.args, args):
            return True
        return None if len(known) < len(argv) - 1 else False


def _in_order(globs: tuple[str, ...], args: tuple[str, ...]) -> bool:
    k = 0
    for a in args:
        if k < len(globs) and fnmatch.fnmatchcase(a, globs[k]):
            k += 1
    return k == len(globs)
