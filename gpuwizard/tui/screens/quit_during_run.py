"""Quitting while a run is in progress: ask, and say that the run goes on without us."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static


class QuitDuringRunScreen(ModalScreen[bool]):
    """y quits (the run goes on), n or Escape stays."""

    CSS_PATH = Path(__file__).with_suffix(".tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y,q", "answer(True)", "Quit"),
        Binding("n,escape", "answer(False)", "Stay"),
    ]

    def __init__(self, run_id: str, state: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.state = state

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(Content.styled("A run is in progress. Quit anyway?", "bold"))
            lines = [
                f"Run {self.run_id} is {self.state}. It goes on without this window: "
                "quitting stops watching, not the run.",
                "Follow it again with `gpuwizard attach` (or start gpuwizard again).",
            ]
            if self.state == "awaiting-confirmation":
                lines.append(
                    "Nobody will be asked to keep the change: it is reverted at the deadline "
                    "unless you run `gpuwizard confirm`."
                )
            yield Static(Content("\n".join(lines)), id="why")
            yield Static(
                Content.from_markup("[b]y[/b] quit, the run goes on   [b]n[/b] stay"), id="keys"
            )

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
