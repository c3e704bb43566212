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
    "kill": {"-KILL": "-9", "-SIGKILL": "-9"},
}

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


def _split(program: str, words: tuple[str, ...] | list[str]) -> tuple[frozenset[str], tuple[str, ...]]:
    flags: set[str] = set()
    args: list[str] = []
    options_end = False
    for w in words:
        if not options_end and w == "--":
            options_end = True
        elif not options_end and len(w) > 1 and w.startswith("-"):
            flags |= _flags(program, w)
        else:
            args.append(w)
    return frozenset(flags), tuple(args)


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
