"""Past runs from the journal and their steps; pick one and roll it back after a preview."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, ClassVar, Iterable, Optional

from textual import work
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widget import Widget
from textual.widgets import DataTable, Static

from gpuwizard.errors import WizardError
from gpuwizard.glyphs import pointer
from gpuwizard.tui.screens.base import WizardScreen
from gpuwizard.tui.screens.rollback_preview import undo_lines
from gpuwizard.tui.status import glyph

STEPS_WIDTH = 20  # the table's last column: 80 columns hold the pointer, run, status, changes, this


def short_steps(steps: list[str], width: int = STEPS_WIDTH) -> str:
    """`repository, packages +4`: as many step names as fit, then how many more (the detail
    under the table lists them all)."""
    if not steps:
        return "—"
    shown: list[str] = []
    for i, name in enumerate(steps):
        rest = len(steps) - i - 1
        candidate = ", ".join([*shown, name]) + (f" +{rest}" if rest else "")
        if len(candidate) > width and shown:
            break
        shown.append(name)
    more = len(steps) - len(shown)
    return ", ".join(shown) + (f" +{more}" if more else "")


class HistoryScreen(WizardScreen):
    """↑↓ pick a run · b roll it back · l its full log · Escape back."""

    CSS_PATH = Path(__file__).with_suffix(".tcss")
    TITLE_TEXT = "history"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("b", "rollback", "Roll back…"),
        Binding("l", "log", "Full log"),
        Binding("r", "reload", "Reload", show=False),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.runs: dict[str, Any] = {}

    def compose_body(self) -> Iterable[Widget]:
        table: DataTable[Any] = DataTable(cursor_type="row", zebra_stripes=False, id="runs")
        # the first column points at the cursor's row: seen without colour (NO_COLOR)
        table.add_column(" ", key="at", width=1)
        table.add_columns("run", "status", "changes", "steps")
        yield table
        with VerticalScroll(id="run-detail-scroll"):  # a run's undo list can be long
            yield Static(
                Content.styled("reading the journal…", "$foreground-muted"), id="run-detail"
            )

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()
        self.load()

    @work(
        thread=True,
        exclusive=True,
        group="history",
        exit_on_error=False,
        description="Reading the journal",
    )
    def load(self) -> None:
        try:
            runs = self.wizard.journal.runs()
        except WizardError as exc:
            self.app.call_from_thread(
                self._show_detail,
                Content.from_markup("[$error]✗ $c[/]\n→ $r", c=exc.cause, r=exc.remedy),
            )
            return
        self.app.call_from_thread(self._fill, runs)

    def _fill(self, runs: list[Any]) -> None:
        table = self.query_one(DataTable)
        table.clear()
        self.runs = {r.run_id: r for r in runs}
        for run in reversed(runs):  # newest first
            s = run.summary()
            table.add_row(
                " ",
                run.run_id,
                f"{glyph(s['status'])} {s['status']}",
                str(s["changes"]),
                short_steps(s["steps"]),
                key=run.run_id,
            )
        if not runs:
            self._show_detail(
                Content.styled("No runs yet: nothing has been changed.", "$foreground-muted")
            )
        else:
            self._show_run(runs[-1].run_id)

    def _show_detail(self, content: Content) -> None:
        self.query_one("#run-detail", Static).update(content)

    def _show_run(self, run_id: str) -> None:
        run = self.runs.get(run_id)
        if run is None:
            return
        s = run.summary()
        head = Content.styled(
            f"{run_id} · started {s['started']} · {' '.join(map(str, s['argv']))}"
            + (f"\nsteps: {', '.join(s['steps'])}" if s["steps"] else ""),
            "$foreground-muted",
        )
        lines = undo_lines(run)
        body = (
            Content("\n").join(lines)
            if lines
            else Content.styled("nothing left to undo", "$foreground-muted")
        )
        warnings = [Content.from_markup("[$warning]! $w[/]", w=w) for w in s["warnings"]]
        self._show_detail(Content("\n").join([head, body, *warnings]))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value:
            table = self.query_one(DataTable)
            for key in self.runs:
                with contextlib.suppress(Exception):  # a row gone in a reload
                    table.update_cell(key, "at", pointer() if key == event.row_key.value else " ")
            self._show_run(event.row_key.value)

    def _selected(self) -> Optional[Any]:
        table = self.query_one(DataTable)
        if not self.runs or table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.runs.get(key or "")

    def action_rollback(self) -> None:
        from gpuwizard.tui.screens.rollback_preview import RollbackPreviewScreen

        run = self._selected()
        if run is None:
            return
        if self.wizard.read_only:
            self.notify("Read-only: restart gpuwizard with sudo to roll back.", severity="warning")
            return

        def chosen(yes: Optional[bool]) -> None:
            if yes:
                self.wizard.roll_back(run.run_id, None)

        self.app.push_screen(RollbackPreviewScreen(run), chosen)

    def action_log(self) -> None:
        from gpuwizard.tui.screens.full_log import FullLogScreen

        run = self._selected()
        if run is not None:
            self.app.push_screen(FullLogScreen(run.run_id))

    def action_reload(self) -> None:
        self.load()
