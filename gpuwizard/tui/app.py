"""The gpuwizard Textual app: guided screens over the engine, which it never bypasses.

The app plans (read-only) in thread workers, shows every change before asking, and hands
mutating work to the detached worker (`gpuwizard.worker`), whose events it draws. An SSH drop
kills this app, never the work.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, Sequence

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.content import Content
from textual.screen import ModalScreen, Screen
from textual.worker import Worker, WorkerState, get_current_worker

from gpuwizard import clock, glyphs
from gpuwizard.errors import WizardError
from gpuwizard.events import ActionEvent, LogLine, RunState, StepState
from gpuwizard.options import STEP_NAMES, Options
from gpuwizard.states import ENDED
from gpuwizard.tui.console import ConsoleGlyphs, key_display
from gpuwizard.tui.gpu_feed import GpuFeed, GpuHistory, GpuReading
from gpuwizard.tui.messages import (
    EngineBatch,
    EngineEvent,
    FollowEnded,
    GpuSamples,
    HostProbed,
    PlanFailed,
    PlanReady,
)

if TYPE_CHECKING:
    from textual.filter import LineFilter

GPU_PERIOD = 1.0  # seconds between GPU samples while the panel is open
KEPT_EVENTS = 5000  # a run's latest events, for a screen opened later and the failure tail
SLOW_LINK_FPS = 10


class GpuWizardApp(App[int]):
    """The wizard. Screens ask it to plan, apply, follow and roll back; it owns the workers."""

    CSS_PATH = "app.tcss"
    TITLE = "gpuwizard"
    ENABLE_COMMAND_PALETTE = True
    # 80×24 first: below 100 columns the step list collapses to its glyphs (app.tcss)
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    BINDINGS = [
        Binding("g", "toggle_gpu", "GPU", tooltip="Show or hide the GPU panel"),
        Binding("v", "gpu_view", "GPU view", show=False),
        Binding("h", "history", "History"),
        Binding("o", "overview", "Overview", show=False),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
        Binding("K", "keep", "Keep", show=False),
        Binding("R", "revert", "Revert", show=False),
        Binding("w", "watch_run", "Watch the run", show=False),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(
        self,
        host: Any,
        options: Options,
        journal: Any,
        *,
        demo: Optional[bool] = None,
        planner: Optional[Callable[[Any, Options], Any]] = None,
        engine: Any = None,
        gpu_feed: Any = None,
        gpu_history: Optional[GpuHistory] = None,
        check_root: bool = True,
        slow_link: bool = False,
    ) -> None:
        super().__init__(ansi_color=False)
        # TERM=linux: every line drawn through the console's character set (tui/console.py)
        self.console_glyphs = ConsoleGlyphs() if glyphs.ascii_only() else None
        self.host = host
        if demo is None:  # the recorded demo machine is a capability of the host
            demo = bool(getattr(host, "demo", False))
        if demo:
            from gpuwizard.demo import demo_options

            options = demo_options(options)
        self.options = options
        self.journal = journal
        self.demo = demo
        self.slow_link = slow_link
        self.read_only = False
        self.sudo_requested = False
        self._planner = planner  # None: the session's plan (tests hand in their own)
        from gpuwizard.session import Session

        # the engine's one API: applies and rollbacks go to the detached, locked worker
        self.session = Session(host, options, journal, backend=engine)
        self._check_root = check_root and not demo
        self.host_label = getattr(host, "label", "") or ("" if host.is_live else str(host.root))

        self.plan: Any = None
        self.plan_error: Optional[tuple[str, str]] = None
        self.step_states: dict[str, str] = {n: "planning" for n in STEP_NAMES}
        self.host_lines: dict[str, list[str]] = {}

        self.gpu_feed = gpu_feed if gpu_feed is not None else GpuFeed(host)
        self.gpu_visible = False
        self.gpu_raw_view = False
        self.gpu_readings: list[GpuReading] = []
        self.gpu_history = gpu_history if gpu_history is not None else GpuHistory()
        self.gpu_raw: Optional[list[str]] = None
        self._gpu_timer: Any = None

        self.run_id: Optional[str] = None
        self.run_events: deque[Any] = deque(maxlen=KEPT_EVENTS)
        self.run_active = False  # a run is followed and has not ended
        self.run_rollback = False
        self.run_state: Optional[RunState] = None  # the followed run's latest state
        self.running_step = ""
        self.kept: set[str] = set()  # runs this app confirmed (the worker may not have said so)
        self._status_timer: Any = None
        self.away_notice = ""
        self.gpu_test_passed = ""  # "passed at 19:28" once the GPU test passed in this app
        self._journal_gpu_pass = ""  # the same, from the journal's newest kept run
        if slow_link:
            self.animation_level = "none"

    def get_line_filters(self) -> Sequence[LineFilter]:
        """Textual's filters (NO_COLOR's among them), then, on the console, its characters."""
        filters = super().get_line_filters()
        if self.console_glyphs is None or not self.console_glyphs.enabled:
            return filters
        return [*filters, self.console_glyphs]

    def get_key_display(self, binding: Binding) -> str:
        """On the console `enter`, `up` for Textual's ⏎ ↑: one cell of `<` would not say it."""
        shown = super().get_key_display(binding)
        return shown if self.console_glyphs is None else key_display(shown)

    # -- the engine ------------------------------------------------------------------
    def on_mount(self) -> None:
        from gpuwizard.tui.screens.overview import OverviewScreen

        if self.console_glyphs is not None:
            self.add_class("-ascii")  # TERM=linux: ASCII glyphs, plain borders (app.tcss)
        self.push_screen(OverviewScreen())
        self.probe_host()
        self.replan()
        self.check_start_up()

    # -- probes (read-only, thread workers) -------------------------------------------
    def plan_now(self, options: Options) -> Any:
        """Plan (read-only) in this thread: the session's plan, or a test's planner."""
        if self._planner is not None:
            return self._planner(self.host, options)
        return self.session.plan(options)

    @work(
        thread=True,
        exclusive=True,
        group="plan",
        exit_on_error=False,
        description="Planning every step (read-only)",
    )
    def replan(self, options: Optional[Options] = None) -> Any:
        """Probe the host and plan every step; nothing on the host changes."""
        try:
            result = self.plan_now(options or self.options)
        except WizardError as exc:
            self.post_message(PlanFailed(exc.cause, exc.remedy))
            return None
        except ImportError as exc:
            self.post_message(
                PlanFailed(
                    f"A step module cannot be loaded: {exc}",
                    "This gpuwizard install is incomplete; reinstall it.",
                )
            )
            return None
        from gpuwizard import gpu_verdict

        passed = gpu_verdict.last_pass(self.journal)  # a file read: here, not on the UI thread
        self._journal_gpu_pass = passed.text() if passed else ""
        if get_current_worker().is_cancelled:
            return None  # a newer plan replaced this one: an older one must not land after it
        self.post_message(PlanReady(result))
        return result

    @work(
        thread=True,
        exclusive=True,
        group="host",
        exit_on_error=False,
        description="Reading the host's distribution and kernel",
    )
    def probe_host(self) -> None:
        facts = self.host.facts
        self.post_message(
            HostProbed(
                "system",
                [
                    f"{facts.pretty_name} · {facts.arch} · kernel {facts.kernel}",
                    f"package manager {facts.package_manager or 'none found'} · init "
                    f"{facts.init_system}"
                    + (" · WSL" if facts.wsl else "")
                    + (" · in a container" if facts.in_container else ""),
                ],
            )
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if event.state == WorkerState.ERROR:
            error = worker.error
            if worker.group == "plan":
                self.post_message(PlanFailed(*_planning_failed(error)))
            elif worker.group == "host":
                self.post_message(
                    HostProbed("system", [f"the system could not be read: {_error_text(error)}"])
                )
            elif worker.group == "gpu":
                self.post_message(GpuSamples([], None, _error_text(error)))
            elif worker.group == "follow":
                self.post_message(FollowEnded(self.run_id or "", _error_text(error)))
            else:
                self.notify(_error_text(error), title="Error", severity="error")
        elif event.state == WorkerState.SUCCESS and worker.group == "gpu":
            # dolphie's shape: the next poll is armed only after this one succeeded
            self._arm_gpu_timer()

    def on_plan_ready(self, message: PlanReady) -> None:
        self._gpu_test_as_passed(message.plan)
        self.plan = message.plan
        self.plan_error = None
        for sp in message.plan.steps:
            self.step_states[sp.step] = sp.state
        self._broadcast(lambda: PlanReady(message.plan))

    def _gpu_test_as_passed(self, plan: Any) -> None:
        """The GPU test is always runnable, so a plan calls it pending even right after it
        passed; once it passed (here, or in a kept run of the journal) it reads as done."""
        from gpuwizard import gpu_verdict

        if self._journal_gpu_pass:
            self.gpu_test_passed = self._journal_gpu_pass
        if self.gpu_test_passed:
            gpu_verdict.mark_passed(plan, self.gpu_test_passed)

    def on_plan_failed(self, message: PlanFailed) -> None:
        self.plan_error = (message.cause, message.remedy)
        # every screen: the overview under a dialog must not stay on "planning…" forever
        self._broadcast(lambda: PlanFailed(message.cause, message.remedy))

    def on_host_probed(self, message: HostProbed) -> None:
        self.host_lines[message.topic] = message.lines
        self._broadcast(lambda: HostProbed(message.topic, message.lines))

    def _forward(self, message: Any) -> None:
        """Hand a worker's message to the screen on top (none while starting or closing)."""
        if self.screen_stack:
            self.screen.post_message(message)

    def _broadcast(self, make: Callable[[], Any]) -> None:
        """Hand a fresh copy to every screen: a run screen under a modal keeps drawing."""
        for screen in self.screen_stack:
            screen.post_message(make())

    # -- applying, through the detached worker -----------------------------------------
    def steps_up_to(self, step: str) -> tuple[str, ...]:
        """The pending steps that must run for `step` to run: every pending one up to it."""
        if self.plan is None:
            return ()
        names = []
        for sp in self.plan.steps:
            if sp.state == "pending" and sp.step in self.plan.selected:
                names.append(sp.step)
            elif sp.step == step == "gpu-test" and self.gpu_test_passed:
                names.append(sp.step)  # asked for on its own step: run the test again
            if sp.step == step:
                break
        return tuple(names)

    def options_for(self, steps: Iterable[str], **changes: Any) -> Options:
        return dataclasses.replace(self.options, steps=tuple(steps), **changes)

    def request_apply(self, step: Optional[str] = None) -> None:
        """Preview, ask, then apply: the steps up to `step` (or every pending step)."""
        if self.read_only:
            self.notify(
                "Read-only: restart gpuwizard with sudo to change anything.", severity="warning"
            )
            return
        if self.plan is None:
            self.notify("The plan is not ready yet.", severity="warning")
            return
        steps = self.steps_up_to(step or self.plan.steps[-1].step)
        if not steps:
            self.notify("Nothing to apply: every step up to here is done or blocked.")
            return
        from gpuwizard.tui.screens.diff_confirm import DiffConfirmScreen

        def chosen(result: Optional[tuple[Options, str]]) -> None:
            if result is not None:
                options, digest = result
                self.options = dataclasses.replace(options, steps=self.options.steps)
                self.launch(options, digest)

        self.push_screen(DiffConfirmScreen(self.options_for(steps)), chosen)

    @work(
        thread=True,
        exclusive=True,
        group="launch",
        exit_on_error=False,
        description="Starting the detached worker",
    )
    def launch(self, options: Options, digest: str) -> None:
        argv = ["tui", *sys.argv[1:]]
        run_id = self.session.start_apply(digest, argv, options)
        self.call_from_thread(self.follow_run, run_id)

    def follow_run(self, run_id: str) -> None:
        """Show a run's live output and follow its events until it ends."""
        from gpuwizard.tui.screens.run import RunScreen

        self._start_watching(run_id, rollback=False)
        for screen in self.screen_stack:
            if isinstance(screen, RunScreen):
                self.pop_screen()
                break
        self.push_screen(RunScreen(run_id))
        self._follow(run_id)

    def _start_watching(self, run_id: str, rollback: bool) -> None:
        self.run_id = run_id
        self.run_events.clear()
        self.run_active = True
        self.run_rollback = rollback
        self.run_state = None
        self.running_step = ""
        self.refresh_run_status()

    @work(
        thread=True,
        exclusive=True,
        group="follow",
        exit_on_error=False,
        description="Following the worker's events",
    )
    def _follow(self, run_id: str) -> None:
        from textual.worker import get_current_worker

        me = get_current_worker()
        for batch in self.session.follow_batches(run_id, stop=lambda: me.is_cancelled):
            self.post_message(EngineBatch(run_id, batch))
        self.post_message(FollowEnded(run_id))

    def on_engine_event(self, message: EngineEvent) -> None:
        self.on_engine_batch(EngineBatch(message.run_id, [message.event]))

    def on_engine_batch(self, message: EngineBatch) -> None:
        events = message.events
        self.run_events.extend(events)
        last: Optional[RunState] = None
        for event in events:
            if isinstance(event, StepState):
                self.step_states[event.step] = event.state
                if event.state == "running":
                    self.running_step = event.step
                if event.step == "gpu-test":
                    self.gpu_test_passed = (
                        f"passed at {clock.hhmm()}" if event.state == "done" else ""
                    )
            elif isinstance(event, RunState):
                last = event
        if last is not None and message.run_id == self.run_id:
            self._run_state_changed(last)
        self._broadcast(lambda: EngineBatch(message.run_id, events))
        if last is not None or any(isinstance(e, StepState) for e in events):
            self.refresh_run_status()

    def on_follow_ended(self, message: FollowEnded) -> None:
        if message.run_id == self.run_id and self.run_active:
            self.run_active = False
            self.refresh_run_status()
            self.replan()
        self._broadcast(lambda: FollowEnded(message.run_id, message.error))

    # -- the run in progress, on every screen -------------------------------------------
    def _run_state_changed(self, state: RunState) -> None:
        """Say every change of the run's state, once (a replay says only the latest)."""
        before = self.run_state
        self.run_state = state
        if before is not None and before.state == state.state:
            return
        run = state.run_id
        if state.state == "awaiting-confirmation":
            self.notify(
                "Docker runs with the new settings. Keep them? K keep · R revert",
                title=f"Run {run}",
                severity="warning",
                timeout=6,
            )
            self._arm_status_timer()
        elif state.state == "finished":
            kept = run in self.kept or "kept" in state.detail
            self.notify(
                "Finished: the changes are kept." if kept else "Finished.",
                title=f"Run {run}",
            )
        elif state.state == "auto-reverted":
            why = (
                "it was not kept"
                if "not kept" in state.detail
                else "nobody confirmed it before the deadline"
            )
            self.notify(
                f"Rolled back at {clock.hhmm()} because {why}; the plan is read again.",
                title=f"Run {run}",
                severity="warning",
                timeout=15,
            )
        elif state.state == "rolled-back":
            self.notify(f"Rolled back. {state.detail}".strip(), title=f"Run {run}")
        elif state.state in ("failed", "refused", "interrupted"):
            self.notify(
                f"{state.state}: {state.detail}".strip(": "),
                title=f"Run {run}",
                severity="error" if state.state != "interrupted" else "warning",
                timeout=15,
            )
        if state.state in ENDED:
            self.run_active = False
            self._close_keep_dialogs()
            self._mark_seen(run)
            self.replan()

    def _mark_seen(self, run_id: str) -> None:
        self.session.mark_seen(run_id)

    def run_awaiting(self) -> bool:
        return (
            self.run_active
            and self.run_state is not None
            and self.run_state.state == "awaiting-confirmation"
            and (self.run_id or "") not in self.kept
        )

    def run_status_text(self) -> Optional[Content]:
        """The status line for the run in progress; None when nothing runs."""
        if not self.run_active or not self.run_id:
            return None
        from gpuwizard.steps.registry import TITLES

        if self.run_awaiting():
            deadline = self.run_state.deadline if self.run_state else None
            left = "" if deadline is None else f" — {max(0, int(deadline - clock.now()))} s"
            return Content.from_markup(
                "[$warning]? awaiting your confirmation$left[/] — [b]K[/b] keep · "
                "[b]R[/b] revert · [b]w[/b] watch",
                left=left,
            )
        if (self.run_id or "") in self.kept and self.run_state is not None:
            what = "kept; finishing"
        else:
            verb = "rolling back" if self.run_rollback else "applying"
            step = TITLES.get(self.running_step, self.running_step)
            what = f"{verb}: {step}" if step else verb
        return Content.from_markup(
            "[$accent]▶ run $run $what[/] — [b]w[/b] watch", run=self.run_id, what=what
        )

    def refresh_run_status(self) -> None:
        from gpuwizard.tui.widgets.run_status import RunStatusLine

        for screen in self.screen_stack:
            for line in screen.query(RunStatusLine):
                line.refresh_status()
        if not self.run_awaiting() and self._status_timer is not None:
            self._status_timer.stop()
            self._status_timer = None

    def _arm_status_timer(self) -> None:
        if self._status_timer is None:
            self._status_timer = self.set_interval(1.0, self.refresh_run_status)

    def action_keep(self) -> None:
        """Keep the change of the run awaiting confirmation (from any screen)."""
        if not self.run_awaiting() or not self.run_id:
            self.notify("No run is waiting for you to keep it.")
            return
        self.keep_run(self.run_id)

    def keep_run(self, run_id: str) -> None:
        try:
            self.session.confirm(run_id)
        except (WizardError, OSError) as exc:
            self.notify(_error_text(exc), title="Not kept", severity="error")
            return
        self.kept.add(run_id)
        self.notify("Kept: the new settings stay.", title=f"Run {run_id}")
        self._close_keep_dialogs()
        self.refresh_run_status()

    def action_revert(self) -> None:
        """Revert the change of the run awaiting confirmation now (from any screen)."""
        if not self.run_awaiting() or not self.run_id:
            self.notify("No run is waiting for you to keep or revert it.")
            return
        self.revert_run(self.run_id)

    def revert_run(self, run_id: str) -> None:
        try:
            self.session.revert(run_id)
        except (WizardError, OSError) as exc:
            self.notify(_error_text(exc), title="Not reverted", severity="error")
            return
        self.kept.discard(run_id)
        self.notify("Reverting now: daemon.json back, Docker restarted.", title=f"Run {run_id}")
        self._close_keep_dialogs()

    def _close_keep_dialogs(self) -> None:
        from gpuwizard.tui.screens.keep_change import KeepChangeScreen

        if isinstance(self.screen, KeepChangeScreen):
            self.screen.dismiss(None)

    def action_watch_run(self) -> None:
        """Back to the run screen of the run in progress (or the last one)."""
        from gpuwizard.tui.screens.run import RunScreen

        if not self.run_id:
            self.notify("No run to watch.")
            return
        if isinstance(self.screen, RunScreen):
            self.screen.offer_keep()
            return
        if isinstance(self.screen, ModalScreen):
            return
        for screen in self.screen_stack:
            if isinstance(screen, RunScreen) and screen.run_id == self.run_id:
                while self.screen is not screen:
                    self.pop_screen()
                screen.offer_keep()
                return
        self._replace_top(RunScreen(self.run_id, rollback=self.run_rollback))

    async def action_quit(self) -> None:
        """Quit; while a run is in progress, ask first and say that it goes on."""
        from gpuwizard.tui.screens.quit_during_run import QuitDuringRunScreen

        if isinstance(self.screen, QuitDuringRunScreen):
            self.exit(0)
            return
        if not self.run_active or not self.run_id:
            self.exit(0)
            return
        state = self.run_state.state if self.run_state else "in progress"

        def chosen(yes: Optional[bool]) -> None:
            if yes:
                self.exit(0)

        self.push_screen(QuitDuringRunScreen(self.run_id, state), chosen)

    def last_error(self) -> tuple[str, Optional[dict[str, Any]], list[str]]:
        """The failed step, its error and the log tail, from this run's events."""
        step = ""
        error: Optional[dict[str, Any]] = None
        for event in self.run_events:
            if isinstance(event, StepState) and event.state == "failed":
                step = event.step
            if isinstance(event, ActionEvent) and event.phase == "failed":
                step, error = event.step, event.error
        tail = [e.text for e in self.run_events if isinstance(e, LogLine)][-40:]
        if error is None:
            ends = [e for e in self.run_events if isinstance(e, RunState)]
            if ends and ends[-1].detail:
                error = {"cause": ends[-1].detail}
        return step, error, tail

    # -- start-up ---------------------------------------------------------------------
    @work(
        thread=True,
        exclusive=True,
        group="start-up",
        exit_on_error=False,
        description="Looking for a run in progress",
    )
    def check_start_up(self) -> None:
        active = None
        try:
            active = self.session.active_run()
        except (ImportError, OSError, WizardError):
            active = None  # an unreadable journal (not root) must not stop the start-up
        notice = None if active is not None else self.session.ended_unseen()
        if notice is not None:
            self.call_from_thread(
                self._tell_while_away, notice.run_id, notice.text, notice.severity
            )
        if active is not None:
            self.call_from_thread(self._offer_resume, active)
        elif self._check_root and self.host.facts.euid != 0:
            self.call_from_thread(self._offer_sudo)

    def _tell_while_away(self, run_id: str, text: str, severity: str) -> None:
        self.away_notice = text
        self.notify(text, title="While you were away", severity=severity, timeout=30)  # type: ignore[arg-type]
        self._mark_seen(run_id)

    def _offer_resume(self, run: Any) -> None:
        from gpuwizard.tui.screens.resume import ResumeScreen

        def chosen(choice: Optional[str]) -> None:
            if choice == "follow":
                self.follow_run(run.run_id)
            elif choice == "keep":
                self.follow_run(run.run_id)
                self.keep_run(run.run_id)
            elif choice == "revert":
                self.follow_run(run.run_id)
                self.revert_run(run.run_id)
            elif choice == "rollback":
                self.roll_back(run.run_id, None)

        self.push_screen(ResumeScreen(run), chosen)

    def _offer_sudo(self) -> None:
        from gpuwizard.tui.screens.not_root import NotRootScreen

        def chosen(choice: Optional[str]) -> None:
            if choice == "sudo":
                self.sudo_requested = True
                self.exit(0)
            else:
                self.read_only = True
                self.refresh_titles()

        self.push_screen(NotRootScreen(), chosen)

    def refresh_titles(self) -> None:
        from gpuwizard.tui.widgets.title_bar import TitleBar

        for screen in self.screen_stack:
            for bar in screen.query(TitleBar):
                title = getattr(screen, "screen_title", lambda: "")()
                bar.retitle(title, self.host_label, self.demo, self.read_only)

    # -- rollback ---------------------------------------------------------------------
    def roll_back(self, run_id: str, steps: Optional[set[str]]) -> None:
        """Roll back a run's changes (after the user saw them in the preview)."""
        self.notify(f"Starting the rollback of run {run_id}…", timeout=3)
        self._roll_back(run_id, steps)

    @work(
        thread=True,
        exclusive=True,
        group="rollback",
        exit_on_error=False,
        description="Rolling back",
    )
    def _roll_back(self, run_id: str, steps: Optional[set[str]]) -> None:
        """Hand the rollback to a detached, locked worker (like `gpuwizard rollback`), then
        follow its run: an SSH drop no longer stops a rollback halfway."""
        try:
            op = self.session.start_rollback([run_id], ["tui", "rollback", run_id], steps=steps)
        except WizardError as exc:
            self.call_from_thread(
                self.notify,
                f"{exc.cause} — {exc.remedy}",
                title=f"Roll back run {run_id}",
                severity="error",
                timeout=15,
            )
            return
        self.call_from_thread(self._follow_rollback, op)

    def _follow_rollback(self, op: str) -> None:
        """Show the rollback's own run (its events, its end) like an apply's."""
        from gpuwizard.tui.screens.run import RunScreen

        self._start_watching(op, rollback=True)
        self.push_screen(RunScreen(op, rollback=True))
        self._follow(op)

    # -- navigation -------------------------------------------------------------------
    def open_step(self, step: str) -> None:
        from gpuwizard.tui.screens.step import StepScreen

        self._replace_top(StepScreen(step))

    def _replace_top(self, screen: Screen[Any]) -> None:
        """Keep the stack shallow: overview at the bottom, one screen above it."""
        while len(self.screen_stack) > 2 and not isinstance(self.screen, ModalScreen):
            self.pop_screen()
        self.push_screen(screen)

    def action_overview(self) -> None:
        while len(self.screen_stack) > 2:
            self.pop_screen()

    def action_history(self) -> None:
        from gpuwizard.tui.screens.history import HistoryScreen

        self._replace_top(HistoryScreen())

    def action_help(self) -> None:
        from gpuwizard.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(type(self.screen)))

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand(
            "Apply", "Preview, then apply every pending step", lambda: self.request_apply(None)
        )
        yield SystemCommand(
            "Roll back", "Pick a past run and roll it back, after a preview", self.action_history
        )
        if self.run_awaiting():
            yield SystemCommand("Keep", "Keep the run's new Docker settings", self.action_keep)
            yield SystemCommand(
                "Revert", "Revert the run's Docker settings now", self.action_revert
            )
        if self.run_id:
            yield SystemCommand("Watch the run", "Back to the run's output", self.action_watch_run)
        yield SystemCommand("Help", "Every key of this screen", self.action_help)
        yield SystemCommand("GPU panel", "Show or hide the live GPU panel", self.action_toggle_gpu)
        yield SystemCommand("History", "Past runs, and rolling one back", self.action_history)
        yield SystemCommand("Re-plan", "Probe the host again", self.replan)
        from gpuwizard.steps.registry import TITLES

        for name in STEP_NAMES:
            yield SystemCommand(
                f"Step: {TITLES[name]}",
                f"Open the step {TITLES[name]} ({name})",
                lambda n=name: self.open_step(n),
            )

    # -- the GPU panel (dolphie's shape) ------------------------------------------------
    def action_toggle_gpu(self) -> None:
        self.gpu_visible = not self.gpu_visible
        for screen in self.screen_stack:
            setter = getattr(screen, "set_gpu_visible", None)
            if setter is not None:
                setter(self.gpu_visible)
        if self.gpu_visible:
            self.poll_gpu()
        else:
            if self._gpu_timer is not None:
                self._gpu_timer.stop()
                self._gpu_timer = None
            self.workers.cancel_group(self, "gpu")
            self.gpu_feed.stop_raw()

    def action_gpu_view(self) -> None:
        if not self.gpu_visible:
            self.action_toggle_gpu()
        self.gpu_raw_view = not self.gpu_raw_view
        if not self.gpu_raw_view:
            self.gpu_feed.stop_raw()
        self.poll_gpu()

    def _arm_gpu_timer(self) -> None:
        if self._gpu_timer is not None:
            self._gpu_timer.stop()
        self._gpu_timer = self.set_timer(GPU_PERIOD, self._gpu_tick) if self.gpu_visible else None

    def _gpu_tick(self) -> None:
        self._gpu_timer = None
        if not self.gpu_visible or not self.screen_stack:  # hidden, or the app is closing
            return
        if isinstance(self.screen, ModalScreen):
            self._arm_gpu_timer()  # paused while a modal is up; nothing is sampled
            return
        self.poll_gpu()

    @work(
        thread=True,
        exclusive=True,
        group="gpu",
        exit_on_error=False,
        description="Sampling the GPUs",
    )
    def poll_gpu(self) -> None:
        readings = self.gpu_feed.sample()
        raw = self.gpu_feed.raw_frame() if self.gpu_raw_view else None
        self.post_message(GpuSamples(readings, raw))

    def on_gpu_samples(self, message: GpuSamples) -> None:
        if not message.error:
            self.gpu_readings = list(message.readings)
            self.gpu_history.add(self.gpu_readings)
            self.gpu_raw = message.raw
        if self.gpu_visible:
            self._forward(GpuSamples(message.readings, message.raw, message.error))

    def on_unmount(self) -> None:
        self.gpu_feed.close()


