"""One line on every screen while a run is going: what it does and the keys that reach it.

The app owns the text (`GpuWizardApp.run_status_text`); this widget only shows it, and hides
itself when no run is in progress.
"""

from __future__ import annotations

from typing import Any

from textual.widgets import Static


class RunStatusLine(Static):
    """`? awaiting your confirmation — 87 s — K keep · R revert · w watch`."""

    def on_mount(self) -> None:
        self.refresh_status()

    def refresh_status(self) -> None:
        app: Any = self.app
        text = app.run_status_text() if hasattr(app, "run_status_text") else None
        self.display = text is not None
        if text is not None:
            self.update(text)
