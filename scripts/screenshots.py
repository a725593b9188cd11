#!/usr/bin/env python3
"""Regenerate screenshots/*.svg from the real app at 80×24, in demo mode.

Demo mode is the real app, the real steps and the real detached worker, on the recorded H200
host (nothing on this machine changes). The output is byte-stable: screenshot mode freezes the
clock (gpuwizard.clock; run ids, times and deadlines read the same every time, in the worker
too), the time zone is UTC, and the GPU panel shows one fixed frame of the recorded H200
(ScreenshotGpuFeed). Run from the repository root:

    python scripts/screenshots.py            # every screen
    python scripts/screenshots.py overview   # some of them
    GPUWIZARD_SCREENSHOTS_OUT=/tmp/x python scripts/screenshots.py   # elsewhere
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
# GPUWIZARD_SCREENSHOTS_OUT: another folder (the stability test compares it with this one)
OUT = Path(os.environ.get("GPUWIZARD_SCREENSHOTS_OUT") or REPO / "screenshots")

from textual.worker import WorkerCancelled  # noqa: E402

SIZE = (80, 24)
FROZEN_AT = 1795947300.0  # 2026-11-29 10:15:00 UTC, the instant every screenshot is taken at


async def settle(app: Any, pilot: Any, delay: float = 0.0) -> None:
    for _ in range(3):
        others = [w for w in app.workers if w.group not in ("follow", "gpu")]
        if others:
            with contextlib.suppress(WorkerCancelled):  # a re-plan replaced an older one
                await app.workers.wait_for_complete(others)
        await pilot.pause()
    if delay:
        await pilot.pause(delay)


async def wait_for(app: Any, pilot: Any, screen: str, timeout: float = 60.0) -> None:
    for _ in range(int(timeout * 10)):
        if type(app.screen).__name__ == screen:
            return
        await pilot.pause(0.1)
    raise SystemExit(f"{screen} never appeared (at {type(app.screen).__name__})")


async def overview(app: Any, pilot: Any) -> None:
    await settle(app, pilot)


async def step_daemon_json(app: Any, pilot: Any) -> None:
    await settle(app, pilot)
    app.open_step("daemon-config")
    await settle(app, pilot)


async def confirm_diff(app: Any, pilot: Any) -> None:
    await step_daemon_json(app, pilot)
    await pilot.press("a")
    await settle(app, pilot)
    await pilot.press("d")
    await settle(app, pilot)
    changes: Any = app.screen.query_one("#changes")
    changes.scroll_to(y=changes.max_scroll_y, animate=False)
    await settle(app, pilot)


async def gpu_panel(app: Any, pilot: Any) -> None:
    await settle(app, pilot)
    await pilot.press("g")
    await settle(app, pilot, 5.0)


async def gpu_raw(app: Any, pilot: Any) -> None:
    await gpu_panel(app, pilot)
    await pilot.press("v")
    await settle(app, pilot, 2.5)


async def _apply_all(app: Any, pilot: Any) -> None:
    await settle(app, pilot)
    await pilot.press("a")
    await settle(app, pilot)
    await pilot.press("y")
    await wait_for(app, pilot, "KeepChangeScreen")


async def keep_change(app: Any, pilot: Any) -> None:
    await _apply_all(app, pilot)
    # a screen under a dialog is drawn as it was when the dialog came up, which depends on
    # how far the log had got: decide later, let the log catch up, then ask again (Enter)
    await pilot.press("escape")
    await steady(app, pilot)
    await pilot.press("enter")
    await wait_for(app, pilot, "KeepChangeScreen")


async def run_output(app: Any, pilot: Any) -> None:
    await _apply_all(app, pilot)
    await pilot.press("y")
    await wait_for(app, pilot, "RunScreen")
    await settle(app, pilot, 1.0)


async def history(app: Any, pilot: Any) -> None:
    await run_output(app, pilot)
    await pilot.press("h")
    await settle(app, pilot, 0.5)


async def rollback_preview(app: Any, pilot: Any) -> None:
    await history(app, pilot)
    await pilot.press("b")
    await settle(app, pilot)


async def failure(app: Any, pilot: Any) -> None:
    # the demo's own failure: the key no longer matches the fingerprint it was promised
    while app.plan is None:
        await settle(app, pilot, 0.1)
    app.options = app.options.__class__(
        **{**app.options.__dict__, "key_fingerprint": "C95B321B61E88C1809C4F759DDCAE044F796ECB0"}
    )
    app.replan()
    for _ in range(600):  # the replan runs in a worker; the step says failed once it is done
        await settle(app, pilot)
        if app.plan is not None and app.plan.step("repository").state == "failed":
            break
        await pilot.pause(0.1)
    app.open_step("repository")
    await settle(app, pilot)


async def failure_screen(app: Any, pilot: Any) -> None:
    """A failed restart, as the worker reports it (its events, replayed into the app)."""
    from gpuwizard.events import ActionEvent, LogLine, RunState, StepState
    from gpuwizard.tui.messages import EngineBatch

    await settle(app, pilot)
    run = "20261129T101500Z-5a5a5a"
    app.run_id = run
    from gpuwizard.tui.screens.run import RunScreen

    app.push_screen(RunScreen(run))
    await settle(app, pilot)
    error = {
        "cause": "Restarting Docker failed: unknown or invalid runtime name: nvidia",
        "remedy": "daemon.json was restored byte-exact and Docker started on it.",
    }
    app.post_message(
        EngineBatch(
            run,
            [
                StepState("restart", "running"),
                LogLine("restart", "$ systemctl restart docker"),
                LogLine(
                    "restart",
                    "Job for docker.service failed because the control process exited "
                    "with error code.",
                    "err",
                ),
                LogLine(
                    "restart",
                    "dockerd: failed to start daemon: unknown or invalid runtime name: nvidia",
                    "err",
                ),
                ActionEvent("restart", "restart-docker", "failed", "restart Docker", error),
                LogLine("restart", "undone: /etc/docker/daemon.json restored byte-exact", "info"),
                StepState("restart", "failed", error["cause"]),
                RunState(run, "failed", error["cause"]),
            ],
        )
    )
    await wait_for(app, pilot, "FailureScreen")
    await settle(app, pilot)


async def help_screen(app: Any, pilot: Any) -> None:
    await settle(app, pilot)
    await pilot.press("question_mark")
    await settle(app, pilot)


SCENES: dict[str, Callable[[Any, Any], Awaitable[None]]] = {
    "overview": overview,
    "step-daemon-json": step_daemon_json,
    "confirm-diff": confirm_diff,
    "gpu-panel": gpu_panel,
    "gpu-panel-nvidia-smi": gpu_raw,
    "keep-change": keep_change,
    "run-output": run_output,
    "history": history,
    "rollback-preview": rollback_preview,
    "step-blocked": failure,
    "failure": failure_screen,
    "help": help_screen,
}


async def shoot(name: str) -> Path:
    from gpuwizard.demo import demo_host
    from gpuwizard.journal import Journal
    from gpuwizard.options import Options
    from gpuwizard.tui.app import GpuWizardApp
    from gpuwizard.tui.gpu_feed import ScreenshotGpuFeed

    with tempfile.TemporaryDirectory() as folder:
        os.environ["GPUWIZARD_DEMO_ROOT"] = folder  # the detached worker finds the same one
        host = demo_host()
        journal = Journal(host.path("/var/lib/gpuwizard"))
        feed = ScreenshotGpuFeed(host)
        app = GpuWizardApp(
            host, Options(), journal, demo=True, gpu_feed=feed, gpu_history=feed.history
        )
        try:
            async with app.run_test(size=SIZE) as pilot:
                await SCENES[name](app, pilot)
                await steady(app, pilot)
                path = Path(app.save_screenshot(f"{name}.svg", str(OUT)))
        finally:
            tidy(journal)
        return path


async def steady(app: Any, pilot: Any, tries: int = 50) -> None:
    """Wait until two frames 0.3 s apart are the same: late events and layout passes land."""
    last = app.export_screenshot()
    for _ in range(tries):
        await pilot.pause(0.3)
        frame = app.export_screenshot()
        if frame == last:
            return
        last = frame
    raise SystemExit("the screen never settled (something on it still moves)")


def tidy(journal: Any, timeout: float = 60.0) -> None:
    """Revert a run the scene left awaiting confirmation and wait for its worker to end: with
    the clock frozen its deadline never comes, and its folder is about to be removed."""
    from gpuwizard import worker

    for run in journal.runs():
        if run.status() == "awaiting-confirmation":
            worker.revert(journal, run.run_id)
    until = time.monotonic() + timeout
    while time.monotonic() < until and any(
        r.status() in ("in-progress", "awaiting-confirmation") for r in journal.runs()
    ):
        time.sleep(0.2)


def main() -> int:
    from gpuwizard.clock import SCREENSHOT_ENV

    os.environ[SCREENSHOT_ENV] = repr(FROZEN_AT)  # inherited by every worker started
    os.environ["TZ"] = "UTC"
    time.tzset()
    # the same look whoever runs it: full colour, Unicode glyphs (NO_COLOR or TERM=linux in
    # the caller's environment would change every file)
    for name in ("NO_COLOR", "GPUWIZARD_ASCII", "TEXTUAL_COLOR_SYSTEM"):
        os.environ.pop(name, None)
    os.environ["TERM"] = "xterm-256color"
    OUT.mkdir(exist_ok=True)
    names = sys.argv[1:] or list(SCENES)
    sys.argv[1:] = []  # a run records its argv: the same whichever scenes were asked for
    for name in names:
        print(asyncio.run(shoot(name)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
