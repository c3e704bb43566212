"""Text from the wire that may not be text: kept losslessly, stored readably.

A door that cannot read a statement (or a user name) as UTF-8 still records it, decoded with
`from_wire` (undecodable bytes become lone surrogates, so nothing is dropped). Neither SQLite,
JSON nor a hash takes lone surrogates, so before anything is stored the journal writer turns
such text into `storable` text, where each undecodable byte (and NUL) reads `\\xNN`, and keeps the exact
bytes (`exact_bytes`) beside it: `statements.text_bytes`, or an audit event's
`detail["undecodable"]` (field name -> hex). Valid text passes through untouched and cheaply.
"""

from __future__ import annotations

from typing import Any


def from_wire(raw: bytes) -> str:
    """Bytes a client sent, as text; bytes that are not UTF-8 survive as lone surrogates."""
    return raw.decode("utf-8", "surrogateescape")


def is_storable(text: str) -> bool:
    if "\x00" in text:  # PostgreSQL's text holds no NUL: escaped alike on every store
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def exact_bytes(text: str) -> bytes:
    """The bytes `text` came from (lone surrogates outside the escape range as UTF-8 would
    carry them, so no text is refused)."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def storable(text: str) -> str:
    """`text` where it is valid; otherwise its bytes with each undecodable one as `\\xNN`."""
    if is_storable(text):
        return text
    return exact_bytes(text).decode("utf-8", "backslashreplace").replace("\x00", "\\x00")


def storable_tree(value: Any) -> tuple[Any, bool]:
    """`value` (JSON-like: dicts, lists, strings, scalars) with every string made storable;
    the flag says whether anything changed."""
    if isinstance(value, str):
        fixed = storable(value)
        return fixed, fixed is not value
    if isinstance(value, dict):
        changed = False
        out = {}
        for k, v in value.items():
            key, key_changed = storable_tree(k) if isinstance(k, str) else (k, False)
            out[key], v_changed = storable_tree(v)
            changed = changed or key_changed or v_changed
        return (out, True) if changed else (value, False)
    if isinstance(value, (list, tuple)):
        items = [storable_tree(v) for v in value]
        if any(c for _, c in items):
            return [v for v, _ in items], True
        return value, False
    return value, False
