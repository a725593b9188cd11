"""Every key, generated from the live bindings: the screen help was opened from first, then
the keys that work everywhere, scrolling and focus, and each dialog's own keys.

Written out by hand, a help page drifts from the keys (it listed no Esc, no Tab, no log
keys); read from the BINDINGS that Textual dispatches, it cannot.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, ClassVar, Iterable, Optional

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import ScrollableContainer, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

# (title, "module:Class") of every screen and dialog, in the order a user meets them
SCREENS = (
    ("The overview", "gpuwizard.tui.screens.overview:OverviewScreen"),
    ("A step", "gpuwizard.tui.screens.step:StepScreen"),
    ("Before applying (the preview)", "gpuwizard.tui.screens.diff_confirm:DiffConfirmScreen"),
    ("A run", "gpuwizard.tui.screens.run:RunScreen"),
    ("Keep the change?", "gpuwizard.tui.screens.keep_change:KeepChangeScreen"),
    ("Done (the finish screen)", "gpuwizard.tui.screens.finish:FinishScreen"),
    ("When something failed", "gpuwizard.tui.screens.failure:FailureScreen"),
    ("History", "gpuwizard.tui.screens.history:HistoryScreen"),
    ("Roll back?", "gpuwizard.tui.screens.rollback_preview:RollbackPreviewScreen"),
    ("A full log", "gpuwizard.tui.screens.full_log:FullLogScreen"),
    ("A run was left going", "gpuwizard.tui.screens.resume:ResumeScreen"),
    ("Quit during a run?", "gpuwizard.tui.screens.quit_during_run:QuitDuringRunScreen"),
    ("Not root", "gpuwizard.tui.screens.not_root:NotRootScreen"),
)
FOOTNOTE = (
    "Nothing changes without a preview and a [b]y[/b]. The work runs in a detached worker: "
    "closing this terminal (or losing SSH) does not stop it; run gpuwizard again to "
    "follow it, keep it, or roll it back."
)


# Textual's scrolling bindings, by their descriptions: two rows instead of ten
_ARROWS = ("Scroll Up", "Scroll Down", "Scroll Left", "Scroll Right")
_JUMPS = ("Scroll Home", "Scroll End", "Page Up", "Page Down")
# on every screen, said once under "Everywhere"
_LISTED_ONCE = {"screen.copy_text", "app.quit"}


def _map(cls: Any) -> Any:
    """A class's bindings, its bases' merged in (as Textual dispatches them)."""
    from textual.binding import BindingsMap

    return getattr(cls, "_merged_bindings", None) or BindingsMap()


def _rows(cls: Any, app: Any, skip: set[tuple[str, str]]) -> list[tuple[str, str]]:
    """(keys, what they do) for each action of `cls`, its keys joined: `esc / q  Close`."""
    by_action: dict[tuple[str, str], list[str]] = {}
    for key, found in _map(cls).key_to_bindings.items():
        for b in found:
            text = b.tooltip or b.description
            if not text or (b.action, text) in skip or b.action in _LISTED_ONCE:
                continue
            shown = app.get_key_display(b) if app is not None else (b.key_display or key)
            keys = by_action.setdefault((b.action, text), [])
            if shown not in keys:
                keys.append(shown)
    return [(" / ".join(keys), text) for (_, text), keys in by_action.items()]


def _section(title: str, rows: list[tuple[str, str]]) -> Content:
    width = max((len(k) for k, _ in rows), default=0)
    lines = [Content.styled(title, "bold")]
    lines += [Content(f"  {keys.ljust(width)}  {text}") for keys, text in rows]
    return Content("\n").join(lines)


def help_sections(app: Any, origin: Optional[type] = None) -> list[Content]:
    """The help page, section by section, from the bindings the app and screens have now."""
    everywhere = {(b.action, b.tooltip or b.description) for b in _all(app)}
    scroll = _rows(ScrollableContainer, app, set())
    arrows = [k for k, text in scroll if text in _ARROWS]
    jumps = [k for k, text in scroll if text in _JUMPS]
    scroll = [
        (" ".join(arrows[:4]), "scroll a list, a log or a dialog"),
        (" ".join(jumps[:4]), "to the top, the end, a page up, a page down"),
    ]
    focus = _rows(Screen, app, set())
    sections = []
    screens = [(title, _load(where)) for title, where in SCREENS]
    if origin is not None:
        screens.sort(key=lambda item: item[1] is not origin)  # where help was asked, first
    first = screens[0]
    if origin is not None and first[1] is origin:
        sections.append(
            _section(f"Here: {first[0].lower()}", _rows(origin, app, everywhere | _focus()))
        )
        screens = screens[1:]
    app_rows = _rows(type(app), app, set()) if app is not None else []
    sections.append(_section("Everywhere", app_rows + [("ctrl+p", "command palette")]))
    sections.append(_section("Moving around", focus + scroll))
    for title, cls in screens:
        rows = _rows(cls, app, everywhere | _focus())
        if rows:
            sections.append(_section(title, rows))
    return sections


def _all(app: Any) -> Iterable[Binding]:
    if app is None:
        return []
    return [b for found in _map(type(app)).key_to_bindings.values() for b in found]


def _focus() -> set[tuple[str, str]]:
    return {
        (b.action, b.tooltip or b.description)
        for found in _map(Screen).key_to_bindings.values()
        for b in found
    }


def _load(where: str) -> type:
    module, _, name = where.partition(":")
    cls: type = getattr(importlib.import_module(module), name)
    return cls


class HelpScreen(ModalScreen[None]):
    """Escape or ? closes."""

    CSS_PATH = Path(__file__).with_suffix(".tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "close", "Close"),
    ]

    def __init__(self, origin: Optional[type] = None) -> None:
        super().__init__()
        self.origin = origin

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog"):
            parts = help_sections(self.app, self.origin)
            yield Static(Content("\n\n").join([*parts, Content.from_markup(FOOTNOTE)]))

    def on_mount(self) -> None:
        self.query_one("#dialog").focus()  # ↑ ↓ PgUp PgDn scroll it at once

    def action_close(self) -> None:
        self.dismiss(None)
