"""After a disruptive change (Docker restarted): keep it, or let it be reverted.

Like `netplan try`: the worker reverts on its own when the deadline passes, so a session
that died here leaves the host as it was. The countdown ticks only while this is shown.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Optional

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from gpuwizard import clock


class KeepChangeScreen(ModalScreen[Optional[bool]]):
    """y keeps the change, n reverts it now; Escape decides later (K / R from any screen)."""

    CSS_PATH = Path(__file__).with_suffix(".tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y,k,K", "answer(True)", "Keep"),
        Binding("n,r,R", "answer(False)", "Revert"),
        Binding("escape", "answer(None)", "Decide later"),
    ]

    def __init__(self, run_id: str, deadline: Optional[float], detail: str = "") -> None:
        super().__init__()
        self.run_id = run_id
        self.deadline = deadline
        self.detail = detail

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(Content.styled("Keep the new Docker settings?", "bold"))
            yield Static(
                Content(
                    self.detail or "Does Docker work for you? Keep the change, or it is reverted."
                )
            )
            yield Static("", id="countdown")
            yield Static(
                Content.from_markup(
                    "[b]y[/b] keep   [b]n[/b] revert   [b]Esc[/b] decide later (K / R anywhere)"
                ),
                id="keys",
            )

    def on_mount(self) -> None:
        self._tick()
        if self.deadline is not None:
            self.set_interval(1.0, self._tick)

    def _tick(self) -> None:
        if self.deadline is None:
            text = "No deadline was set."
        else:
            left = max(0, int(self.deadline - clock.now()))
            text = f"Reverted automatically in {left} s."
        self.query_one("#countdown", Static).update(Content.styled(text, "$warning"))

    def action_answer(self, keep: Optional[bool]) -> None:
        self.dismiss(keep)
