"""Run a command as a step of a plan, with its output streamed and an optional undo command."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from gpuwizard.actions.base import Action, ApplyContext, Diff, register
from gpuwizard.host.system import Host


@register
@dataclass
class RunCommand(Action):
    """A command whose effect is not a file we can snapshot (e.g. `apt-get update`).
    `undo_argv` runs on rollback; without it rollback says the effect stays, and why that
    is harmless."""

    kind = "run-command"

    argv: list[str] = field(default_factory=list)
    undo_argv: Optional[list[str]] = None
    reason: str = ""
    undo_note: str = "nothing to undo"
    inside: bool = True
    timeout: Optional[float] = None
    env: Optional[dict[str, str]] = None

    def describe(self) -> str:
        return self.reason or "run " + " ".join(self.argv)

    def params(self) -> dict[str, Any]:
        return {"argv": self.argv, "undo_argv": self.undo_argv}

    def preview(self, host: Host) -> list[Diff]:
        return [Diff("command", None, " ".join(self.argv), "command", self.describe())]

    def needed(self, host: Host) -> bool:
        return True

    def prepare(self, ctx: ApplyContext) -> dict[str, Any]:
        return {"undo_argv": self.undo_argv, "inside": self.inside, "note": self.undo_note}

    def apply(self, ctx: ApplyContext) -> dict[str, Any]:
        ctx.log("$ " + " ".join(self.argv))
        res = ctx.host.run(
            self.argv,
            inside=self.inside,
            on_line=ctx.line_logger(),
            timeout=self.timeout,
            env=self.env,
        )
        return {"returncode": res.returncode}

    @classmethod
    def undo(cls, ctx: ApplyContext, undo: dict[str, Any], result: Optional[dict[str, Any]]) -> str:
        argv = undo.get("undo_argv")
        if not argv:
            return str(undo.get("note") or "nothing to undo")
        ctx.host.run(argv, inside=bool(undo.get("inside", True)), on_line=ctx.line_logger())
        return "ran " + " ".join(argv)
