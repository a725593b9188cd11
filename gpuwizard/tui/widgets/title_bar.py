"""One quiet line at the top: what this is, on which host, and a loud label in demo mode."""

from __future__ import annotations

from typing import Any

from textual.content import Content
from textual.widgets import Static

DEMO_LABEL = "DEMO — nothing on this machine is changed"


class TitleBar(Static):
    """`gpuwizard · <screen> · <host>`; no clock, nothing that ticks."""

    def __init__(self, title: str, host_label: str, demo: bool, read_only: bool, **kw: Any) -> None:
        parts = [Content.styled("gpuwizard", "bold"), Content(f" · {title}")]
        if host_label and not demo:
            parts.append(Content.styled(f" · {host_label}", "$foreground-muted"))
        if demo:
            parts.append(Content("  "))
            parts.append(Content.styled(f" {DEMO_LABEL} ", "bold reverse $warning"))
        elif read_only:
            parts.append(Content("  "))
            parts.append(Content.styled(" read-only ", "bold reverse $warning"))
        super().__init__(Content("").join(parts), **kw)
