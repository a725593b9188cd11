"""80×24 first (issue 16, item 2): nothing a user must read is cut off, keyboard only.

Demo mode, the real app and steps on the recorded H200 (its nvidia-smi frame replayed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gpuwizard.demo import ROOT_ENV, demo_host
from gpuwizard.journal import Journal
from gpuwizard.options import Options
from gpuwizard.tui.app import GpuWizardApp
from gpuwizard.tui.widgets.fact_list import FactList
from gpuwizard.tui.widgets.gpu_panel import GpuPanel
from tests.test_tui_screens import pilot_test, settle


@pytest.fixture(autouse=True)
def demo_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(ROOT_ENV, str(tmp_path / "demo"))
    return tmp_path / "demo"


def demo_app() -> GpuWizardApp:
    host = demo_host()
    return GpuWizardApp(host, Options(), Journal(host.path("/var/lib/gpuwizard")), demo=True)


async def planned(app: GpuWizardApp, pilot: Any) -> None:
    for _ in range(200):
        await settle(app, pilot)
        if app.plan is not None:
            return
        await pilot.pause(0.05)
    raise AssertionError("no plan")


def screen_text(app: GpuWizardApp) -> list[str]:
    """The screen as a terminal shows it, one string a row (the compositor's strips)."""
    return [
        "".join(seg.text for seg in strip)
        for strip in app.screen._compositor.render_strips()  # type: ignore[attr-defined]
    ]


def footer(app: GpuWizardApp) -> str:
    return screen_text(app)[-1]


@pilot_test
async def test_below_100_columns_the_step_list_collapses_to_glyphs() -> None:
    app = demo_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await planned(app, pilot)
        steps: Any = app.screen.query_one("#steps")
        assert steps.size.width <= 3
        rows = screen_text(app)
        assert rows[1].startswith("▸✓ ▕") and "Toolkit repository" not in rows[2][:20]
        assert "○ pending  Toolkit repository" in "\n".join(rows)  # named in the body
    app = demo_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await planned(app, pilot)
        assert app.screen.query_one("#steps").size.width >= 20
        assert "○ Toolkit repository" in screen_text(app)[2]


@pilot_test
async def test_every_screen_keeps_q_quit_in_its_footer_at_80_and_at_60_columns() -> None:
    for size in ((80, 24), (60, 20)):
        app = demo_app()
        async with app.run_test(size=size) as pilot:
            await planned(app, pilot)
            assert "q Quit" in footer(app), (size, footer(app))
            await pilot.press("down", "down", "down", "down", "enter")  # daemon.json's step
            await settle(app, pilot)
            assert type(app.screen).__name__ == "StepScreen"
            assert "q Quit" in footer(app), (size, footer(app))
            await pilot.press("h")
            await settle(app, pilot)
            assert type(app.screen).__name__ == "HistoryScreen"
            assert "q Quit" in footer(app), (size, footer(app))
            assert all(len(row) <= size[0] for row in screen_text(app))


@pilot_test
async def test_the_raw_nvidia_smi_view_fits_80_columns_and_shows_the_process_list() -> None:
    app = demo_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await planned(app, pilot)
        await pilot.press("g", "v")
        panel = app.screen.query_one(GpuPanel)
        for _ in range(60):
            await pilot.pause(0.1)
            if any("Processes:" in line for line in panel.plain_lines):
                break
        text = "\n".join(screen_text(app))
        assert "CUDA Version: 13.0" in text and "Volatile Uncorr. ECC" in text
        assert "python3" in text and "1130MiB" in text  # the process list, at the bottom
        assert "q Quit" in footer(app)
    app = demo_app()
    async with app.run_test(size=(200, 60)) as pilot:
        await planned(app, pilot)
        await pilot.press("g", "v")
        panel = app.screen.query_one(GpuPanel)
        for _ in range(60):
            await pilot.pause(0.1)
            if any("python3" in line for line in panel.plain_lines):
                break
        assert panel.size.height >= len(panel.plain_lines) > 14  # not capped at 14 rows
        assert "python3" in "\n".join(screen_text(app))


@pilot_test
async def test_at_60_by_20_the_gpu_gauges_keep_every_number() -> None:
    app = demo_app()
    async with app.run_test(size=(60, 20)) as pilot:
        await planned(app, pilot)
        await pilot.press("g")
        panel = app.screen.query_one(GpuPanel)
        for _ in range(60):
            await pilot.pause(0.1)
            if any("°C" in line for line in panel.plain_lines):
                break
        gauge = next(line for line in panel.plain_lines if "H200" in line)
        assert len(gauge) <= 60 and gauge.rstrip().endswith("W"), gauge
        assert all(len(line) <= 60 for line in panel.plain_lines), panel.plain_lines


def test_fact_values_wrap_under_themselves() -> None:
    facts = FactList()
    facts.set_facts([("runtimes", "io.containerd.runc.v2, runc, nvidia, crun, youki"), ("a", "b")])
    lines = [line.plain for line in facts.lines(30)]
    assert lines[0].startswith("runtimes io.containerd")
    assert lines[1].startswith(" " * 9) and lines[1].strip()  # the continuation, indented
    assert lines[-1] == "a        b"


@pilot_test
async def test_a_long_failure_cause_is_readable_to_its_end() -> None:
    from gpuwizard.tui.screens.failure import FailureScreen

    cause = (
        "PermissionError(13, 'Permission denied') writing "
        + "/etc/docker/" * 12
        + "daemon.json: the file is immutable (chattr +i) END-OF-CAUSE"
    )
    app = demo_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await planned(app, pilot)
        app.push_screen(
            FailureScreen("20260101T000000Z-abcdef", "daemon-config", {"cause": cause}, ["x"])
        )
        await settle(app, pilot)
        why: Any = app.screen.query_one("#why")
        why.scroll_end(animate=False)
        await settle(app, pilot)
        assert "END-OF-CAUSE" in "\n".join(screen_text(app))
        assert "q Quit" in footer(app) or "Close" in footer(app)


def test_the_history_table_s_steps_fit() -> None:
    from gpuwizard.tui.screens.history import STEPS_WIDTH, short_steps

    names = ["repository", "packages", "cdi", "daemon-config", "restart", "gpu-test"]
    shown = short_steps(names)
    assert len(shown) <= STEPS_WIDTH and shown.startswith("repository") and " +" in shown, shown
    assert short_steps(["restart"]) == "restart"
