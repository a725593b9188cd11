"""The app on the Linux console: every rendered line through `glyphs.to_console`.

Screens and widgets keep drawing what they draw anywhere (Textual's rounded borders, its
footer, scroll bars and key symbols included); a line filter, applied where Textual applies
NO_COLOR's, swaps each character the console's font lacks for one it has. Styles stay, and
every segment keeps its cell length, so the layout is the one Textual computed.
"""

from __future__ import annotations

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from textual.color import Color
from textual.filter import LineFilter

from gpuwizard.glyphs import to_console

# the keys Textual draws as symbols (textual.keys.KEY_DISPLAY_ALIASES), as words instead
KEY_NAMES = {"⏎": "enter", "↑": "up", "↓": "down", "←": "left", "→": "right", "⌫": "backspace"}


def console_text(text: str) -> str:
    """`to_console`, held to the cell length Textual measured (rich's, graphemes and all)."""
    mapped = to_console(text)
    if mapped == text:
        return text
    width = cell_len(text)
    return mapped if cell_len(mapped) == width else set_cell_size(mapped, width)


def console_segment(segment: Segment) -> Segment:
    if segment.control or segment.text.isascii():
        return segment
    text = console_text(segment.text)
    return segment if text == segment.text else Segment(text, segment.style, segment.control)


class ConsoleGlyphs(LineFilter):
    """Only the characters change: no style, no segment's width."""

    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        return [console_segment(segment) for segment in segments]


def key_display(shown: str) -> str:
    """A key as Textual shows it (`⏎`, `^↑`), with words for its symbols (`enter`, `^up`)."""
    for symbol, name in KEY_NAMES.items():
        shown = shown.replace(symbol, name)
    return shown
