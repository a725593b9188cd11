"""The first screen: the host in a few lines and the six steps with their states.

It appears at once; the probes run in thread workers and fill it in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Iterable

from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Static

from gpuwizard.steps.registry import TITLES
from gpuwizard.tui.messages import HostProbed, PlanFailed
from gpuwizard.tui.plan_text import host_lines
from gpuwizard.tui.screens.base import WizardScreen
from gpuwizard.tui.status import badge


class OverviewScreen(WizardScreen):
    """Where the wizard starts: what this machine is, and what is left to do."""

    CSS_PATH = Path(__file__).with_suffix(".tcss")
    TITLE_TEXT = "overview"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "next", "Next step", priority=False),
        Binding("a", "apply_all", "Apply all"),
        Binding("r", "replan", "Re-plan"),
    ]

    def compose_body(self) -> Iterable[Widget]:
        with VerticalScroll(id="overview"):
            yield Static(Content.styled("This machine", "bold"), classes="heading")
            yield Static(
                Content.styled("reading the system…", "$foreground-muted"), id="host-system"
            )
            yield Static(
                Content.styled("probing GPUs and Docker…", "$foreground-muted"), id="host-gpu"
            )
            yield Static(Content.styled("Steps", "bold"), classes="heading")
            yield Static(
                Content.styled("planning (read-only)…", "$foreground-muted"), id="plan-steps"
            )
            yield Static("", id="plan-hint")

    def on_mount(self) -> None:
        app = self.wizard
        if "system" in app.host_lines:
            self._show_system(app.host_lines["system"])
        if app.plan is not None:
            self.plan_changed(app.plan)
        elif app.plan_error is not None:
            self._show_error(*app.plan_error)
        self.query_one("#steps").focus()

    def on_host_probed(self, message: HostProbed) -> None:
        if message.topic == "system":
            self._show_system(message.lines)

    def _show_system(self, lines: list[str]) -> None:
        self.query_one("#host-system", Static).update(Content("\n".join(lines)))

    def on_plan_failed(self, message: PlanFailed) -> None:
        self._show_error(message.cause, message.remedy)

    def _show_error(self, cause: str, remedy: str) -> None:
        steps = self.query_one("#plan-steps", Static)
        steps.add_class("-error")  # wrapped: a cause is read in full, never cut at the edge
        steps.update(
            Content.from_markup("[$error]✗ $cause[/]\n→ $remedy", cause=cause, remedy=remedy)
        )
        self.query_one("#host-gpu", Static).update("")

    def plan_changed(self, plan: Any) -> None:
        self.query_one("#plan-steps").remove_class("-error")
        self.query_one("#host-gpu", Static).update(Content("\n".join(host_lines(plan))))
        rows = []
        ran = self._ran_states()
        for sp in plan.steps:
            detail = sp.reason or (f"{len(sp.actions)} change(s)" if sp.actions else "")
            state = ran.get(sp.step, sp.state)
            if state != sp.state:
                detail = f"in run {self.wizard.run_id}" if state != "pending" else detail
            rows.append(
                Content("").join(
                    [
                        badge(state, width=10),
                        Content(" "),
                        Content(TITLES.get(sp.step, sp.title).ljust(20)),
                        Content.styled(detail[:60], "$foreground-muted"),
                    ]
                )
            )
        self.query_one("#plan-steps", Static).update(Content("\n").join(rows))
        pending = [sp for sp in plan.steps if ran.get(sp.step, sp.state) == "pending"]
        blocked = [sp for sp in plan.steps if ran.get(sp.step, sp.state) in ("blocked", "failed")]
        if ran:
            hint = Content.styled(
                "A run is going on: the line at the bottom says where it is (w watches it).",
                "$foreground-muted",
            )
        elif pending:
            hint = Content.from_markup(
                "$n step(s) to apply. [b]Enter[/b] walks through them one by one; "
                "[b]a[/b] applies all after one preview.",
                n=str(len(pending)),
            )
        elif blocked:
            hint = Content.from_markup(
                "[$warning]$step is $state:[/] $remedy",
                step=blocked[0].step,
                state=blocked[0].state,
                remedy=blocked[0].remedy or blocked[0].reason,
            )
        else:
            hint = Content.styled(
                "Everything is in place: `docker run --gpus all` works.", "$success"
            )
        self.query_one("#plan-hint", Static).update(hint)

    def _ran_states(self) -> dict[str, str]:
        """While a run goes on, its steps' states from its events: the plan was read before
        it and would still say pending for a step the run has just done."""
        app = self.wizard
        if not getattr(app, "run_active", False):
            return {}
        # skipped: the run had nothing to do there, so the plan's word (done) still holds
        return {
            step: state
            for step, state in app.step_states.items()
            if state not in ("planning", "skipped")
        }

    def on_engine_batch(self, message: Any) -> None:
        super().on_engine_batch(message)
        if self.wizard.plan is not None:
            self.plan_changed(self.wizard.plan)

    def action_next(self) -> None:
        plan = self.wizard.plan
        if plan is None:
            return
        todo = [sp.step for sp in plan.steps if sp.state in ("pending", "blocked", "failed")]
        self.wizard.open_step(todo[0] if todo else plan.steps[0].step)

    def action_apply_all(self) -> None:
        self.wizard.request_apply(None)

    def action_replan(self) -> None:
        self.wizard.replan()
