"""Help generated from the live bindings (issue 16, item 8): each screen's and dialog's own
keys, Esc, Tab and scrolling, the screen it was opened from first. Keyboard only, 80×24."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gpuwizard.demo import ROOT_ENV
from gpuwizard.tui.screens.help import SCREENS, _load, _map
from tests.test_tui_layout import demo_app, planned
from tests.test_tui_screens import pilot_test, settle


@pytest.fixture(autouse=True)
def demo_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(ROOT_ENV, str(tmp_path / "demo"))
    return tmp_path / "demo"


def help_text(app: Any) -> str:
    return "\n".join(str(w.render()) for w in app.screen.query("Static"))


@pilot_test
async def test_help_from_a_step_lists_its_keys_first_then_every_dialog_s() -> None:
    app = demo_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await planned(app, pilot)
        await pilot.press("down", "enter")  # a step
        await settle(app, pilot)
        await pilot.press("question_mark")
        await settle(app, pilot)
        assert type(app.screen).__name__ == "HelpScreen"
        text = help_text(app)
        first = text.split("\n\n")[0]
        assert first.startswith("Here: a step")
        for line in ("esc", "Overview", "a ", "Apply…", "The previous step"):
            assert line in first, (line, first)
        assert "tab" in text and "shift+tab" in text and "pgdn" in text and "↑" in text
        assert "K " in text and "Keep" in text and "w " in text
        # every described key of every screen and dialog is on the page
        for _, where in SCREENS:
            for found in _map(_load(where)).key_to_bindings.values():
                for b in found:
                    if b.description and b.action not in ("screen.copy_text", "app.quit"):
                        assert (b.tooltip or b.description) in text, (where, b)
        await pilot.press("pagedown")  # it scrolls at once
        await settle(app, pilot)
        assert app.screen.query_one("#dialog").scroll_y > 0
        await pilot.press("escape")
        await settle(app, pilot)
        assert type(app.screen).__name__ == "StepScreen"
