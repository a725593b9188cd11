"""A run, live: the worker's step states, a progress bar and the command output line by line.

The worker runs detached; this screen only draws its events (replayed, then followed), so
leaving it, or losing the terminal, leaves the run alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Iterable, Optional

from textual.binding import Binding, BindingType
from textual.content import Content
from textual.widget import Widget
from textual.widgets import ProgressBar, Static

from gpuwizard.events import ActionEvent, DiffReady, LogLine, Progress, RunState, StepState
from gpuwizard.options import STEP_NAMES
from gpuwizard.tui.messages import EngineBatch, FollowEnded
from gpuwizard.tui.screens.base import WizardScreen
from gpuwizard.tui.status import badge
from gpuwizard.tui.widgets.output_log import OutputLog

_SHOWN_AS_BADGE = (
    "finished",
    "failed",
    "rolled-back",
    "awaiting-confirmation",
    "refused",
    "interrupted",
    "auto-reverted",
)
_PHASE = {"start": "▶", "done": "✓", "failed": "✗", "rollback": "↺", "rolled-back": "↺"}


class RunScreen(WizardScreen):
    """Enter continues once the run has ended; Escape goes back while it carries on."""

    CSS_PATH = Path(__file__).with_suffix(".tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "continue", "Continue"),
        Binding("f", "failure", "Failure", show=False),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, run_id: str, rollback: bool = False) -> None:
        super().__init__()
        self.run_id = run_id
        self.rollback = rollback
        self.state = "rolling back" if rollback else "starting"
        self.detail = ""
        self.running_step = ""
        self.ended = False
        self.deadline: Optional[float] = None

    def screen_title(self) -> str:
        return "rolling back" if self.rollback else "applying"

    def current_step(self) -> str:
        return self.running_step

    def compose_body(self) -> Iterable[Widget]:
        yield Static(self._state_line(), id="run-state")
        yield ProgressBar(total=100, show_eta=False, id="run-progress")
        yield Static("", id="run-action")
        yield OutputLog(id="run-log")

    def on_mount(self) -> None:
        self.query_one(ProgressBar).display = False
        self.query_one(OutputLog).focus()
        for event in list(self.wizard.run_events):
            self._draw(event)
        log = self.query_one(OutputLog)
        log.flush()
        log.scroll_end(animate=False)

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        log = self.query_one(OutputLog)
        log.flush()
        self.call_after_refresh(log.scroll_end, animate=False)

    def _state_line(self) -> Content:
        word = self.state
        if word in _SHOWN_AS_BADGE:
            parts = [badge(word)]
        else:
            parts = [Content.styled(f"▶ {word}", "$accent")]
        parts.append(Content.styled(f"  run {self.run_id}", "$foreground-muted"))
        if self.detail:
            parts.append(Content.styled(f"\n{self.detail}", "$foreground-muted"))
        if self.ended:
            parts.append(Content.styled("   Enter: continue", "bold"))
        return Content("").join(parts)

    def _set_state(self, state: str, detail: str = "") -> None:
        self.state, self.detail = state, detail
        self.query_one("#run-state", Static).update(self._state_line())

    def on_engine_batch(self, message: EngineBatch) -> None:
        super().on_engine_batch(message)
        if message.run_id == self.run_id:
            log = self.query_one(OutputLog)
            for event in message.events:
                if isinstance(event, LogLine) and event.stream == "out":
                    log.add(event.text)  # the common case, kept short
                else:
                    self._draw(event)

    def _draw(self, event: Any) -> None:
        log = self.query_one(OutputLog)
        if isinstance(event, LogLine):
            log.add(
                event.text
                if event.stream == "out"
                else f"{event.stream}: {event.text}"
                if event.stream == "err"
                else f"· {event.text}"
            )
        elif isinstance(event, Progress):
            bar = self.query_one(ProgressBar)
            bar.display = True
            if event.fraction is not None:
                bar.update(progress=round(event.fraction * 100))
            if event.label:
                self.query_one("#run-action", Static).update(Content(event.label))
        elif isinstance(event, ActionEvent):
            mark = _PHASE.get(event.phase, "·")
            text = f"{mark} {event.description or event.action}"
            self.query_one("#run-action", Static).update(Content(text))
            log.add(text)
            if event.error:
                log.add(f"✗ {event.error.get('cause', '')}")
        elif isinstance(event, StepState):
            if event.state == "running":
                self.running_step = event.step
                self.query_one(ProgressBar).update(progress=0)
            elif event.state in ("done", "failed", "skipped"):
                self.query_one(ProgressBar).display = False  # shown again by the next Progress
            log.add(
                f"── {event.step}: {event.state}" + (f" ({event.reason})" if event.reason else "")
            )
        elif isinstance(event, DiffReady):
            where = f"{event.step}: " if event.step else ""
            log.add(f"· {where}{len(event.diffs)} change(s) previewed, the host unchanged since")
        elif isinstance(event, RunState):
            self._on_run_state(event)

    def _on_run_state(self, event: RunState) -> None:
        self._set_state(event.state, event.detail)
        if event.state == "awaiting-confirmation":
            self.deadline = event.deadline
            self.offer_keep()
        elif event.state in ("finished", "rolled-back", "auto-reverted"):
            bar = self.query_one(ProgressBar)
            if bar.display:
                bar.update(progress=100)
            self._ended()
        elif event.state in ("failed", "refused", "interrupted"):
            self._ended()
            if not self.rollback:
                self.action_failure()

    def offer_keep(self) -> None:
        """The keep dialog, while the run waits for an answer (and only then: a replay of a
        run that was kept since must not ask again)."""
        from gpuwizard.tui.screens.keep_change import KeepChangeScreen

        app = self.wizard
        if app.run_id != self.run_id or not app.run_awaiting():
            return
        if isinstance(self.app.screen, KeepChangeScreen):
            return
        detail = app.run_state.detail if app.run_state else ""
        deadline = app.run_state.deadline if app.run_state else None
        self.app.push_screen(KeepChangeScreen(self.run_id, deadline, detail), self._kept)

    def _kept(self, keep: Optional[bool]) -> None:
        if keep:
            self.wizard.keep_run(self.run_id)
            self.query_one(OutputLog).add("· kept: the change stays")
        elif keep is False:
            self.wizard.revert_run(self.run_id)
            self.query_one(OutputLog).add("· not kept: reverting now")
        else:
            self.query_one(OutputLog).add(
                "· decide later: K keeps, R reverts, from any screen, until the deadline"
            )

    def on_follow_ended(self, message: FollowEnded) -> None:
        if message.run_id != self.run_id:
            return
        if message.error:
            self.query_one(OutputLog).add(f"✗ following the run failed: {message.error}")
        self._ended()

    def _ended(self) -> None:
        if not self.ended:
            self.ended = True
            self.query_one("#run-state", Static).update(self._state_line())

    def action_continue(self) -> None:
        if not self.ended:
            if self.wizard.run_awaiting():
                self.offer_keep()
                return
            self.notify("The run is still going; Escape leaves it running in the background.")
            return
        if self.state in ("failed", "refused", "interrupted") and not self.rollback:
            self.action_failure()
            return
        if self.state == "finished" and not self.rollback:
            self.action_finish()
            return
        plan = self.wizard.plan
        todo = [sp.step for sp in plan.steps if sp.state != "done"] if plan else []
        self.wizard.open_step(todo[0] if todo else STEP_NAMES[-1])

    def action_finish(self) -> None:
        from gpuwizard.tui.screens.finish import FinishScreen

        app = self.wizard
        kept = self.run_id in app.kept or "kept" in self.detail
        self.app.push_screen(FinishScreen(self.run_id, list(app.run_events), kept))

    def action_failure(self) -> None:
        from gpuwizard.tui.screens.failure import FailureScreen

        step, error, tail = self.wizard.last_error()
        self.app.push_screen(FailureScreen(self.run_id, step, error, tail))
