"""Pilot tests of each screen at 80×24: what a person sees and what each key does."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest

pytest.importorskip("textual")

from textual.worker import WorkerCancelled  # noqa: E402

from gpuwizard.events import ActionEvent, LogLine, Progress, RunState, StepState  # noqa: E402
from gpuwizard.journal import Journal  # noqa: E402
from gpuwizard.options import Options  # noqa: E402
from gpuwizard.tui.app import GpuWizardApp  # noqa: E402
from gpuwizard.tui.gpu_feed import GpuReading  # noqa: E402
from gpuwizard.tui.messages import EngineEvent, PlanReady  # noqa: E402,F401
from tests import tui_plans  # noqa: E402

H200 = GpuReading(
    0,
    "NVIDIA H200",
    util=0.0,
    mem_used=0.0,
    mem_total=143771.0,
    temp=31.0,
    power=76.0,
    power_limit=700.0,
)
BUSY = GpuReading(
    0,
    "NVIDIA H200",
    util=97.0,
    mem_used=80000.0,
    mem_total=143771.0,
    temp=58.0,
    power=612.0,
    power_limit=700.0,
    processes=((4242, "python3", 80000.0),),
)


def pilot_test(fn: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async pilot test on its own event loop (no pytest plugin needed)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kw: Any) -> None:
        asyncio.run(fn(*args, **kw))

    return wrapper


def make_app(tmp_path: Path, euid: int = 0, feed: Any = None, **kw: Any) -> GpuWizardApp:
    root = tui_plans.make_root(tmp_path)
    host = tui_plans.pinned_host(root, euid=euid)
    journal = Journal(root / "var/lib/gpuwizard")
    return GpuWizardApp(
        host,
        Options(),
        journal,
        planner=tui_plans.planner,
        gpu_feed=feed or tui_plans.ReadingsFeed([[H200]]),
        **kw,
    )


def text_of(app: GpuWizardApp, selector: str) -> str:
    widget: Any = app.screen.query_one(selector)
    return str(widget.render())


async def settle(app: GpuWizardApp, pilot: Any) -> None:
    """Let the probes and previews finish; the follow worker runs as long as its run does."""
    for _ in range(3):
        others = [w for w in app.workers if w.group != "follow"]
        if others:  # an empty list would mean "every worker"
            with contextlib.suppress(WorkerCancelled):  # a re-plan replaced an older one
                await app.workers.wait_for_complete(others)
        await pilot.pause()


@pilot_test
async def test_overview_appears_at_once_then_fills_in_from_the_probes(tmp_path: Path) -> None:
    messages: list[Any] = []
    probes_may_finish = threading.Event()

    def slow_planner(host: Any, options: Options) -> Any:
        assert probes_may_finish.wait(10)
        return tui_plans.planner(host, options)

    app = make_app(tmp_path)
    app._planner = slow_planner
    async with app.run_test(size=(80, 24), message_hook=messages.append) as pilot:
        await pilot.pause()
        # the screen is up and usable while the probes still run
        assert "planning" in text_of(app, "#plan-steps")
        assert "Ubuntu 24.04.2 LTS" in text_of(app, "#host-system")
        probes_may_finish.set()
        await settle(app, pilot)
        assert [m for m in messages if isinstance(m, PlanReady)]
        steps = text_of(app, "#plan-steps")
        assert "✓ done" in steps and "NVIDIA driver" in steps
        assert "○ pending" in steps and "Toolkit repository" in steps
        assert "Ubuntu 24.04.2 LTS" in text_of(app, "#host-system")
        gpu = text_of(app, "#host-gpu")
        assert "NVIDIA H200" in gpu and "580.159.04" in gpu and "Docker 27.5.1" in gpu


@pilot_test
async def test_each_step_shows_what_it_found_and_what_it_will_change(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("down", "down", "down", "down", "enter")
        await settle(app, pilot)
        assert type(app.screen).__name__ == "StepScreen"
        assert app.screen.step == "daemon-config"  # type: ignore[attr-defined]
        assert "27.5.1" in text_of(app, "#step-facts")
        assert "add the nvidia runtime" in text_of(app, "#step-actions")
        diff = text_of(app, "#step-diffs")
        assert '+  "runtimes": {' in diff and "/etc/docker/daemon.json" in diff
        await pilot.press("n")
        await settle(app, pilot)
        assert app.screen.step == "restart"  # type: ignore[attr-defined]
        assert "live-restore" in text_of(app, "#step-warnings")
        await pilot.press("p", "p")
        await settle(app, pilot)
        assert app.screen.step == "packages"  # type: ignore[attr-defined]


@pilot_test
async def test_daemon_json_toggles_replan_and_update_the_diff_before_anything_is_written(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path)
    daemon_json = app.host.path("/etc/docker/daemon.json")
    before = daemon_json.read_bytes()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        app.open_step("daemon-config")
        await settle(app, pilot)
        await pilot.press("a")
        await settle(app, pilot)
        assert type(app.screen).__name__ == "DiffConfirmScreen"
        diff = text_of(app, "#diffs")
        assert '"default-runtime"' not in diff
        await pilot.press("d")
        await settle(app, pilot)
        assert '+  "default-runtime": "nvidia"' in text_of(app, "#diffs")
        await pilot.press("c")
        await settle(app, pilot)
        assert '+  "features": {' in text_of(app, "#diffs")
        await pilot.press("n")
        await settle(app, pilot)
        assert type(app.screen).__name__ == "StepScreen"
    assert daemon_json.read_bytes() == before


class LaunchRecorder:
    """Records what the app asks the worker to do (the worker's own tests cover the rest)."""

    def __init__(self) -> None:
        self.launched: list[tuple[Options, str]] = []
        self.ended = threading.Event()  # the test posts the events itself

    def launch(
        self,
        host: Any,
        options: Options,
        digest: str,
        journal: Any,
        argv: list[str],
        demo: bool = False,
        fresh: Any = None,
    ) -> str:
        self.launched.append((options, digest))
        return "20260101T000000Z-abcdef"

    def follow(self, journal: Any, run_id: str, stop: Any = None) -> Any:
        while not self.ended.wait(0.05):
            if stop is not None and stop():
                return
        yield from ()

    def active_run(self, journal: Any) -> Any:
        return None


@pilot_test
async def test_yes_hands_the_worker_exactly_the_previewed_plan(tmp_path: Path) -> None:
    engine = LaunchRecorder()
    app = make_app(tmp_path, engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        app.open_step("daemon-config")
        await settle(app, pilot)
        await pilot.press("a")
        await settle(app, pilot)
        await pilot.press("d")
        await settle(app, pilot)
        await pilot.press("y")
        await settle(app, pilot)
        assert type(app.screen).__name__ == "RunScreen"
    [(options, digest)] = engine.launched
    assert options.steps == ("repository", "packages", "daemon-config")
    assert options.set_default_runtime is True
    assert digest == tui_plans.planner(app.host, options).digest


@pilot_test
async def test_run_screen_draws_the_workers_events_as_they_come(tmp_path: Path) -> None:
    app = make_app(tmp_path, engine=LaunchRecorder())
    run_id = "20260101T000000Z-abcdef"
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        app.follow_run(run_id)
        await settle(app, pilot)
        for event in (
            RunState(run_id, "running"),
            StepState("packages", "running"),
            LogLine("packages", "\x1b[32mSetting up nvidia-container-toolkit\x1b[0m"),
            Progress("packages", 0.5, "installing 2 of 4"),
            ActionEvent("packages", "install", "done", "install the toolkit"),
            StepState("packages", "done"),
        ):
            app.post_message(EngineEvent(run_id, event))
        await pilot.pause(0.3)
        log: Any = app.screen.query_one("#run-log")
        assert "Setting up nvidia-container-toolkit" in log.lines
        assert not any("\x1b" in line for line in log.lines)
        bar: Any = app.screen.query_one("#run-progress")
        assert bar.progress == 50
        assert app.step_states["packages"] == "done"
        app.post_message(EngineEvent(run_id, RunState(run_id, "finished")))
        await settle(app, pilot)
        assert "finished" in text_of(app, "#run-state")
        assert "Enter: continue" in text_of(app, "#run-state")


@pilot_test
async def test_failed_restart_shows_the_classified_cause_and_the_choices(tmp_path: Path) -> None:
    app = make_app(tmp_path, engine=LaunchRecorder())
    run_id = "20260101T000000Z-abcdef"
    error = {
        "cause": "Docker did not start: unknown or invalid runtime name: nvidia",
        "remedy": "daemon.json was restored; see the log.",
    }
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        app.follow_run(run_id)
        await settle(app, pilot)
        for event in (
            StepState("restart", "running"),
            LogLine("restart", "Job for docker.service failed", "err"),
            ActionEvent("restart", "restart-docker", "failed", "restart Docker", error),
            StepState("restart", "failed", error["cause"]),
            RunState(run_id, "failed", error["cause"]),
        ):
            app.post_message(EngineEvent(run_id, event))
        await settle(app, pilot)
        assert type(app.screen).__name__ == "FailureScreen"
        assert "Restart Docker failed" in text_of(app, "#what")
        assert "unknown or invalid runtime name" in text_of(app, "#cause")
        classified = text_of(app, "#classified")
        assert "fix" in classified or "→" in classified
        await pilot.press("escape")
        await settle(app, pilot)
        assert type(app.screen).__name__ == "RunScreen"


def applied_run(app: GpuWizardApp) -> str:
    """Apply the stand-in plan for real (files written, journaled) and return the run id."""
    from gpuwizard import wizard

    options = Options(steps=("repository", "packages", "daemon-config"))
    the_plan = tui_plans.planner(app.host, options)
    writer = app.journal.start_run(["test"], run_id=None)
    wizard.apply(app.host, options, the_plan, writer, steps=tui_plans.steps())
    writer.append("end", {"status": "finished"})
    return writer.run_id


@pilot_test
async def test_history_rolls_a_run_back_after_a_preview_of_what_is_restored(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    daemon_json = app.host.path("/etc/docker/daemon.json")
    before = daemon_json.read_bytes()
    run_id = applied_run(app)
    assert daemon_json.read_bytes() != before
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("h")
        await settle(app, pilot)
        assert type(app.screen).__name__ == "HistoryScreen"
        assert run_id in text_of(app, "#run-detail")
        await pilot.press("b")
        await settle(app, pilot)
        assert type(app.screen).__name__ == "RollbackPreviewScreen"
        preview = str(app.screen.query_one("#undo").query("Static").last().render())
        assert "add the nvidia runtime" in preview
        assert "add NVIDIA's toolkit repository" in preview
        await pilot.press("y")
        await settle(app, pilot)
        assert type(app.screen).__name__ == "RunScreen"
        assert "rolled-back" in text_of(app, "#run-state")
    assert daemon_json.read_bytes() == before
    assert not app.host.path("/etc/apt/sources.list.d/nvidia-container-toolkit.list").exists()


@pilot_test
async def test_gpu_panel_toggles_with_g_and_stops_sampling_when_hidden(tmp_path: Path) -> None:
    feed = tui_plans.ReadingsFeed([[H200], [BUSY]])
    app = make_app(tmp_path, feed=feed)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        assert feed.calls == 0  # nothing is sampled while the panel is hidden
        await pilot.press("g")
        await settle(app, pilot)
        panel: Any = app.screen.query_one("#gpu")
        assert panel.display
        assert any("H200" in line for line in panel.plain_lines)
        await pilot.pause(1.3)
        await settle(app, pilot)
        assert feed.calls >= 2
        assert any("python3" in line for line in panel.plain_lines)
        await pilot.press("g")
        await settle(app, pilot)
        calls = feed.calls
        await pilot.pause(1.3)
        assert feed.calls == calls
        assert not panel.display


@pilot_test
async def test_not_root_offers_sudo_or_read_only(tmp_path: Path) -> None:
    app = make_app(tmp_path, euid=1000)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        assert type(app.screen).__name__ == "NotRootScreen"
        await pilot.press("r")
        await settle(app, pilot)
        assert app.read_only
        assert "read-only" in text_of(app, "#title")
        await pilot.press("a")  # apply all: refused, with a reason
        await settle(app, pilot)
        assert type(app.screen).__name__ == "OverviewScreen"
    app = make_app(tmp_path / "again", euid=1000)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("s")
        await settle(app, pilot)
    assert app.sudo_requested


@pilot_test
async def test_an_interrupted_run_is_the_first_thing_shown(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    run_id = applied_run(app)
    # make it look interrupted: no end record, its worker gone
    journal_file = app.journal.runs_dir / run_id / "journal.jsonl"
    lines = journal_file.read_text().splitlines()
    journal_file.write_text("\n".join(lines[:-1]) + "\n")
    app.journal.update_meta(run_id, worker_pid=999999)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        assert type(app.screen).__name__ == "ResumeScreen"
        await pilot.press("b")
        await settle(app, pilot)
        assert "rolled-back" in text_of(app, "#run-state")
    assert app.host.path("/etc/docker/daemon.json").read_text() == tui_plans.DAEMON_JSON


@pilot_test
async def test_help_lists_every_key_and_escape_closes_it(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert type(app.screen).__name__ == "HelpScreen"
        await pilot.press("escape")
        await pilot.pause()
        assert type(app.screen).__name__ == "OverviewScreen"
