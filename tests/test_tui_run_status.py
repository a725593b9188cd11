"""Pilot tests at 80×24 of what a demanding user over SSH needs: the run in progress visible on
every screen and reachable again, every change of its state said, nothing lost under a dialog,
no silent quit mid-run, and what happened while the terminal was gone."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from gpuwizard.events import RunState, StepState, to_json
from gpuwizard.tui.app import GpuWizardApp
from gpuwizard.tui.messages import EngineEvent
from tests.test_tui_screens import LaunchRecorder, make_app, pilot_test, settle, text_of

RUN = "20260101T000000Z-abcdef"


class Engine(LaunchRecorder):
    """The worker's face-side API, recording keep and revert (the worker's tests do the rest)."""

    def __init__(self) -> None:
        super().__init__()
        self.confirmed: list[str] = []
        self.reverted: list[str] = []

    def confirm(self, journal: Any, run_id: str) -> None:
        self.confirmed.append(run_id)

    def revert(self, journal: Any, run_id: str) -> None:
        self.reverted.append(run_id)


def notices(app: GpuWizardApp) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications]


def status_line(app: GpuWizardApp) -> str:
    line: Any = app.screen.query_one("#run-status-line")
    return str(line.render()) if line.display else ""


async def awaiting(app: GpuWizardApp, pilot: Any, seconds: float = 90) -> None:
    app.follow_run(RUN)
    await settle(app, pilot)
    for event in (
        RunState(RUN, "running"),
        StepState("restart", "running"),
        StepState("restart", "done"),
        RunState(RUN, "awaiting-confirmation", "Keep them?", time.time() + seconds),
    ):
        app.post_message(EngineEvent(RUN, event))
    await settle(app, pilot)


@pilot_test
async def test_leaving_the_keep_dialog_then_keeping_from_the_status_line(tmp_path: Path) -> None:
    engine = Engine()
    app = make_app(tmp_path, engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await awaiting(app, pilot)
        assert type(app.screen).__name__ == "KeepChangeScreen"
        await pilot.press("escape")  # decide later
        await pilot.press("o")  # and wander off to the overview
        await settle(app, pilot)
        assert type(app.screen).__name__ == "OverviewScreen"
        line = status_line(app)
        assert "awaiting your confirmation" in line and "K keep" in line and "R revert" in line
        assert " s — " in line  # the seconds left
        await pilot.press("K")
        await settle(app, pilot)
        assert engine.confirmed == [RUN]
        assert any("Kept" in n for n in notices(app))
        app.post_message(EngineEvent(RUN, RunState(RUN, "finished", "kept")))
        await settle(app, pilot)
        assert status_line(app) == ""  # nothing runs any more
        assert any("Finished: the changes are kept" in n for n in notices(app))


@pilot_test
async def test_the_status_line_leads_back_to_the_keep_dialog(tmp_path: Path) -> None:
    engine = Engine()
    app = make_app(tmp_path, engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await awaiting(app, pilot)
        await pilot.press("escape", "h")
        await settle(app, pilot)
        assert type(app.screen).__name__ == "HistoryScreen"
        await pilot.press("w")  # watch: back to the run, and its question
        await settle(app, pilot)
        assert type(app.screen).__name__ == "KeepChangeScreen"
        await pilot.press("n")
        await settle(app, pilot)
        assert engine.reverted == [RUN]


@pilot_test
async def test_a_passed_deadline_is_said_and_the_plan_is_read_again(tmp_path: Path) -> None:
    app = make_app(tmp_path, engine=Engine())
    plans: list[Any] = []
    planner = app._planner

    def counting(host: Any, options: Any) -> Any:
        plans.append(options)
        return planner(host, options)

    app._planner = counting
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await awaiting(app, pilot, seconds=1)
        before = len(plans)
        app.post_message(
            EngineEvent(RUN, RunState(RUN, "auto-reverted", "not confirmed in time: rolled back"))
        )
        await settle(app, pilot)
        assert type(app.screen).__name__ == "RunScreen"  # the keep dialog is gone with it
        said = " ".join(notices(app))
        assert "Rolled back at" in said and "nobody confirmed it" in said
        assert len(plans) > before  # the overview no longer shows reverted steps as done
        assert status_line(app) == ""


@pilot_test
async def test_quitting_during_a_run_asks_and_says_the_run_goes_on(tmp_path: Path) -> None:
    app = make_app(tmp_path, engine=Engine())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        app.follow_run(RUN)
        await settle(app, pilot)
        app.post_message(EngineEvent(RUN, RunState(RUN, "running")))
        await settle(app, pilot)
        await pilot.press("q")
        await settle(app, pilot)
        assert type(app.screen).__name__ == "QuitDuringRunScreen"
        why = text_of(app, "#why")
        assert "gpuwizard attach" in why and "goes on" in why
        await pilot.press("n")
        await settle(app, pilot)
        assert type(app.screen).__name__ == "RunScreen"
        await pilot.press("ctrl+c")  # says the same
        await settle(app, pilot)
        assert type(app.screen).__name__ == "QuitDuringRunScreen"
        await pilot.press("y")
        await settle(app, pilot)
    assert app.return_code == 0


@pilot_test
async def test_plan_messages_reach_the_overview_under_the_not_root_dialog(
    tmp_path: Path,
) -> None:
    """A normal user: the probes cannot read everything; the overview must say so, not
    stay on 'planning (read-only)…' behind the dialog."""

    def unreadable(host: Any, options: Any) -> Any:
        raise PermissionError(13, "Permission denied", "/etc/docker/daemon.json")

    app = make_app(tmp_path, euid=1000)
    app._planner = unreadable
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        assert type(app.screen).__name__ == "NotRootScreen"
        await pilot.press("r")
        await settle(app, pilot)
        assert type(app.screen).__name__ == "OverviewScreen"
        steps = text_of(app, "#plan-steps")
        assert "planning" not in steps
        assert "cannot be read as this user" in steps and "/etc/docker/daemon.json" in steps
        assert "sudo" in steps
        assert "Ubuntu" in text_of(app, "#host-system")


def _awaiting_run(app: GpuWizardApp, deadline: float) -> Path:
    folder = app.journal.runs_dir / RUN
    writer = app.journal.start_run(["tui"], run_id=RUN)
    (folder / "request.json").write_text("{}")
    writer.append("awaiting-confirmation", {"deadline": deadline})
    app.journal.update_meta(RUN, worker_pid=os.getpid())
    with open(folder / "events.jsonl", "a") as fh:
        fh.write(to_json(RunState(RUN, "running")) + "\n")
        fh.write(to_json(RunState(RUN, "awaiting-confirmation", "Keep?", deadline)) + "\n")
    return folder


@pilot_test
async def test_the_resume_dialog_keeps_and_does_not_ask_again(tmp_path: Path) -> None:
    app = make_app(tmp_path)  # the real worker API on a run whose worker is this process
    folder = _awaiting_run(app, time.time() + 60)
    app.journal.acquire(RUN, ["tui"])  # alive: its worker (this test) holds the lock
    try:
        await _resume_keeps(app, folder)
    finally:
        app.journal.release()


async def _resume_keeps(app: GpuWizardApp, folder: Path) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        assert type(app.screen).__name__ == "ResumeScreen"
        keys = text_of(app, "#keys")
        assert "k keep" in keys and "r revert" in keys
        assert "roll it back" not in keys  # its worker still runs and holds the lock
        await pilot.press("k")
        for _ in range(20):
            await pilot.pause(0.05)
        assert (folder / "confirm").exists()
        assert type(app.screen).__name__ == "RunScreen"  # not the keep dialog again
        assert "kept" in status_line(app)


@pilot_test
async def test_after_a_reconnect_it_says_what_happened_while_away(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    folder = _awaiting_run(app, time.time() - 5)
    writer = app.journal.open_run(RUN)
    writer.append("end", {"status": "auto-reverted"})
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        said = " ".join(notices(app))
        assert f"Your run {RUN} was rolled back at" in said
        assert "because nobody confirmed it" in said
        assert (folder / "seen").exists()
    again = make_app(tmp_path)  # said once, not at every start
    async with again.run_test(size=(80, 24)) as pilot:
        await settle(again, pilot)
        assert not any("rolled back" in n for n in notices(again))


@pilot_test
async def test_the_apply_dialog_shows_the_impact_first_at_80x24(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("a")
        await settle(app, pilot)
        assert type(app.screen).__name__ == "DiffConfirmScreen"
        notes: Any = app.screen.query_one("#notes")
        impact = str(notes.render())
        assert impact.startswith("Impact")
        assert "live-restore" in impact
        region = notes.region
        assert region.height >= impact.count("\n") + 1 and region.bottom <= 24  # all on screen
        toggles = str(app.screen.query_one("#default-runtime").render())
        assert "[d]" in toggles


def worker_applies_every_step(app: GpuWizardApp) -> None:
    from gpuwizard import wizard
    from gpuwizard.options import Options
    from tests import tui_plans

    options = Options(steps=("repository", "packages", "daemon-config", "restart"))
    the_plan = tui_plans.planner(app.host, options)
    writer = app.journal.start_run(["test"], run_id=None)
    wizard.apply(app.host, options, the_plan, writer, steps=tui_plans.steps())
    writer.append("end", {"status": "finished"})


@pilot_test
async def test_the_finish_screen_says_what_changed_the_verdict_and_the_lines(
    tmp_path: Path,
) -> None:
    from gpuwizard.events import ActionEvent, LogLine

    engine = Engine()
    app = make_app(tmp_path, engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await awaiting(app, pilot)
        await pilot.press("y")  # keep
        await settle(app, pilot)
        worker_applies_every_step(app)  # what the worker did, for the plan read afterwards
        for event in (
            ActionEvent("daemon-config", "write", "done", "add the nvidia runtime"),
            StepState("gpu-test", "running"),
            LogLine("gpu-test", "GPU test: 3 of 3 passed"),
            StepState("gpu-test", "done"),
            RunState(RUN, "finished", "kept"),
        ):
            app.post_message(EngineEvent(RUN, event))
        await settle(app, pilot)
        await pilot.press("enter")
        await settle(app, pilot)
        assert type(app.screen).__name__ == "FinishScreen"
        assert "✓ GPU test: 3 of 3 passed" in text_of(app, "#verdict")
        shown = " ".join(str(s.render()) for s in app.screen.query("Static"))
        assert "add the nvidia runtime" in shown and "kept" in shown
        commands = text_of(app, "#commands")
        assert "docker run --rm --gpus all" in commands and "services:" in commands
        await pilot.press("c")
        assert app.clipboard == app.screen.commands  # type: ignore[attr-defined]
        await pilot.press("enter")
        await settle(app, pilot)
        assert type(app.screen).__name__ == "OverviewScreen"
        # the plan was read again; the test that just passed does not read as pending
        assert app.plan.step("gpu-test").state == "done"
        assert "passed at" in app.plan.step("gpu-test").reason


@pilot_test
async def test_the_overview_shows_the_run_s_step_states_not_the_plan_read_before_it(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path, engine=Engine())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        assert "○ pending  Restart Docker" in text_of(app, "#plan-steps")
        await awaiting(app, pilot)
        await pilot.press("escape")  # leave the keep dialog: decide later
        await settle(app, pilot)
        app.action_overview()
        await settle(app, pilot)
        assert type(app.screen).__name__ == "OverviewScreen"
        assert "✓ done     Restart Docker" in text_of(app, "#plan-steps")
        assert f"in run {RUN}" in text_of(app, "#plan-steps")
        assert "A run is going on" in text_of(app, "#plan-hint")  # not "everything is in place"


@pilot_test
async def test_a_notice_never_covers_the_status_line(tmp_path: Path) -> None:
    from textual.widgets._toast import Toast

    app = make_app(tmp_path, engine=Engine())
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await settle(app, pilot)
        await awaiting(app, pilot)  # notifies "Docker runs with the new settings…"
        await pilot.press("escape")  # leave the keep dialog: the status line says it now
        await settle(app, pilot)
        app.notify("a second notice, while the first is still up", timeout=10)
        await pilot.pause(0.3)
        line: Any = app.screen.query_one("#run-status-line")
        assert line.display and "awaiting your confirmation" in status_line(app)
        toasts = list(app.screen.query(Toast))
        assert toasts, "the notices were not shown"
        for toast in toasts:
            assert not toast.region.overlaps(line.region), (toast.region, line.region)
