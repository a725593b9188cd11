"""Logs you can work with (issue 16, item 7), keyboard only at 80×24: `/` search with n / N,
`w` wrap, `s` save (into the state directory, path said), `c` copy (OSC 52), and the events
file's path on screen. Demo mode: the journal lives on the demo machine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gpuwizard.demo import ROOT_ENV, demo_host
from gpuwizard.events import LogLine, to_json
from gpuwizard.journal import Journal
from gpuwizard.options import Options
from gpuwizard.tui.app import GpuWizardApp
from gpuwizard.tui.screens.full_log import FullLogScreen
from tests.test_tui_screens import pilot_test, settle

RUN = "20260101T000000Z-abcdef"
LINES = [
    f"line {i}: apt says something long enough to wrap at eighty columns " * 2 for i in range(40)
]
LINES[7] = "E: Unable to locate package nvidia-container-toolkit"
LINES[31] = "E: Unable to locate package libnvidia-container1"


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GpuWizardApp:
    monkeypatch.setenv(ROOT_ENV, str(tmp_path / "demo"))
    host = demo_host()
    journal = Journal(host.path("/var/lib/gpuwizard"))
    folder = journal.runs_dir / RUN
    folder.mkdir(parents=True)
    (folder / "events.jsonl").write_text(
        "".join(to_json(LogLine("packages", text)) + "\n" for text in LINES)
    )
    return GpuWizardApp(host, Options(), journal, demo=True)


def shown(app: GpuWizardApp, selector: str) -> str:
    widget: Any = app.screen.query_one(selector)
    return str(widget.render())


async def opened(app: GpuWizardApp, pilot: Any) -> Any:
    await settle(app, pilot)
    app.push_screen(FullLogScreen(RUN))
    for _ in range(50):
        await settle(app, pilot)
        log: Any = app.screen.query_one("#full-log")
        if "Unable to locate" in log.text:
            return log
        await pilot.pause(0.05)
    raise AssertionError("the log never loaded")


@pilot_test
async def test_search_next_previous_and_the_events_path(app: GpuWizardApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        log = await opened(app, pilot)
        assert f"events: /var/lib/gpuwizard/runs/{RUN}/events.jsonl" in shown(app, "#log-path")
        await pilot.press("slash", *"unable", "enter")
        await settle(app, pilot)
        assert log.selection.start == (7, 3) and log.selected_text.lower() == "unable"
        assert "match 1 of 2" in shown(app, "#log-path")
        await pilot.press("n")
        assert log.selection.start == (31, 3)
        await pilot.press("n")  # wraps around
        assert log.selection.start == (7, 3)
        await pilot.press("N")
        assert log.selection.start == (31, 3)
        assert log.text.split("\n") == LINES  # nothing typed went into the log


@pilot_test
async def test_wrap_save_and_copy(app: GpuWizardApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        log = await opened(app, pilot)
        assert not log.soft_wrap
        await pilot.press("w")
        assert log.soft_wrap
        await pilot.press("s")
        await settle(app, pilot)
        saved = app.journal.runs_dir / RUN / "log.txt"
        assert saved.read_text().splitlines() == LINES
        assert oct(saved.stat().st_mode & 0o777) == "0o600"
        messages = [n.message for n in app._notifications]
        assert any(f"/var/lib/gpuwizard/runs/{RUN}/log.txt" in m for m in messages), messages
        await pilot.press("c")
        assert app.clipboard == "\n".join(LINES)
        await pilot.press("escape")
        await settle(app, pilot)
        assert not isinstance(app.screen, FullLogScreen)
