"""A step's facts as `key  value` rows whose long values wrap under themselves, not under
the key: at 80 columns an engine's runtimes or a path spill onto a second line, and a
continuation that starts at column 0 reads as a new key."""

from __future__ import annotations

import textwrap
from typing import Any, Sequence

from textual.content import Content
from textual.geometry import Size
from textual.widget import Widget


class FactList(Widget):
    """`set_facts([(key, value), …])`; each value wraps in the room right of the keys."""

    DEFAULT_CSS = "FactList { height: auto; }"

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._facts: list[tuple[str, str]] = []
        self._empty = "nothing recorded"

    def set_facts(self, facts: Sequence[tuple[str, str]]) -> None:
        self._facts = [(str(k), str(v)) for k, v in facts]
        self.refresh(layout=True)

    def lines(self, width: int) -> list[Content]:
        if not self._facts:
            return [Content.styled(self._empty, "$foreground-muted")]
        key_width = max(len(k) for k, _ in self._facts)
        room = max(10, width - key_width - 1)
        out: list[Content] = []
        for key, value in self._facts:
            parts = textwrap.wrap(value, room, break_on_hyphens=False) or [""]
            out.append(
                Content.from_markup(
                    "[$foreground-muted]$k[/] $v", k=key.ljust(key_width), v=parts[0]
                )
            )
            out.extend(Content(" " * (key_width + 1) + part) for part in parts[1:])
        return out

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self.lines(width))

    def render(self) -> Content:
        return Content("\n").join(self.lines(self.size.width or 80))
