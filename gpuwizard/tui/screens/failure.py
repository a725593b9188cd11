"""What failed, why (the failure table's classified cause) and what to do next.

Choices: retry, roll the run back (after a preview), read the whole log, or open a shell.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, ClassVar, Optional

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from gpuwizard.steps.registry import TITLES


def classify(text: str) -> Any:
    """The doctor's failure table (gpuwizard.failures), or None when it does not know."""
    try:
        from gpuwizard import failures
    except ImportError:
        return None
    return failures.classify(text)


class FailureScreen(ModalScreen[None]):
    """r retry · b roll back · l full log · s shell · Escape close."""

    CSS_PATH = Path(__file__).with_suffix(".tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "retry", "Retry"),
        Binding("b", "rollback", "Roll back"),
        Binding("l", "log", "Full log"),
        Binding("s", "shell", "Shell"),
        Binding("escape", "close", "Close"),
    ]

    def __init__(
        self, run_id: str, step: str, error: Optional[dict[str, Any]], tail: list[str]
    ) -> None:
        super().__init__()
        self.run_id = run_id
        self.step = step
        self.error = error or {}
        self.tail = tail
        self.failure = classify(
            "\n".join([*tail, str(self.error.get("cause", "")), str(self.error.get("detail", ""))])
        )

    def compose(self) -> ComposeResult:
        title = TITLES.get(self.step, self.step or "the run")
        cause = str(self.error.get("cause") or "The run failed.")
        remedy = str(self.error.get("remedy") or "")
        with Vertical(id="dialog"):
            yield Static(Content.from_markup("[$error][b]✗ $t failed[/b][/]", t=title), id="what")
            # the cause in full, then the fix: one scrolled region, so a long cause (a
            # PermissionError with its path) is read to the end and never pushes the fix off
            parts: list[Content] = []
            if self.failure is not None:
                f = self.failure
                parts += [
                    Content.from_markup(
                        "[b]$code[/b] $title", code=str(f.code), title=str(f.title)
                    ),
                    Content.from_markup("[$success]fix[/] $f", f=str(f.fix)),
                    Content.from_markup("[$foreground-muted]why[/] $c", c=str(f.cause)),
                ]
                for check in getattr(f, "checks", ()) or ():
                    parts.append(
                        Content.from_markup("[$foreground-muted]check[/] $c", c=str(check))
                    )
            elif remedy:
                parts.append(Content.from_markup("[$success]→[/] $r", r=remedy))
            with VerticalScroll(id="why"):
                yield Static(Content(cause), id="cause")
                if parts:
                    yield Static(Content("\n").join(parts), id="classified")
            yield Static(
                Content.styled(
                    "The step's own changes were rolled back. b rolls back the rest of this run.",
                    "$foreground-muted",
                ),
                id="state",
            )
            with VerticalScroll(id="tail"):
                yield Static(Content("\n".join(self.tail[-15:]) or "(no output)"))
        yield Footer(compact=True)

    def action_close(self) -> None:
        self.dismiss(None)

    def action_retry(self) -> None:
        self.dismiss(None)
        app: Any = self.app
        app.replan()
        app.open_step(self.step or "driver")

    def action_rollback(self) -> None:
        from gpuwizard.tui.screens.rollback_preview import RollbackPreviewScreen

        app: Any = self.app
        run = app.journal.read_run(self.run_id)

        def chosen(yes: Optional[bool]) -> None:
            if yes:
                self.dismiss(None)
                app.roll_back(self.run_id, None)

        self.app.push_screen(RollbackPreviewScreen(run), chosen)

    def action_log(self) -> None:
        from gpuwizard.tui.screens.full_log import FullLogScreen

        self.app.push_screen(FullLogScreen(self.run_id))

    def action_shell(self) -> None:
        shell = os.environ.get("SHELL", "/bin/sh")
        with self.app.suspend():
            print(
                f"gpuwizard: a shell on this machine; `exit` returns to the wizard (run "
                f"{self.run_id}).",
                flush=True,
            )
            subprocess.run([shell], check=False)  # the user's own shell
