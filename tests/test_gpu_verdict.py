"""The GPU test reads "passed", not "pending", once a kept run passed it: in the CLI's plan
and on a fresh start of the app (issue 16, item 6's last point). Demo mode: the real steps,
the real detached worker, the recorded H200."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gpuwizard import cli
from gpuwizard.demo import ROOT_ENV, demo_host
from gpuwizard.journal import Journal
from gpuwizard.options import Options
from gpuwizard.tui.app import GpuWizardApp
from tests.test_tui_screens import pilot_test, settle


@pytest.fixture
def applied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A demo machine on which `gpuwizard --demo apply --yes` ran every step and kept it."""
    monkeypatch.setenv(ROOT_ENV, str(tmp_path / "demo"))
    assert cli.main(["--demo", "apply", "--yes"]) == 0
    return tmp_path


def gpu_line(text: str) -> str:
    return next(line for line in text.splitlines() if "GPU test container" in line)


def test_the_cli_plan_says_passed_after_a_kept_run(
    applied: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    cli.main(["--demo", "plan"])
    line = gpu_line(capsys.readouterr().out)
    assert "done — passed at" in line, line
    assert "gpuwizard apply --step gpu-test" in line
    cli.main(["--demo", "status"])
    assert "pending" not in gpu_line(capsys.readouterr().out)


def test_after_a_rollback_the_gpu_test_is_pending_again(
    applied: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli.main(["--demo", "rollback", "--yes"])
    capsys.readouterr()
    cli.main(["--demo", "plan"])
    assert "pending" in gpu_line(capsys.readouterr().out)


@pilot_test
async def test_a_fresh_app_start_shows_the_gpu_test_passed(applied: Path) -> None:
    host = demo_host()
    app = GpuWizardApp(host, Options(), Journal(host.path("/var/lib/gpuwizard")), demo=True)
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(100):
            await settle(app, pilot)
            if app.plan is not None:
                break
            await pilot.pause(0.1)
        assert app.plan.step("gpu-test").state == "done"
        assert "passed at" in app.plan.step("gpu-test").reason
        steps: Any = app.screen.query_one("#plan-steps")
        assert "✓ done     GPU test container  passed at" in str(steps.render())
