"""One step: what it found, what it will change, and the question before applying.

The same screen serves the six steps; what differs is the step's own plan (facts, actions,
diffs, warnings), which the engine provides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Iterable

from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Static

from gpuwizard.options import STEP_NAMES
from gpuwizard.steps.registry import TITLES
from gpuwizard.tui.plan_text import fact_lines
from gpuwizard.tui.screens.base import WizardScreen
from gpuwizard.tui.status import badge
from gpuwizard.tui.widgets.diff_view import DiffView
from gpuwizard.tui.widgets.fact_list import FactList


class StepScreen(WizardScreen):
    """`a` previews and applies the pending steps up to this one; `n`/`p` move along."""

    CSS_PATH = Path(__file__).with_suffix(".tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "apply", "Apply…"),
        Binding("n", "next", "Next"),
        Binding("p", "previous", "Prev", tooltip="The previous step"),
        Binding("escape", "back", "Overview"),
    ]

    def __init__(self, step: str) -> None:
        super().__init__()
        self.step = step

    def _names(self) -> list[str]:
        """The steps of this host's plan (Podman and containerd only where they are)."""
        plan = self.wizard.plan
        return [sp.step for sp in plan.steps] if plan is not None else list(STEP_NAMES)

    def screen_title(self) -> str:
        names = self._names()
        index = names.index(self.step) + 1 if self.step in names else 0
        return f"step {index}/{len(names)}: {TITLES.get(self.step, self.step)}"

    def current_step(self) -> str:
        return self.step

    def compose_body(self) -> Iterable[Widget]:
        with VerticalScroll(id="step-body"):
            yield Static("", id="step-head")
            yield Static("", id="step-reason")
            yield Static(Content.styled("Found", "bold"), classes="heading")
            yield FactList(id="step-facts")
            yield Static(Content.styled("Will change", "bold"), classes="heading")
            yield Static("", id="step-actions")
            yield DiffView(id="step-diffs")
            yield Static("", id="step-warnings")

    def on_mount(self) -> None:
        if self.wizard.plan is not None:
            self.plan_changed(self.wizard.plan)
        self.query_one("#step-body").focus()

    def plan_changed(self, plan: Any) -> None:
        sp = next((s for s in plan.steps if s.step == self.step), None)
        if sp is None:
            return
        self.query_one("#step-head", Static).update(
            Content("").join(
                [Content.styled(TITLES.get(self.step, self.step) + "  ", "bold"), badge(sp.state)]
            )
        )
        reason = []
        if sp.reason:
            reason.append(Content(sp.reason))
        if sp.remedy and sp.state in ("blocked", "failed"):
            reason.append(Content.from_markup("[$warning]→[/] $r", r=sp.remedy))
        self.query_one("#step-reason", Static).update(Content("\n").join(reason))
        self.query_one("#step-facts", FactList).set_facts(fact_lines(sp.facts))
        if sp.actions:
            actions = Content("\n").join(Content(f"• {a.describe()}") for a in sp.actions)
        elif sp.state == "done":
            actions = Content.styled("Nothing: this step is already done.", "$success")
        else:
            actions = Content.styled("Nothing.", "$foreground-muted")
        self.query_one("#step-actions", Static).update(actions)
        self.query_one(DiffView).show_diffs([d for d in sp.diffs if d.kind == "file"])
        self.query_one("#step-warnings", Static).update(
            Content("\n").join(Content.from_markup("[$warning]! $w[/]", w=w) for w in sp.warnings)
        )

    def action_apply(self) -> None:
        self.wizard.request_apply(self.step)

    def _move(self, delta: int) -> None:
        names = self._names()
        if self.step not in names:
            return
        index = names.index(self.step) + delta
        if 0 <= index < len(names):
            self.wizard.open_step(names[index])

    def action_next(self) -> None:
        self._move(1)

    def action_previous(self) -> None:
        self._move(-1)
