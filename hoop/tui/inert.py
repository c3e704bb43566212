"""Text from users and servers as Rich `Text` the console shows literally.

Strings handed to Textual widgets are read as markup (`[bold]`, `[/]`, `[@click=app.quit]`,
`[link=...]`): a statement or a user name could restyle the console, run an action or crash
it. Everything the console shows that came from a user, a server or a recording goes through
`inert()` (or a widget of hoop.tui.widgets.plain, which does it for strings): markup is never
parsed, and control characters are written as visible escapes (hoop.core.visible) in reverse
video, so an escape is told apart from the same characters typed.
"""

from __future__ import annotations

from rich.syntax import Syntax
from rich.text import Text

from hoop.core.visible import pieces

ESCAPE_STYLE = "reverse"
TAB_SIZE = 4


def inert(value: object, *, multiline: bool = False, style: str = "") -> Text:
    """`value` shown literally, its escapes marked; one line unless `multiline`. `style` is a
    span over the whole text, so it is kept when the text is appended to another."""
    text = Text(end="")
    for piece, escaped in pieces(str(value), multiline=multiline):
        text.append(piece, ESCAPE_STYLE if escaped else None)
    if style:
        text.stylize_before(style)
    return text


def inert_code(code: str, lexer: str) -> Text:
    """A statement or command, highlighted by `lexer`, shown literally with its escapes marked."""
    shown: list[str] = []
    escapes: list[tuple[int, int]] = []
    at = column = 0
    for piece, escaped in pieces(code, multiline=True):
        if escaped:
            escapes.append((at, at + len(piece)))
        elif "\t" in piece:  # expanded here, so the escapes' places stay where they are
            piece = (" " * column + piece).expandtabs(TAB_SIZE)[column:]
        shown.append(piece)
        at += len(piece)
        newline = piece.rfind("\n")
        column = column + len(piece) if newline < 0 else len(piece) - newline - 1
    plain = "".join(shown)
    syntax = Syntax(plain, lexer, theme="ansi_dark", word_wrap=True, background_color="default", tab_size=TAB_SIZE)
    text = syntax.highlight(plain)
    for start, end in escapes:
        text.stylize(ESCAPE_STYLE, start, end)
    text.rstrip()
    return text
