"""One quiet line at the top: what this is, on which host, and a loud label in demo mode."""

from __future__ import annotations

from typing import Any

from textual.content import Content
from textual.widgets import Static

DEMO_LABEL = "DEMO — nothing on this machine is changed"
SHORT_DEMO_LABEL = "DEMO — nothing changes"  # where the long one would be cut (80 columns)


class TitleBar(Static):
    """`gpuwizard · <screen> · <host>`; no clock, nothing that ticks. The demo label
    shortens rather than be cut off at the right edge."""

    def __init__(self, title: str, host_label: str, demo: bool, read_only: bool, **kw: Any) -> None:
        self._title = title
        self._host_label = host_label
        self._demo = demo
        self._read_only = read_only
        super().__init__(self._line(DEMO_LABEL), **kw)

    def _line(self, demo_label: str) -> Content:
        parts = [Content.styled("gpuwizard", "bold"), Content(f" · {self._title}")]
        if self._host_label and not self._demo:
            parts.append(Content.styled(f" · {self._host_label}", "$foreground-muted"))
        if self._demo:
            parts.append(Content("  "))
            parts.append(Content.styled(f" {demo_label} ", "bold reverse $warning"))
        elif self._read_only:
            parts.append(Content("  "))
            parts.append(Content.styled(" read-only ", "bold reverse $warning"))
        return Content("").join(parts)

    def retitle(self, title: str, host_label: str, demo: bool, read_only: bool) -> None:
        self._title, self._host_label = title, host_label
        self._demo, self._read_only = demo, read_only
        self.on_resize()

    def on_resize(self) -> None:
        room = self.content_region.width or self.size.width
        line = self._line(DEMO_LABEL)
        if room and line.cell_length > room:
            line = self._line(SHORT_DEMO_LABEL)
            if line.cell_length > room:
                line = self._line("DEMO")
        self.update(line)
