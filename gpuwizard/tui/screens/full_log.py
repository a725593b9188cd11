"""The whole output of a run, from the worker's events file: searched, wrapped, saved, copied.

`/` searches (n / N for the next and previous match), `w` wraps long lines, `s` saves the log
next to the run in the state directory (root's, 0600: never a path in the current folder,
which under sudo may be someone else's), `c` copies the selection or the whole log through
OSC 52 where the terminal allows it. The events file's own path is on screen, for `less`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Optional

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Static, TextArea
from textual.widgets.text_area import Selection

from gpuwizard.events import LogLine, from_json
from gpuwizard.tui.widgets.output_log import clean_line

SAVED_NAME = "log.txt"
COPY_LIMIT = 256 * 1024  # OSC 52 payloads beyond this are dropped by most terminals


class FullLogScreen(ModalScreen[None]):
    """Escape closes (or leaves the search box)."""

    CSS_PATH = Path(__file__).with_suffix(".tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        # priority: taken before the keys behind it are handed out, so a query typed (or
        # pasted) right after "/" lands in the search box, not on the log's bindings
        Binding("slash", "search", "Search", key_display="/", priority=True),
        Binding("n", "next_match", "Next"),
        Binding("N", "previous_match", "Prev", key_display="N"),
        Binding("w", "wrap", "Wrap"),
        Binding("s", "save", "Save"),
        Binding("c", "copy", "Copy"),
        Binding("escape,q", "close", "Close"),
    ]

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.query_text = ""
        self.saved: Optional[Path] = None

    @property
    def events_path(self) -> Path:
        app: Any = self.app
        return Path(app.journal.runs_dir) / self.run_id / "events.jsonl"

    def shown_path(self, path: Path) -> str:
        """A path as the user finds it: on the demo machine, its system path."""
        host = getattr(self.app, "host", None)
        if host is not None and getattr(host, "stand_in_root", False):
            return str(host.system_path(path))
        return str(path)

    def compose(self) -> ComposeResult:
        yield Static(f"Full log of run {self.run_id}", id="log-title")
        yield Static("", id="log-path")
        log = TextArea("reading the events…", read_only=True, soft_wrap=False, id="full-log")
        log.show_line_numbers = False
        yield log
        # always there (one row), so the keys typed right after "/" land in it
        yield Input(placeholder="/ searches the log", id="search", compact=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#log-path", Static).update(
            Content.styled(f"events: {self.shown_path(self.events_path)}", "$foreground-muted")
        )
        self.query_one(TextArea).focus()
        self.load()

    @work(
        thread=True,
        exclusive=True,
        group="full-log",
        exit_on_error=False,
        description="Reading the run's events",
    )
    def load(self) -> None:
        path = self.events_path
        lines = []
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                for raw in fh:
                    try:
                        event = from_json(raw)
                    except ValueError:
                        continue
                    if isinstance(event, LogLine):
                        lines.append(clean_line(event.text))
        except OSError as exc:
            lines = [f"cannot read {self.shown_path(path)}: {exc.strerror}"]
        self.app.call_from_thread(self._show, "\n".join(lines) or "(no output)")

    def _show(self, text: str) -> None:
        log = self.query_one(TextArea)
        log.load_text(text)
        # the last line first (that is where a failure is), from its first column
        log.move_cursor((log.document.line_count - 1, 0))

    @property
    def text(self) -> str:
        return self.query_one(TextArea).text

    # -- search ---------------------------------------------------------------------------
    def action_search(self) -> None:
        box = self.query_one("#search", Input)
        if self.focused is box:
            box.insert_text_at_cursor("/")  # a slash in the query itself
            return
        box.value = ""
        box.placeholder = "search: Enter finds, Escape cancels"
        self.set_focus(box)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.query_text = event.value
        self._close_search()
        event.input.value = f"/{self.query_text}"
        self._find(forward=True, from_start=True)

    def _close_search(self) -> None:
        box = self.query_one("#search", Input)
        box.placeholder = "/ searches the log"
        self.set_focus(self.query_one(TextArea))

    def action_next_match(self) -> None:
        self._find(forward=True)

    def action_previous_match(self) -> None:
        self._find(forward=False)

    def _find(self, forward: bool, from_start: bool = False) -> None:
        """Select the next (or previous) match after the cursor, wrapping at the ends."""
        needle = self.query_text.lower()
        if not needle:
            self.notify("Press / to search first.")
            return
        log = self.query_one(TextArea)
        lines = log.text.split("\n")
        row, col = log.selection.end if forward else log.selection.start
        if from_start:
            row, col = 0, 0
        order = list(range(len(lines)))
        hits = []
        for r in order:
            start = 0
            low = lines[r].lower()
            while (c := low.find(needle, start)) >= 0:
                hits.append((r, c))
                start = c + 1
        if not hits:
            self.notify(f"Not found: {self.query_text}", severity="warning")
            return
        if forward:
            nxt = next(
                (h for h in hits if h >= (row, col) and (from_start or h != (row, col))), None
            )
            nxt = nxt or hits[0]
        else:
            nxt = next((h for h in reversed(hits) if h < (row, col)), None) or hits[-1]
        r, c = nxt
        log.selection = Selection((r, c), (r, c + len(needle)))
        log.scroll_cursor_visible(center=True)
        number = hits.index(nxt) + 1
        self.query_one("#log-path", Static).update(
            Content.styled(
                f"“{self.query_text}”: match {number} of {len(hits)} (line {r + 1}) · "
                f"events: {self.shown_path(self.events_path)}",
                "$foreground-muted",
            )
        )

    # -- wrap, save, copy -----------------------------------------------------------------
    def action_wrap(self) -> None:
        log = self.query_one(TextArea)
        log.soft_wrap = not log.soft_wrap
        self.notify("Long lines wrap." if log.soft_wrap else "Long lines scroll (← →).")

    def action_save(self) -> None:
        from gpuwizard.journal import write_private

        target = self.events_path.parent / SAVED_NAME
        try:
            write_private(target, (self.text.rstrip("\n") + "\n").encode("utf-8"))
        except OSError as exc:
            self.notify(
                f"Cannot save the log to {self.shown_path(target)}: {exc.strerror}. "
                "The events file above holds the same lines.",
                severity="error",
                timeout=10,
            )
            return
        self.saved = target
        self.notify(f"Saved to {self.shown_path(target)}", title="Log saved", timeout=10)

    def action_copy(self) -> None:
        log = self.query_one(TextArea)
        chosen = log.selected_text or log.text
        what = "the selection" if log.selected_text else "the whole log"
        if len(chosen.encode("utf-8")) > COPY_LIMIT:
            chosen = chosen.encode("utf-8")[-COPY_LIMIT:].decode("utf-8", "ignore")
            what = "the last 256 KiB of the log"
        self.app.copy_to_clipboard(chosen)
        self.notify(
            f"Copied {what} (OSC 52): paste where your terminal allows it, or press s to "
            "save it to a file.",
            timeout=8,
        )

    def action_close(self) -> None:
        if self.focused is self.query_one("#search", Input):
            self._close_search()
            return
        self.dismiss(None)
