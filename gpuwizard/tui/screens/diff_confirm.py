"""The question before anything changes: every diff of the steps about to run, then y / n.

For daemon.json the two choices (`set_default_runtime`, `enable_cdi`) are toggles here: each
flip re-plans read-only and the diff updates, so what is confirmed is exactly what is written.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar, Optional

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Checkbox, Static

from gpuwizard.errors import WizardError
from gpuwizard.options import Options
from gpuwizard.steps.registry import TITLES
from gpuwizard.tui.widgets.diff_view import DiffView
from gpuwizard.tui.widgets.option_toggle import OptionToggle

Result = Optional[tuple[Options, str]]


class DiffConfirmScreen(ModalScreen[Result]):
    """Dismisses with (options, plan digest) on y, None on n; the worker refuses a stale digest."""

    CSS_PATH = Path(__file__).with_suffix(".tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "confirm", "Yes, apply"),
        Binding("n,escape", "cancel", "No"),
        Binding("d", "flip('default-runtime')", "Default runtime", show=False),
        Binding("c", "flip('cdi')", "CDI", show=False),
    ]

    def __init__(self, options: Options) -> None:
        super().__init__()
        self.options = options
        self.plan: Any = None

    def compose(self) -> ComposeResult:
        steps = ", ".join(TITLES.get(s, s) for s in self.options.steps)
        with Vertical(id="dialog"):
            yield Static(Content.from_markup("[b]Apply: $steps?[/b]", steps=steps), id="ask")
            if "daemon-config" in self.options.steps:
                with Horizontal(id="toggles"):
                    # Content, not a str: a str label is markup, and `[d]` would vanish
                    yield OptionToggle(
                        Content("nvidia as default runtime [d]"),
                        self.options.set_default_runtime,
                        id="default-runtime",
                        compact=True,
                    )
                    yield OptionToggle(
                        Content("enable CDI [c]"), self.options.enable_cdi, id="cdi", compact=True
                    )
            # the impact first (containers stopped, Docker restarted, auto-revert), then what
            # each step does, then the diffs; all of it scrolls, so nothing is cut at 80×24
            with VerticalScroll(id="changes"):
                yield Static("", id="notes")
                yield Static(
                    Content.styled("previewing (read-only)…", "$foreground-muted"), id="actions"
                )
                yield DiffView(id="diffs")
            # y is offered only once the preview is on screen: a key pressed earlier would
            # confirm nothing (and looked accepted when the line was there from the start)
            yield Static(
                Content.from_markup("[b]n[/b] cancel   previewing: [b]y[/b] comes next"),
                id="keys",
            )

    def on_mount(self) -> None:
        self.preview(self.options)
        self.query_one("#changes").focus()

    @work(
        thread=True,
        exclusive=True,
        group="preview",
        exit_on_error=False,
        description="Previewing the changes (read-only)",
    )
    def preview(self, options: Options) -> None:
        try:
            plan = self.app.plan_now(options)  # type: ignore[attr-defined]
        except WizardError as exc:
            self.app.call_from_thread(self._show_error, exc.cause, exc.remedy)
            return
        self.app.call_from_thread(self._show_plan, options, plan)

    def _show_error(self, cause: str, remedy: str) -> None:
        self.plan = None
        self.query_one("#keys", Static).update(Content.from_markup("[b]n[/b] cancel"))
        self.query_one("#actions", Static).update(
            Content.from_markup("[$error]✗ $c[/]\n→ $r", c=cause, r=remedy)
        )

    def _show_plan(self, options: Options, plan: Any) -> None:
        self.options, self.plan = options, plan
        lines: list[Content] = []
        diffs: list[Any] = []
        notes: list[Content] = []
        ranked: list[tuple[int, Content]] = []
        revert_noted = False
        for sp in plan.steps:
            if sp.step not in plan.selected:
                continue
            lines.append(
                Content("").join(
                    [
                        Content.styled(TITLES.get(sp.step, sp.title), "bold"),
                        Content.styled(f"  {sp.state}", "$foreground-muted"),
                    ]
                )
            )
            if sp.state in ("blocked", "failed"):
                lines.append(Content.from_markup("  [$error]✗ $r[/]", r=sp.reason))
            lines.extend(Content(f"  • {a.describe()}") for a in sp.actions)
            diffs.extend(d for d in sp.diffs if d.kind == "file")
            disruptive = any(getattr(a, "disruptive", False) for a in sp.actions)
            # what stops or undoes things first (the auto-revert, containers stopped by the
            # restart), advisories after: at 80×24 the first lines are the ones always seen
            ranked.extend(
                (1 if disruptive else 2, Content.from_markup("[$warning]! $w[/]", w=w))
                for w in sp.warnings
            )
            if disruptive and options.auto_revert and not revert_noted:
                revert_noted = True
                ranked.append(
                    (
                        0,
                        Content.from_markup(
                            "[$warning]↺ reverted after $s s unless you keep it (K)[/]",
                            s=f"{options.auto_revert:.0f}",
                        ),
                    )
                )
        notes.extend(note for _, note in sorted(ranked, key=lambda pair: pair[0]))
        self.query_one("#actions", Static).update(Content("\n").join(lines))
        self.query_one(DiffView).show_diffs(diffs)
        notes_widget = self.query_one("#notes", Static)
        notes_widget.update(
            Content("\n").join([Content.styled("Impact", "bold"), *notes]) if notes else ""
        )
        notes_widget.display = bool(notes)
        self.query_one("#keys", Static).update(
            Content.from_markup(
                "[b]y[/b] apply   [b]n[/b] cancel   nothing is written before [b]y[/b]"
            )
        )

    @on(Checkbox.Changed)
    def _option_changed(self, event: Checkbox.Changed) -> None:
        if event.checkbox.id == "cdi":
            self.options = dataclasses.replace(self.options, enable_cdi=event.value)
        else:
            self.options = dataclasses.replace(self.options, set_default_runtime=event.value)
        self.plan = None
        self.query_one("#actions", Static).update(
            Content.styled("previewing (read-only)…", "$foreground-muted")
        )
        self.query_one("#keys", Static).update(
            Content.from_markup("[b]n[/b] cancel   previewing: [b]y[/b] comes next")
        )
        self.preview(self.options)

    def action_flip(self, checkbox_id: str) -> None:
        for box in self.query(f"#{checkbox_id}").results(Checkbox):
            box.toggle()

    def action_confirm(self) -> None:
        if self.plan is None:
            self.notify("The preview is not ready.", severity="warning")
            return
        if self.plan.blocked():
            self.notify("A step is blocked; see its remedy.", severity="warning")
            return
        self.dismiss((self.options, self.plan.digest))

    def action_cancel(self) -> None:
        self.dismiss(None)
