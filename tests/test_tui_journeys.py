"""Two whole journeys through the app, with the real detached worker and a real dockerd.

The app runs under Textual's pilot at 80×24; the worker is the real `gpuwizard _worker`
process; Docker is the test suite's private dockerd, restarted for real, with the stand-in
NVIDIA hook on its PATH (the one stand-in the GPU-less CI needs).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from gpuwizard.events import StepState
from gpuwizard.host.system import Host
from gpuwizard.journal import Journal
from gpuwizard.tui.app import GpuWizardApp
from tests.dockerd import Dockerd, wizard_options
from tests.test_tui_screens import settle

pytestmark = pytest.mark.slow

USER_JSON = b'{\n  "log-level": "warn",\n  "max-concurrent-downloads": 3\n}\n'


async def wait_for_screen(app: GpuWizardApp, pilot: Any, name: str, timeout: float = 90) -> None:
    for _ in range(int(timeout * 10)):
        if type(app.screen).__name__ == name:
            return
        await pilot.pause(0.1)
    raise AssertionError(f"{name} never appeared; the app shows {type(app.screen).__name__}")


async def wait_for_state(app: GpuWizardApp, pilot: Any, *states: str, timeout: float = 90) -> str:
    for _ in range(int(timeout * 10)):
        screen: Any = app.screen
        state = getattr(screen, "state", "")
        if getattr(screen, "ended", False) and state in states:
            return str(state)
        await pilot.pause(0.1)
    raise AssertionError(f"the run never reached {states}")


def make_app(dockerd: Dockerd, tmp_path: Path, **kw: Any) -> GpuWizardApp:
    os.environ["GPUWIZARD_NO_SYSTEMD_RUN"] = "1"  # a plain detached process, on any CI
    options = wizard_options(dockerd, steps=("daemon-config", "restart", "gpu-test"), **kw)
    return GpuWizardApp(Host(), options, Journal(tmp_path / "state"), check_root=False)


def test_happy_path_through_daemon_json_and_a_kept_restart_in_the_app(
    dockerd: Dockerd, tmp_path: Path
) -> None:
    """The GPU test itself needs a GPU (or the NVML stand-in, which the detached worker's
    host cannot carry yet): on CI it is shown blocked, with the driver's reason."""
    dockerd.daemon_json.write_bytes(USER_JSON)
    app = make_app(dockerd, tmp_path)

    async def journey() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(app, pilot)
            assert app.step_states["daemon-config"] == "pending"
            app.open_step("gpu-test")  # the last step: `a` there applies the ones before it
            await settle(app, pilot)
            await pilot.press("a")  # preview daemon-config, restart and the GPU test
            await settle(app, pilot)
            assert type(app.screen).__name__ == "DiffConfirmScreen"
            await pilot.press("y")
            await wait_for_screen(app, pilot, "KeepChangeScreen")  # auto-revert is armed
            await pilot.press("y")
            assert await wait_for_state(app, pilot, "finished") == "finished"
            done = {
                e.step for e in app.run_events if isinstance(e, StepState) and e.state == "done"
            }
            assert {"daemon-config", "restart"} <= done
            gpu_test = app.plan.step("gpu-test")
            if gpu_test.state == "blocked":  # no GPU on this machine: said, not hidden
                assert "driver" in gpu_test.reason
            else:
                assert "gpu-test" in done

    asyncio.run(journey())
    written = json.loads(dockerd.daemon_json.read_bytes())
    assert written["runtimes"]["nvidia"]["path"] == "nvidia-container-runtime"
    assert written["log-level"] == "warn"  # the user's keys are kept
    assert "nvidia" in dockerd.client().info()["Runtimes"]


def test_failed_restart_is_rolled_back_and_explained_on_the_failure_screen(
    dockerd: Dockerd, tmp_path: Path
) -> None:
    dockerd.daemon_json.write_bytes(USER_JSON)
    # Docker refuses the new configuration: the restart fails while daemon.json names nvidia
    refuse = tmp_path / "restart-docker"
    real = " ".join(dockerd.restart_command())
    refuse.write_text(
        "#!/bin/sh\n"
        f"if grep -q nvidia {dockerd.daemon_json}; then\n"
        "  echo 'failed to start daemon: unknown or invalid runtime name: nvidia' >&2\n"
        "  exit 1\nfi\n"
        f"exec {real}\n"
    )
    refuse.chmod(0o755)
    app = make_app(dockerd, tmp_path, restart_command=[str(refuse)], docker_wait=10.0)

    async def journey() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(app, pilot)
            await pilot.press("a")
            await settle(app, pilot)
            await pilot.press("y")
            await wait_for_screen(app, pilot, "FailureScreen")
            await settle(app, pilot)  # the scrolled cause is mounted a tick after the screen
            screen: Any = app.screen
            assert screen.step == "restart"
            shown = str(screen.query_one("#cause").render())
            assert "restart" in shown.lower() or "docker" in shown.lower()
            await pilot.press("b")  # roll back the rest of the run, after a preview
            await settle(app, pilot)
            assert type(app.screen).__name__ == "RollbackPreviewScreen"
            await pilot.press("y")
            await settle(app, pilot)

    asyncio.run(journey())
    assert dockerd.daemon_json.read_bytes() == USER_JSON  # byte-exact
    assert dockerd.running() and dockerd.client().ping()
    run = Journal(tmp_path / "state").runs()[-1]
    assert run.pending_undo() == []
