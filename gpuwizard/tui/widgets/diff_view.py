"""A unified diff, coloured line by line; MIT-clean (difflib text from `Diff.unified()`).

`+`/`-` signs stay in the text, so the diff reads the same without colour.
"""

from __future__ import annotations

from typing import Any, Iterable

from textual.content import Content
from textual.widgets import Static


def diff_content(text: str) -> Content:
    """Colour a unified diff. The text is tool output: never parsed as markup."""
    lines = []
    for line in text.splitlines():
        if line.startswith(("+++", "---")):
            lines.append(Content.styled(line, "bold"))
        elif line.startswith("@@"):
            lines.append(Content.styled(line, "$accent"))
        elif line.startswith("+"):
            lines.append(Content.styled(line, "$success"))
        elif line.startswith("-"):
            lines.append(Content.styled(line, "$error"))
        elif line.startswith("\\"):
            lines.append(Content.styled(line, "$foreground-muted"))
        else:
            lines.append(Content(line))
    return Content("\n").join(lines)


def describe_diff(diff: Any) -> str:
    """One line for a change: the file written or removed, the packages, the service."""
    if diff.summary:
        return str(diff.summary)
    kind = getattr(diff, "kind", "file")
    if kind == "file":
        if diff.before is None:
            return f"create {diff.path}"
        if diff.after is None:
            return f"remove {diff.path}"
        return f"change {diff.path}"
    return f"{kind}: {diff.path}"


class DiffView(Static):
    """Every diff of a step, one after the other, each under its one-line summary."""

    def __init__(self, diffs: Iterable[Any] = (), **kw: Any) -> None:
        super().__init__(**kw)
        self.show_diffs(diffs)

    def show_diffs(self, diffs: Iterable[Any]) -> None:
        parts: list[Content] = []
        for diff in diffs:
            if not getattr(diff, "changed", True):
                continue
            parts.append(Content.styled("• " + describe_diff(diff), "bold"))
            body = diff.unified()
            if body:
                parts.append(diff_content(body))
            parts.append(Content(""))
        if not parts:
            parts = [Content.styled("No change.", "$foreground-muted")]
        self.update(Content("\n").join(parts))
