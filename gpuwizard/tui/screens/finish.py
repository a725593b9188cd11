"""After a run that was kept: what changed, the GPU test's verdict, and the lines that work.

Copy-friendly: the text starts at column 0, with no frame or sidebar around it, so a mouse
selection in any terminal copies exactly the commands; `c` also copies them (OSC 52, where
the terminal supports it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Optional

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, Static

from gpuwizard.events import ActionEvent, LogLine, StepState
from gpuwizard.steps.registry import TITLES


def what_changed(events: Any) -> list[str]:
    """One line per action that was done, in order."""
    out = []
    for event in events:
        if isinstance(event, ActionEvent) and event.phase == "done":
            line = f"✓ {event.description or event.action}"
            if line not in out:
                out.append(line)
    return out


def gpu_test_verdict(events: Any) -> Optional[str]:
    """`GPU test: 3 of 3 passed`, or the step's state when it did not say."""
    verdict = None
    for event in events:
        if isinstance(event, LogLine) and event.text.startswith("GPU test:"):
            verdict = event.text
        elif isinstance(event, StepState) and event.step == "gpu-test" and event.state == "failed":
            verdict = f"GPU test failed: {event.reason}"
    return verdict


def fold(text: str, width: int = 76) -> str:
    """Long shell lines broken with ` \\` continuations, so a copied line still runs (a line
    the terminal wrapped would be pasted broken). YAML and comments are left as they are."""
    out = []
    for line in text.splitlines():
        if len(line) <= width or not line.startswith("docker "):
            out.append(line)
            continue
        current = ""
        for word in line.split(" "):
            if current and len(current) + 1 + len(word) > width - 2:
                out.append(current + " \\")
                current = "    " + word
            else:
                current = f"{current} {word}" if current else word
        out.append(current)
    return "\n".join(out)


class FinishScreen(Screen[None]):
    """c copies the commands · Enter or Escape goes on to the overview."""

    CSS_PATH = Path(__file__).with_suffix(".tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "copy", "Copy the commands"),
        Binding("enter,escape", "close", "Overview"),
    ]

    def __init__(self, run_id: str, events: list[Any], kept: bool = False) -> None:
        super().__init__()
        self.run_id = run_id
        self.events = events
        self.kept = kept
        self.commands = ""

    def compose(self) -> ComposeResult:
        changed = what_changed(self.events)
        verdict = gpu_test_verdict(self.events)
        with VerticalScroll(id="finish"):
            yield Static(
                Content.styled(
                    f"Done: run {self.run_id} finished"
                    + (" and its changes were kept." if self.kept else "."),
                    "bold $success",
                )
            )
            yield Static(Content.styled(TITLES["gpu-test"], "bold"), classes="heading")
            if verdict is None:
                text = Content.styled("not run in this run", "$foreground-muted")
            elif "passed" in verdict and " 0 of" not in verdict and "failed" not in verdict:
                text = Content.styled(f"✓ {verdict}", "$success")
            else:
                text = Content.styled(f"✗ {verdict}", "$error")
            yield Static(text, id="verdict")
            yield Static(Content.styled("Use the GPU from a container", "bold"), classes="heading")
            yield Static(
                Content.styled("working out the lines for this host…", "$foreground-muted"),
                id="commands",
            )
            yield Static(Content.styled("What changed", "bold"), classes="heading")
            yield Static(Content("\n".join(changed) or "nothing: every step was already done"))
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#finish").focus()
        self.load()

    @work(
        thread=True,
        exclusive=True,
        group="finish",
        exit_on_error=False,
        description="The docker run and Compose lines for this host",
    )
    def load(self) -> None:
        from gpuwizard import snippets
        from gpuwizard.errors import WizardError

        app: Any = self.app
        try:
            run = snippets.render_for_host(app.host, app.options, kind="run")
            compose = snippets.render_for_host(app.host, app.options, kind="compose", form="deploy")
            text = fold(f"{run.strip()}\n\n{compose.strip()}\n")
        except (WizardError, OSError) as exc:
            text = f"# the lines could not be worked out: {exc}\n"
        self.app.call_from_thread(self._show, text)

    def _show(self, text: str) -> None:
        self.commands = text
        self.query_one("#commands", Static).update(Content(text))

    def action_copy(self) -> None:
        if not self.commands:
            self.notify("The lines are not ready yet.", severity="warning")
            return
        self.app.copy_to_clipboard(self.commands)
        self.notify(
            "Copied (OSC 52): paste where your terminal allows it, or select the lines with "
            "the mouse; they start at column 0."
        )

    def action_close(self) -> None:
        self.app.pop_screen()
        app: Any = self.app
        app.action_overview()
