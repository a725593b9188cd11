"""One glyph per step or run state, for the CLI and the app alike, and its ASCII twin.

The word is always printed next to the glyph, so a state reads the same without colour. The
Linux console (TERM=linux) has no ✓ ○ ▶ ↺ in its font: there, and with GPUWIZARD_ASCII=1,
the ASCII set is used instead.

The rest of what gpuwizard prints (separators, dashes, arrows, Textual's rounded corners and
partial blocks) goes through `to_console` there: CONSOLE_SAFE is what that font can show,
CONSOLE a replacement of the same width for everything else it prints. The app applies it to
every rendered line (gpuwizard.tui.console), the CLI to what it writes to a terminal
(`console_output`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import unicodedata
from typing import Any, Iterator, Mapping, Optional, TextIO, cast

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


# -- the Linux console ------------------------------------------------------------------------
# What the console's font shows: ASCII and code page 437's graphics block (0xB0-0xDF: shades,
# single, double and mixed box drawing, half blocks) plus ■ (0xFE). The kernel's built-in VGA
# font and its default unicode map hold exactly these, and so do the Latin console fonts that
# distributions load (Lat2-Terminus16, eurlatgr); serial consoles behind a BMC that draw lines
# draw these. cp437's letters and symbols (é, ·, °, ±) are left out: the Latin fonts lack some,
# many serial consoles all.
CONSOLE_SAFE: frozenset[str] = frozenset(
    [chr(c) for c in range(0x80)] + list(bytes(range(0xB0, 0xE0)).decode("cp437")) + ["■"]
)


def _pairs(table: str) -> dict[str, str]:
    """ "·. —-" -> {"·": ".", "—": "-"}: each word a character and its one-cell stand-in."""
    return {word[0]: word[1] for word in table.split()}


# Every other character gpuwizard (or Textual, for it) prints, and its stand-in: always the
# same number of cells (a wide character gets two), so no line of the app moves.
CONSOLE: dict[str, str] = {
    # separators, dashes, ellipses, quotes
    **_pairs("·. •* ∙. ‧. …. ⋯. ‥. —- –- ‒- ―- ‐- ‑- −- ⁃-"),
    **_pairs('“" ”" „" ‟" «" »" ″" ‘\' ’\' ‚\' ‛\' ′\' ´\''),
    # symbols in free text
    **_pairs("×x ≥> ≤< ≠# ≈~ ±+ µu μu ©c ®r ™t ¬- ¦| §S ¶P"),
    # the state glyphs (glyphs.ASCII's twins) and Textual's markers
    **_pairs("✓+ ✔+ ✗x ✘x ○o ◦o ◯o ⭘o ●* ◉* ◆* ◇o ◊o ▪■ ▫o ‣>"),
    **_pairs("▶> ►> ▸> ▹> ◀< ◄< ◂< ◃< ▲^ ▴^ △^ ▼v ▾v ▽v ↺< ⟲< ↻> ⟳>"),
    # arrows, and the keys Textual draws as symbols
    **_pairs("→> ←< ↑^ ↓v ↔- ↕| ⇒> ⇐< ⇑^ ⇓v ⇔- ⟶> ⟵< ⏎< ↵< ⌫< ⇥>"),
    # Textual's borders: heavy, dashed, rounded and half lines become single ones
    **_pairs("━─ ┃│ ┄─ ┅─ ┈─ ┉─ ╌─ ╍─ ┆│ ┇│ ┊│ ┋│ ╎│ ╏│ ╭┌ ╮┐ ╯┘ ╰└ ╱/ ╲\\ ╳X"),
    **_pairs("╴─ ╶─ ╸─ ╺─ ╼─ ╾─ ╵│ ╷│ ╹│ ╻│ ╽│ ╿│ ┍┌ ┎┌ ┏┌ ┑┐ ┒┐ ┓┐ ┕└ ┖└ ┗└ ┙┘ ┚┘ ┛┘"),
    **_pairs("┝├ ┞├ ┟├ ┠├ ┡├ ┢├ ┣├ ┥┤ ┦┤ ┧┤ ┨┤ ┩┤ ┪┤ ┫┤ ┭┬ ┮┬ ┯┬ ┰┬ ┱┬ ┲┬ ┳┬"),
    **_pairs("┵┴ ┶┴ ┷┴ ┸┴ ┹┴ ┺┴ ┻┴ ┽┼ ┾┼ ┿┼ ╀┼ ╁┼ ╂┼ ╃┼ ╄┼ ╅┼ ╆┼ ╇┼ ╈┼ ╉┼ ╊┼ ╋┼"),
    # partial blocks (scroll bars, tall borders, the footer's separator, sparklines): the
    # nearest whole or half block, or a line where an eighth of a cell is one
    **_pairs("▁_ ▂_ ▃▄ ▅▄ ▆█ ▇█ ▔▀ ▏| ▎| ▍▌ ▋▌ ▊▌ ▉█ ▕|"),
    **_pairs("▖▄ ▗▄ ▘▀ ▝▀ ▙█ ▛█ ▜█ ▟█ ▚▒ ▞▒"),
    # spaces of another width than one cell's are still one cell in a terminal
    **{space: " " for space in "\u00a0\u2002\u2003\u2007\u2009\u200a\u202f"},
    "\u00ad": "-",  # a soft hyphen: Textual gives it a cell
    "°": " ",  # 58°C -> 58 C
    "🔎": "> ",  # Textual's command palette; two cells
}


def _cells(ch: str) -> int:
    """The cells one character takes, counted as Textual's layout counts them (rich's table)."""
    try:
        from rich.cells import get_character_cell_size
    except ImportError:  # rich comes with textual; without it, Unicode's own widths
        if unicodedata.category(ch) in ("Mn", "Me", "Cf", "Cc"):
            return 0
        return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return int(get_character_cell_size(ch))


@functools.lru_cache(maxsize=4096)
def _console_char(ch: str) -> str:
    """One character's console stand-in: the table's, else its letter without the accent
    (é -> e), else `?` a cell (what the console itself would show); nothing for a mark that
    takes no cell (a combining accent, a joiner)."""
    if ch in CONSOLE_SAFE:
        return ch
    mapped = CONSOLE.get(ch)
    if mapped is not None:
        return mapped
    cells = _cells(ch)
    base = [c for c in unicodedata.normalize("NFKD", ch) if c.isascii() and c.isprintable()]
    if cells == 1 and len(base) == 1:
        return base[0]
    return "?" * cells


def to_console(text: str) -> str:
    """`text` as the Linux console can show it, each character in as many cells as before."""
    if text.isascii():
        return text
    return "".join(map(_console_char, text))


class ConsoleStream:
    """A terminal's text stream whose writes go through `to_console`; the rest is the stream's."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(to_console(text))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, OSError, ValueError):  # no isatty, or a closed stream
        return False


@contextlib.contextmanager
def console_output(env: Optional[Mapping[str, str]] = None) -> Iterator[None]:
    """On the Linux console, what the CLI prints to the terminal goes through `to_console`.

    One place for every print of every command, so none needs its own ASCII variant. Only a
    terminal's stream is wrapped: a file or a pipe (an exported script, JSON, `> plan.txt`)
    gets the same bytes as anywhere else.
    """
    if not ascii_only(env):
        yield
        return
    saved = sys.stdout, sys.stderr
    wrapped = [
        cast(TextIO, ConsoleStream(s))
        if _is_terminal(s) and not isinstance(s, ConsoleStream)
        else s
        for s in saved
    ]
    sys.stdout, sys.stderr = wrapped
    try:
        yield
    finally:
        # put back only what is still ours (something inside may have redirected it)
        if sys.stdout is wrapped[0]:
            sys.stdout = saved[0]
        if sys.stderr is wrapped[1]:
            sys.stderr = saved[1]
