"""One glyph per step or run state, for the CLI and the app alike, and its ASCII twin.

The word is always printed next to the glyph, so a state reads the same without colour. The
Linux console (TERM=linux) has no ✓ ○ ▶ ↺ in its font: there, and with GPUWIZARD_ASCII=1,
the ASCII set is used instead.
"""

from __future__ import annotations

import os
from typing import Mapping, Optional

UNICODE: dict[str, str] = {
    "done": "✓",
    "finished": "✓",
    "pending": "○",
    "running": "▶",
    "in-progress": "▶",
    "blocked": "!",
    "failed": "✗",
    "refused": "✗",
    "interrupted": "!",
    "awaiting-confirmation": "?",
    "skipped": "–",
    "rolled-back": "↺",
    "auto-reverted": "↺",
    "planning": "…",
}
ASCII: dict[str, str] = {
    "done": "+",
    "finished": "+",
    "pending": "o",
    "running": ">",
    "in-progress": ">",
    "blocked": "!",
    "failed": "x",
    "refused": "x",
    "interrupted": "!",
    "awaiting-confirmation": "?",
    "skipped": "-",
    "rolled-back": "<",
    "auto-reverted": "<",
    "planning": ".",
}
UNKNOWN = {"unicode": "·", "ascii": "."}
# the marker of the current step / the focused row, so it shows without a background shade
POINTER = {"unicode": "▸", "ascii": ">"}


def ascii_only(env: Optional[Mapping[str, str]] = None) -> bool:
    """True on the Linux console (its font lacks the symbols) or when asked for."""
    env = os.environ if env is None else env
    return env.get("TERM") == "linux" or env.get("GPUWIZARD_ASCII", "") not in ("", "0")


def glyph(state: str, ascii: Optional[bool] = None) -> str:
    use_ascii = ascii_only() if ascii is None else ascii
    table = ASCII if use_ascii else UNICODE
    return table.get(state, UNKNOWN["ascii" if use_ascii else "unicode"])


def pointer(ascii: Optional[bool] = None) -> str:
    return POINTER["ascii" if (ascii_only() if ascii is None else ascii) else "unicode"]
