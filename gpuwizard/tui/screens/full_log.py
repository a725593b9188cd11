"""The whole output of a run, from the worker's events file, in a scrollable log."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from gpuwizard.events import LogLine, from_json
from gpuwizard.tui.widgets.output_log import OutputLog, clean_line


class FullLogScreen(ModalScreen[None]):
    """Escape closes."""

    CSS_PATH = Path(__file__).with_suffix(".tcss")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q", "close", "Close")]

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id

    def compose(self) -> ComposeResult:
        yield Static(f"Full log of run {self.run_id}", id="log-title")
        yield OutputLog(id="full-log")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(OutputLog).focus()
        self.load()

    @work(
        thread=True,
        exclusive=True,
        group="full-log",
        exit_on_error=False,
        description="Reading the run's events",
    )
    def load(self) -> None:
        app: Any = self.app
        path = app.journal.runs_dir / self.run_id / "events.jsonl"
        lines = []
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                for raw in fh:
                    try:
                        event = from_json(raw)
                    except ValueError:
                        continue
                    if isinstance(event, LogLine):
                        lines.append(clean_line(event.text))
        except OSError as exc:
            lines = [f"cannot read {path}: {exc.strerror}"]
        self.app.call_from_thread(self.query_one(OutputLog).write_lines, lines)

    def action_close(self) -> None:
        self.dismiss(None)
