"""The frame every wizard screen shares: title, the step list, a body, the GPU panel, keys."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Iterable

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer

from gpuwizard.tui.messages import EngineBatch, GpuSamples, PlanReady
from gpuwizard.tui.widgets.gpu_panel import GpuPanel
from gpuwizard.tui.widgets.run_status import RunStatusLine
from gpuwizard.tui.widgets.step_list import StepList
from gpuwizard.tui.widgets.title_bar import TitleBar

if TYPE_CHECKING:
    from gpuwizard.tui.app import GpuWizardApp


class WizardScreen(Screen[Any]):
    """A screen with the step list on the left and the GPU panel under the body."""

    TITLE_TEXT: ClassVar[str] = ""
    CURRENT_STEP: ClassVar[str] = ""
    BINDINGS: ClassVar[list[BindingType]] = [
        # first, so the footer shows it however narrow the terminal (a cut footer dropped it)
        Binding("q", "app.quit", "Quit"),
        Binding("escape", "back", "Back", show=False),
    ]

    @property
    def wizard(self) -> GpuWizardApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        app = self.wizard
        yield TitleBar(self.screen_title(), app.host_label, app.demo, app.read_only, id="title")
        with Horizontal(id="frame"):
            yield StepList(current=self.current_step(), id="steps")
            with Vertical(id="body"):
                yield from self.compose_body()
        panel = GpuPanel(id="gpu")
        panel.display = app.gpu_visible
        yield panel
        yield RunStatusLine(id="run-status-line")
        yield Footer(compact=True)

    def screen_title(self) -> str:
        return self.TITLE_TEXT

    def current_step(self) -> str:
        return self.CURRENT_STEP

    def compose_body(self) -> Iterable[Widget]:
        return ()

    def on_screen_resume(self) -> None:
        """Catch up with what happened while another screen was on top."""
        app = self.wizard
        steps = self.query_one(StepList)
        steps.set_states(app.step_states)
        panel = self.query_one(GpuPanel)
        panel.display = app.gpu_visible
        panel.raw_view = app.gpu_raw_view
        if app.gpu_visible and app.gpu_readings:
            panel.show(app.gpu_readings, app.gpu_history, app.gpu_raw)
        if app.plan is not None:
            self.plan_changed(app.plan)
        self.query_one(RunStatusLine).refresh_status()

    def on_step_list_opened(self, message: StepList.Opened) -> None:
        self.wizard.open_step(message.step)

    def on_plan_ready(self, message: PlanReady) -> None:
        self.query_one(StepList).set_states(self.wizard.step_states)
        self.plan_changed(message.plan)

    def plan_changed(self, plan: Any) -> None:
        """Redraw what depends on the plan."""

    def on_engine_batch(self, message: EngineBatch) -> None:
        self.query_one(StepList).set_states(self.wizard.step_states)

    def on_gpu_samples(self, message: GpuSamples) -> None:
        panel = self.query_one(GpuPanel)
        panel.raw_view = self.wizard.gpu_raw_view
        if message.error:
            panel.show_error(message.error)
        else:
            panel.show(message.readings, self.wizard.gpu_history, message.raw)

    def set_gpu_visible(self, visible: bool) -> None:
        panel = self.query_one(GpuPanel)
        panel.display = visible
        panel.raw_view = self.wizard.gpu_raw_view

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()
