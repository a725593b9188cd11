"""Before a rollback: every change that will be undone, newest first, then y / n."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Optional

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static


def undo_lines(run: Any, steps: Optional[set[str]] = None) -> list[Content]:
    """One line per change still to undo: the step and what the change was."""
    lines = []
    for rec in run.pending_undo(steps):
        step = str(rec.data.get("step", ""))
        what = str(rec.data.get("describe") or rec.data.get("action", ""))
        lines.append(Content.from_markup("↺ [$foreground-muted]$s[/] $w", s=step.ljust(13), w=what))
    return lines


def rollback_impact(run: Any, steps: Optional[set[str]] = None) -> list[Content]:
    """What else a rollback does, said before it: Docker restarted, containers stopped."""
    touched = {str(rec.data.get("step", "")) for rec in run.pending_undo(steps)}
    out: list[Content] = []
    if touched & {"daemon-config", "restart"}:
        out.append(Content.styled("Impact", "bold"))
        out.append(
            Content.from_markup(
                "[$warning]! Docker is restarted on the old daemon.json: running containers "
                "stop unless live-restore is on[/]"
            )
        )
    return out


class RollbackPreviewScreen(ModalScreen[bool]):
    """y rolls back, n keeps everything as it is."""

    CSS_PATH = Path(__file__).with_suffix(".tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Roll back"),
        Binding("n,escape", "answer(False)", "Keep"),
    ]

    def __init__(self, run: Any, steps: Optional[set[str]] = None) -> None:
        super().__init__()
        self.run = run
        self.steps = steps

    def compose(self) -> ComposeResult:
        lines = undo_lines(self.run, self.steps)
        with Vertical(id="dialog"):
            yield Static(Content.from_markup("[b]Roll back run $r?[/b]", r=self.run.run_id))
            with VerticalScroll(id="undo"):
                impact = rollback_impact(self.run, self.steps)
                if impact:
                    yield Static(Content("\n").join(impact), id="impact")
                if lines:
                    yield Static(
                        Content.styled(
                            "These changes are undone, in this order; "
                            "files get their exact previous bytes back:",
                            "$foreground-muted",
                        )
                    )
                    yield Static(Content("\n").join(lines))
                else:
                    yield Static("Nothing left to undo in this run.")
            yield Static(Content.from_markup("[b]y[/b] roll back   [b]n[/b] keep"), id="keys")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes and bool(self.run.pending_undo(self.steps)))
