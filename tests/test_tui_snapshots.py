"""Snapshots of every screen at 80×24 (pytest-textual-snapshot; `--snapshot-update` to accept).

Deterministic by construction: a sandbox host with pinned facts, stand-in steps with real file
actions, fixed run ids, GPU readings from a list.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pytest_textual_snapshot")

from textual.worker import WorkerCancelled  # noqa: E402

from gpuwizard.events import ActionEvent, LogLine, Progress, RunState, StepState  # noqa: E402
from gpuwizard.tui.messages import EngineEvent  # noqa: E402
from tests import tui_plans  # noqa: E402
from tests.test_tui_screens import BUSY, H200, LaunchRecorder, make_app  # noqa: E402

SIZE = (80, 24)
RUN = "20260101T120000Z-5a5a5a"


async def settle(pilot: Any) -> None:
    app = pilot.app
    for _ in range(3):
        others = [w for w in app.workers if w.group not in ("follow", "gpu")]
        if others:
            with contextlib.suppress(WorkerCancelled):
                await app.workers.wait_for_complete(others)
        await pilot.pause()


def applied(app: Any) -> None:
    """A finished run with a fixed id and start time, for the history screens."""
    from gpuwizard import wizard
    from gpuwizard.options import Options

    options = Options(steps=("repository", "packages", "daemon-config"))
    the_plan = tui_plans.planner(app.host, options)
    writer = app.journal.start_run(["apply"], run_id=RUN)
    app.journal.update_meta(RUN, started="2026-01-01T12:00:00")
    wizard.apply(app.host, options, the_plan, writer, steps=tui_plans.steps())
    writer.append("end", {"status": "finished"})


def test_overview(snap_compare: Any, tmp_path: Path) -> None:
    assert snap_compare(make_app(tmp_path), terminal_size=SIZE, run_before=settle)


def test_step_daemon_json(snap_compare: Any, tmp_path: Path) -> None:
    async def before(pilot: Any) -> None:
        await settle(pilot)
        pilot.app.open_step("daemon-config")
        await settle(pilot)

    assert snap_compare(make_app(tmp_path), terminal_size=SIZE, run_before=before)


def test_confirm_diff_with_default_runtime(snap_compare: Any, tmp_path: Path) -> None:
    async def before(pilot: Any) -> None:
        await settle(pilot)
        pilot.app.open_step("daemon-config")
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)

    assert snap_compare(make_app(tmp_path), terminal_size=SIZE, run_before=before)


def _post(app: Any, *events: Any) -> None:
    for event in events:
        app.post_message(EngineEvent(RUN, event))


def test_run_output(snap_compare: Any, tmp_path: Path) -> None:
    async def before(pilot: Any) -> None:
        await settle(pilot)
        pilot.app.follow_run(RUN)
        await settle(pilot)
        _post(
            pilot.app,
            RunState(RUN, "running"),
            StepState("packages", "running"),
            LogLine("packages", "Reading package lists..."),
            LogLine("packages", "\x1b[1mUnpacking nvidia-container-toolkit (1.17.8-1)\x1b[0m"),
            Progress("packages", 0.75, "Setting up libnvidia-container1"),
            ActionEvent("packages", "install-packages", "start", "install the toolkit"),
        )
        await pilot.pause(0.3)

    assert snap_compare(
        make_app(tmp_path, engine=LaunchRecorder()), terminal_size=SIZE, run_before=before
    )


def test_failure(snap_compare: Any, tmp_path: Path) -> None:
    async def before(pilot: Any) -> None:
        await settle(pilot)
        pilot.app.follow_run(RUN)
        await settle(pilot)
        error = {
            "cause": "Docker did not come back: unknown or invalid runtime name: nvidia",
            "remedy": "daemon.json was restored and Docker started on it.",
        }
        _post(
            pilot.app,
            StepState("restart", "running"),
            LogLine(
                "restart",
                "Job for docker.service failed because the control process exited with error code.",
                "err",
            ),
            ActionEvent("restart", "restart-docker", "failed", "restart Docker", error),
            StepState("restart", "failed", error["cause"]),
            RunState(RUN, "failed", error["cause"]),
        )
        await settle(pilot)

    assert snap_compare(
        make_app(tmp_path, engine=LaunchRecorder()), terminal_size=SIZE, run_before=before
    )


def test_history(snap_compare: Any, tmp_path: Path) -> None:
    app = make_app(tmp_path)
    applied(app)

    async def before(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("h")
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_rollback_preview(snap_compare: Any, tmp_path: Path) -> None:
    app = make_app(tmp_path)
    applied(app)

    async def before(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("h")
        await settle(pilot)
        await pilot.press("b")
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_not_root(snap_compare: Any, tmp_path: Path) -> None:
    assert snap_compare(make_app(tmp_path, euid=1000), terminal_size=SIZE, run_before=settle)


def test_gpu_panel(snap_compare: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gpuwizard.tui import app as tui_app

    monkeypatch.setattr(tui_app, "GPU_PERIOD", 3600.0)  # exactly one sample in the picture
    feed = tui_plans.ReadingsFeed([[BUSY]])
    app = make_app(tmp_path, feed=feed)
    app.gpu_history.add([H200] * 6 + [BUSY] * 3 + [H200] * 2)  # a fixed past minute
    for _ in range(11):
        app.gpu_history.add([H200 if _ % 3 else BUSY])

    async def before(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("g")
        for _ in range(50):
            if feed.calls:
                break
            await pilot.pause(0.05)
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_help(snap_compare: Any, tmp_path: Path) -> None:
    async def before(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)

    assert snap_compare(make_app(tmp_path), terminal_size=SIZE, run_before=before)
