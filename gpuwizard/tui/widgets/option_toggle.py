"""A checkbox whose state reads without colour: `x` when on, blank when off."""

from __future__ import annotations

from textual.widgets import Checkbox


class OptionToggle(Checkbox):
    """Textual's Checkbox draws `X` either way and tells on from off by colour alone."""

    @property  # type: ignore[override]
    def BUTTON_INNER(self) -> str:  # noqa: N802 - the name Checkbox reads
        return "x" if self.value else " "
