"""How a step or run state is shown: a glyph, a word and a theme colour.

The word is always there, so the state reads the same with 16 colours or NO_COLOR.
"""

from __future__ import annotations

from textual.content import Content

from gpuwizard import glyphs

# state -> theme variable; the glyphs are the CLI's too (gpuwizard.glyphs)
_COLOUR = {
    "done": "$success",
    "finished": "$success",
    "pending": "$primary",
    "running": "$accent",
    "in-progress": "$accent",
    "blocked": "$warning",
    "failed": "$error",
    "interrupted": "$warning",
    "awaiting-confirmation": "$warning",
    "skipped": "$foreground-muted",
    "rolled-back": "$secondary",
    "auto-reverted": "$warning",
    "refused": "$error",
    "planning": "$foreground-muted",
}


def glyph(state: str) -> str:
    return glyphs.glyph(state)


def badge(state: str, *, width: int = 0) -> Content:
    """`✓ done` in the state's colour, padded to `width` cells."""
    mark, colour = glyph(state), _COLOUR.get(state, "$foreground")
    word = state.ljust(max(0, width - 2))
    if not colour:
        return Content(f"{mark} {word}")
    return Content.from_markup(f"[{colour}]$mark $word[/]", mark=mark, word=word)
