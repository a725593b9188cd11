"""NO_COLOR and the Linux console (issue 16, item 10), and one glyph set for the CLI and the
app (item 8): the current step and the focused row carry a pointer glyph, not only a
background shade; TERM=linux gets ASCII. Keyboard only, 80×24, demo mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gpuwizard import cli, glyphs
from gpuwizard.demo import ROOT_ENV
from tests.test_tui_layout import demo_app, planned, screen_text
from tests.test_tui_screens import pilot_test, settle


@pytest.fixture(autouse=True)
def demo_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(ROOT_ENV, str(tmp_path / "demo"))
    return tmp_path / "demo"


def pointed_rows(app: Any) -> list[int]:
    return [i for i, row in enumerate(screen_text(app)) if row.startswith("▸")]


@pilot_test
async def test_under_no_color_the_focused_step_and_the_current_step_carry_a_pointer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = demo_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await planned(app, pilot)
        assert pointed_rows(app) == [1]  # the focused row: the first step
        await pilot.press("down", "down")
        await settle(app, pilot)
        assert pointed_rows(app) == [3]
        await pilot.press("enter")  # the packages step opens; the list points at it
        await settle(app, pilot)
        assert type(app.screen).__name__ == "StepScreen"
        assert pointed_rows(app) == [3]
        await pilot.press("h")
        await settle(app, pilot)
        assert type(app.screen).__name__ == "HistoryScreen"


@pilot_test
async def test_the_linux_console_gets_ascii(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "linux")
    app = demo_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await planned(app, pilot)
        await pilot.press("g")
        await settle(app, pilot)
        await pilot.pause(1.5)
        text = "\n".join(screen_text(app))
        assert "+ done     NVIDIA driver" in text and "o pending  Toolkit repository" in text
        for symbol in "✓○▶↺✗▕▁▂▃▄▅▆▇":
            assert symbol not in text, f"{symbol!r} on the Linux console:\n{text}"


def test_the_cli_and_the_app_draw_a_state_with_the_same_glyph(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from gpuwizard.tui import status

    for state in ("done", "pending", "blocked", "failed", "running", "skipped", "rolled-back"):
        assert status.glyph(state) == glyphs.glyph(state)
    cli.main(["--demo", "plan"])
    out = capsys.readouterr().out
    assert f" {glyphs.glyph('done')} NVIDIA driver" in out
    assert f" {glyphs.glyph('pending')} Toolkit repository" in out
    monkeypatch.setenv("TERM", "linux")
    cli.main(["--demo", "plan"])
    out = capsys.readouterr().out
    assert " + NVIDIA driver" in out and " o Toolkit repository" in out