def _planning_failed(error: Any) -> tuple[str, str]:
    """What the overview says when planning raised: unreadable as this user is no bug."""
    if isinstance(error, PermissionError):
        where = f" ({error.filename})" if getattr(error, "filename", None) else ""
        return (
            f"Part of the system cannot be read as this user{where}, so the plan is unknown.",
            "Restart gpuwizard with sudo to see every step.",
        )
    return f"Planning failed: {error!r}", "This is a bug in gpuwizard; please report it."


def _error_text(error: Any) -> str:
    if isinstance(error, WizardError):
        return f"{error.cause} — {error.remedy}"
    return str(error) or repr(error)


def _slow_link_environment() -> None:
    """Fewer frames, no animation, no smooth scroll: for high-latency or metered links."""
    os.environ["TEXTUAL_ANIMATIONS"] = "none"
    os.environ["TEXTUAL_SMOOTH_SCROLL"] = "0"
    os.environ["TEXTUAL_FPS"] = str(SLOW_LINK_FPS)
    import textual.constants
    import textual.screen

    textual.screen.UPDATE_PERIOD = 1 / SLOW_LINK_FPS  # type: ignore[misc]
    textual.constants.SMOOTH_SCROLL = False  # type: ignore[misc]


def run_app(
    host: Any,
    options: Options,
    journal: Any,
    *,
    demo: Optional[bool] = None,
    mouse: bool = True,
    slow_link: bool = False,
) -> int:
    """Run the wizard in this terminal; returns the exit status for the CLI.

    When the user asked to continue under sudo, re-executes gpuwizard under sudo after the
    app has given the terminal back.
    """
    if slow_link:
        _slow_link_environment()
    app = GpuWizardApp(host, options, journal, demo=demo, slow_link=slow_link)
    result = app.run(mouse=mouse)
    if app.sudo_requested:
        from gpuwizard.selfexec import python_argv

        # isolated: as root, the user's working directory must not be on sys.path
        argv = ["sudo", *python_argv(*sys.argv[1:])]
        os.execvp("sudo", argv)  # argv list; replaces this process
    return int(result or 0) if app.return_code is None else app.return_code


__all__ = ["GpuWizardApp", "run_app"]
