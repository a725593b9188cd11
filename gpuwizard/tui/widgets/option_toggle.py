"""A checkbox whose state reads without colour: `x` when on, blank when off."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Checkbox


class OptionToggle(Checkbox):
    """Textual's Checkbox draws `X` either way and tells on from off by colour alone."""

    def render(self) -> Content:
        # Checkbox reads BUTTON_INNER when it draws; an instance attribute overrides the class's
        self.BUTTON_INNER = "x" if self.value else " "
        return super().render()
