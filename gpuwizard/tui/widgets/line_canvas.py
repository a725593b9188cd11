"""A widget that draws a list of lines and repaints only the cells that changed.

Over SSH every byte counts: a 1 Hz panel that repainted itself whole would send a few KiB a
second. This widget compares the new lines with the old, cell by cell, and asks Textual to
repaint only the changed span of each changed line.
"""

from __future__ import annotations

from typing import Any, Sequence

from rich.segment import Segment
from textual.content import Content
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widget import Widget


class LineCanvas(Widget):
    """Lines of `Content`; `set_lines()` repaints only what differs from the last call."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._lines: list[Content] = []
        self._cells: list[list[tuple[str, str]]] = []

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return max(1, len(self._lines))

    @staticmethod
    def _cells_of(line: Content) -> list[tuple[str, str]]:
        styles = [""] * len(line.plain)
        for span in line.spans:
            for i in range(span.start, min(span.end, len(styles))):
                styles[i] += f"|{span.style}"
        return list(zip(line.plain, styles))

    def set_lines(self, lines: Sequence[Content]) -> None:
        new_cells = [self._cells_of(line) for line in lines]
        if len(lines) != len(self._lines):
            self._lines, self._cells = list(lines), new_cells
            self.refresh(layout=True)
            return
        width = self.size.width
        regions = []
        for y, (old, new) in enumerate(zip(self._cells, new_cells)):
            if old == new:
                continue
            span = max(len(old), len(new))
            first = next(
                i for i in range(span) if i >= len(old) or i >= len(new) or old[i] != new[i]
            )
            last = next(
                i
                for i in range(span - 1, -1, -1)
                if i >= len(old) or i >= len(new) or old[i] != new[i]
            )
            # wide glyphs and styles that bleed are rare here; one cell of margin is cheap
            x0 = max(0, first - 1)
            x1 = min(width, last + 2)
            if x1 > x0:
                regions.append(Region(x0, y, x1 - x0, 1))
        self._lines, self._cells = list(lines), new_cells
        if regions:
            self.refresh(*regions)

    @property
    def plain_lines(self) -> list[str]:
        return [line.plain for line in self._lines]

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style
        if y >= len(self._lines):
            return Strip([Segment(" " * width, base)], width)
        line = self._lines[y]
        segments = [
            Segment(text, style.rich_style)
            for text, style in line.render(self.visual_style, end="", parse_style=self._get_style)
        ]
        return Strip(segments).adjust_cell_length(width, base)
