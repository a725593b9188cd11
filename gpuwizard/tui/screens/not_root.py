"""Not root: changing the system needs sudo. Offer to re-run under sudo, or look only."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Optional

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static


class NotRootScreen(ModalScreen[Optional[str]]):
    """s re-runs under sudo (after this app has exited), r continues read-only."""

    CSS_PATH = Path(__file__).with_suffix(".tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "choose('sudo')", "Re-run with sudo"),
        Binding("r,escape", "choose('read-only')", "Read-only"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(Content.styled("gpuwizard is not running as root.", "bold"))
            yield Static(
                "Installing packages, writing /etc/docker/daemon.json and restarting "
                "Docker need root. You can still look at everything read-only."
            )
            yield Static(
                Content.from_markup("[b]s[/b] re-run with sudo   [b]r[/b] continue read-only"),
                id="keys",
            )

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)
