"""The six steps with their states: always visible on the left, navigable with the keys."""

from __future__ import annotations

from typing import Any, Optional

from textual.content import Content
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from gpuwizard.glyphs import pointer
from gpuwizard.options import STEP_NAMES
from gpuwizard.steps.registry import TITLES
from gpuwizard.tui.status import glyph

_COLOUR = {
    "done": "$success",
    "failed": "$error",
    "blocked": "$warning",
    "running": "$accent",
    "rolled-back": "$secondary",
}


class StepList(OptionList):
    """A list of the steps; Enter opens one. States come from the plan and from run events."""

    class Opened(Message):
        """The user chose a step to look at."""

        def __init__(self, step: str) -> None:
            super().__init__()
            self.step = step

    def __init__(self, current: Optional[str] = None, **kw: Any) -> None:
        self.glyphs_only = False  # the list collapsed on a narrow terminal
        self._pointed = current or ""
        super().__init__(*[Option(self._prompt(n, "planning"), id=n) for n in STEP_NAMES], **kw)
        self.states: dict[str, str] = {n: "planning" for n in STEP_NAMES}
        self.current = current

    def _prompt(self, step: str, state: str) -> Content:
        colour = _COLOUR.get(
            state, "$foreground-muted" if state in ("skipped", "planning") else "$foreground"
        )
        # the highlighted row (the current step, or the one the cursor is on) carries a
        # pointer: a background shade alone is lost under NO_COLOR and on the Linux console
        mark = pointer() if step == self._pointed else " "
        if self.glyphs_only:
            return Content.from_markup(f"$m[{colour}]$g[/]", m=mark, g=glyph(state))
        return Content.from_markup(f"$m[{colour}]$g[/] $t", m=mark, g=glyph(state), t=TITLES[step])

    def on_resize(self) -> None:
        """Collapsed to a few cells (app.tcss, below 100 columns): glyphs only, one a row."""
        glyphs_only = self.size.width < 10
        if glyphs_only != self.glyphs_only:
            self.glyphs_only = glyphs_only
            for step, state in self.states.items():
                self.replace_option_prompt(step, self._prompt(step, state))

    def on_mount(self) -> None:
        if self.current in STEP_NAMES:
            self.highlighted = STEP_NAMES.index(self.current)

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        before, self._pointed = self._pointed, event.option.id or ""
        for step in {before, self._pointed}:
            if step in self.states:
                self.replace_option_prompt(step, self._prompt(step, self.states[step]))

    def set_state(self, step: str, state: str) -> None:
        """Show a step's new state; a no-op (and no redraw) when it did not change."""
        if step not in self.states or self.states[step] == state:
            return
        if state == "skipped" and self.states[step] == "done":
            return  # a run had nothing to do there: it is still done
        self.states[step] = state
        self.replace_option_prompt(step, self._prompt(step, state))

    def set_states(self, states: dict[str, str]) -> None:
        for step, state in states.items():
            self.set_state(step, state)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id:
            self.post_message(self.Opened(event.option.id))
