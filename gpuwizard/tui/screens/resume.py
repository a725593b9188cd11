"""At start-up: a run that is still going, was interrupted, or waits for confirmation comes
first, before anything else can be done."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Optional

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from gpuwizard.tui.screens.rollback_preview import undo_lines
from gpuwizard.tui.status import badge


class ResumeScreen(ModalScreen[Optional[str]]):
    """f follow · k keep / r revert (when it waits for an answer) · b roll back (when its
    worker is gone) · Escape later. Only the keys that can work are offered."""

    CSS_PATH = Path(__file__).with_suffix(".tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "choose('follow')", "Follow"),
        Binding("k,c", "choose('keep')", "Keep"),
        Binding("r", "choose('revert')", "Revert"),
        Binding("b", "choose('rollback')", "Roll back"),
        Binding("escape", "choose(None)", "Later"),
    ]

    def __init__(self, run: Any) -> None:
        super().__init__()
        self.run = run
        self.status = str(run.status())

    def compose(self) -> ComposeResult:
        summary = self.run.summary()
        with Vertical(id="dialog"):
            yield Static(
                Content("").join(
                    [Content.styled(f"Run {self.run.run_id} ", "bold"), badge(self.status)]
                )
            )
            yield Static(
                Content.styled(
                    f"started {summary.get('started', '?')} · steps "
                    f"{', '.join(summary.get('steps', [])) or 'none yet'} · "
                    f"{summary.get('changes', 0)} change(s)",
                    "$foreground-muted",
                )
            )
            lines = undo_lines(self.run)
            if lines:
                yield Static(Content("\n").join(lines[:8]), id="changes")
            keys = []
            if self.status in ("in-progress", "awaiting-confirmation"):
                keys.append("[b]f[/b] follow it")
            if self.status == "awaiting-confirmation":
                keys.append("[b]k[/b] keep")
                keys.append("[b]r[/b] revert")
            if lines and self.status == "interrupted":
                keys.append("[b]b[/b] roll it back")
            keys.append("[b]Esc[/b] later")
            yield Static(Content.from_markup("   ".join(keys)), id="keys")

    def action_choose(self, choice: Optional[str]) -> None:
        if choice in ("keep", "revert") and self.status != "awaiting-confirmation":
            return
        if choice == "rollback" and self.status != "interrupted":
            return  # its worker still runs and holds the lock; follow it instead
        if choice == "follow" and self.status not in ("in-progress", "awaiting-confirmation"):
            return
        self.dismiss(choice)
