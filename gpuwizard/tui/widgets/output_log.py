"""Command output: a bounded `Log`, ANSI stripped, written in batches.

Lines arrive one at a time from the worker's events; writing each at once would redraw the
log for every line of apt output. They are buffered and flushed ten times a second instead.
"""

from __future__ import annotations

import re
from typing import Any

from textual.widgets import Log

# CSI sequences, OSC sequences and lone escapes; carriage returns keep the last overwrite
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

MAX_LINES = 5000
FLUSH_EVERY = 0.1


def clean_line(text: str) -> str:
    """Strip colours and cursor moves; keep what a `\\r` progress line ended on."""
    text = _ANSI.sub("", text)
    if "\r" in text:
        parts = [part for part in text.split("\r") if part]
        text = parts[-1] if parts else ""
    return _CONTROL.sub("", text.replace("\t", "    "))


class OutputLog(Log):
    """A log fed by `add()`; the widget is a window, the worker's events file is the record."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(max_lines=MAX_LINES, highlight=False, **kw)
        self._pending: list[str] = []
        self._timer: Any = None

    def on_mount(self) -> None:
        self._timer = self.set_interval(FLUSH_EVERY, self.flush, pause=True)

    def add(self, text: str) -> None:
        self._pending.append(text if text.isprintable() else clean_line(text))
        if self._timer is not None:
            self._timer.resume()

    def flush(self) -> None:
        if self._pending:
            batch, self._pending = self._pending, []
            self.write_lines(batch)
        elif self._timer is not None:
            self._timer.pause()  # nothing to write: no wake-ups while idle
