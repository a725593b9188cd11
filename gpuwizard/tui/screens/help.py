"""Every key, on one page."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

HELP = """\
[b]Everywhere[/b]
  ↑ ↓ Enter   move in the step list, open a step
  g           show or hide the live GPU panel
  v           GPU panel: gauges or raw nvidia-smi
  h           history of runs, and rollback
  o           back to the overview
  ctrl+p      command palette
  ?           this help          q  quit

[b]A step[/b]
  a           preview, then apply the pending steps up to this one
  n / p       next / previous step

[b]Before applying[/b]
  y / n       apply / cancel; d, c toggle daemon.json options

[b]When something failed[/b]
  r retry   b roll back   l full log   s shell

Nothing changes without a preview and a [b]y[/b]. The work runs in a detached
worker: closing this terminal (or losing SSH) does not stop it; run
gpuwizard again to follow it, confirm it, or roll it back."""


class HelpScreen(ModalScreen[None]):
    """Escape or ? closes."""

    CSS_PATH = Path(__file__).with_suffix(".tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "close", "Close"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog"):
            yield Static(Content.from_markup(HELP))

    def action_close(self) -> None:
        self.dismiss(None)
