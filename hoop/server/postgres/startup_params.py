"""Which client startup parameters reach the server: an allow-list of harmless settings.

A startup packet can set any server parameter a session may set, before the first statement
the policy sees: `options=-c session_preload_libraries=...` loads a library, `-c log_statement=
none` hides the session from the server's log. So only settings that shape how results look
or how long things may take pass; anything else is refused at login, naming the parameter.
`options` is read the way the server reads it (words split on unescaped spaces, `-c name=value`
or `--name=value` pairs) and each setting in it goes through the same list.
"""

from __future__ import annotations

# Parameter names are case-insensitive to the server; they are compared lower-cased.
ALLOWED = frozenset(
    {
        "application_name",
        "client_encoding",  # read back from the server's report; text is decoded with it
        "standard_conforming_strings",  # likewise; the parser follows the reported value
        "datestyle",
        "intervalstyle",
        "timezone",
        "extra_float_digits",
        "search_path",
        "bytea_output",
        "client_min_messages",
        "lc_messages",
        "lc_monetary",
        "lc_numeric",
        "lc_time",
        "default_transaction_isolation",
        "default_transaction_read_only",
        "default_transaction_deferrable",
        "statement_timeout",
        "lock_timeout",
        "idle_in_transaction_session_timeout",
        "idle_session_timeout",
        "geqo",
        "jit",
        "timezone_abbreviations",
        "xmlbinary",
        "xmloption",
        "row_security",
    }
)


class StartupParameterRefused(ValueError):
    pass


def filter_startup(params: dict[str, str]) -> dict[str, str]:
    """The parameters to send upstream; StartupParameterRefused names the first one refused.

    standard_conforming_strings is always sent: a value from the startup packet outranks the
    server's configuration file, so `ALTER SYSTEM` plus a reload cannot switch the string mode
    of a live session under the gateway (the server would report the change only after the
    next statement had already been read under it)."""
    out: dict[str, str] = {}
    named: set[str] = set()
    for name, value in params.items():
        if name == "options":
            for setting, _ in _options(value):
                named.add(_check(setting, "options"))
            out[name] = value
            continue
        named.add(_check(name, "startup parameter"))
        out[name] = value
    if "standard_conforming_strings" not in named:
        out["standard_conforming_strings"] = "on"
    return out


def _check(name: str, where: str) -> str:
    """The parameter's canonical name, or StartupParameterRefused."""
    canonical = name.lower().replace("-", "_")
    if canonical not in ALLOWED:
        raise StartupParameterRefused(
            f"{where} {name!r} is not allowed through Hoop (allowed: {', '.join(sorted(ALLOWED))})"
        )
    return canonical


def _options(value: str) -> list[tuple[str, str]]:
    """The settings in an `options` value, as the server splits it (backslash escapes a space)."""
    words: list[str] = []
    word: list[str] = []
    escaped = False
    for ch in value:
        if escaped:
            word.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch.isspace():
            if word:
                words.append("".join(word))
                word = []
        else:
            word.append(ch)
    if escaped:
        word.append("\\")
    if word:
        words.append("".join(word))
    settings: list[tuple[str, str]] = []
    i = 0
    while i < len(words):
        w = words[i]
        if w == "-c" and i + 1 < len(words):
            pair, i = words[i + 1], i + 2
        elif w.startswith("-c") and len(w) > 2:
            pair, i = w[2:], i + 1
        elif w.startswith("--") and "=" in w:
            pair, i = w[2:], i + 1
        else:
            raise StartupParameterRefused(
                f"options word {w!r} is not allowed through Hoop (only -c name=value and --name=value settings)"
            )
        name, eq, setting = pair.partition("=")
        if not eq or not name:
            raise StartupParameterRefused(f"options setting {pair!r} is not of the form name=value")
        settings.append((name, setting))
    return settings
