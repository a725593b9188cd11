"""The reversible vocabulary: every change gpuwizard makes is an Action.

An action can say what it would change (`preview`), whether it is needed at all, make the
change (`apply`, after the journal holds what undo needs), check it took (`verify`), and undo
it from the journal record alone (`undo`), so that rollback works in a new process after a
crash or an SSH drop.
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Optional

from gpuwizard.events import ActionEvent, EventSink, LogLine, Progress, discard, mask_secrets
from gpuwizard.host.system import Host
from gpuwizard.journal import RunWriter, checkpoint


@dataclass(frozen=True)
class Diff:
    """One change, Ansible-style: what is there before and what will be there after."""

    path: str
    before: Optional[str]  # None: absent
    after: Optional[str]  # None: removed
    kind: str = "file"  # file | packages | service | command | container
    summary: str = ""

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def unified(self, context: int = 3) -> str:
        """A unified diff of the text, as the user will see it: secrets masked as in the
        events file (a .repo's password=, daemon.json's proxy passwords and auths), so a
        screen, a terminal log or a paste never shows them."""
        before = mask_secrets(self.before) if self.before is not None else None
        after = mask_secrets(self.after) if self.after is not None else None
        if self.kind != "file":
            lines = []
            if before:
                lines += [f"- {x}" for x in before.splitlines()]
            if after:
                lines += [f"+ {x}" for x in after.splitlines()]
            return "\n".join(lines)
        a = (before or "").splitlines(keepends=True)
        b = (after or "").splitlines(keepends=True)
        out = difflib.unified_diff(
            a,
            b,
            fromfile=self.path if self.before is not None else "/dev/null",
            tofile=self.path if self.after is not None else "/dev/null",
            n=context,
        )
        text = ""
        for line in out:
            text += line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
        return text.rstrip("\n")

    def to_json(self) -> dict[str, Any]:
        """As printed (plan --json) and sent to a face: secrets masked, as in unified()."""
        data = asdict(self)
        data["changed"] = self.changed
        for key in ("before", "after"):
            if isinstance(data[key], str):
                data[key] = mask_secrets(data[key])
        return data


@dataclass
class ApplyContext:
    """What an action may use while it applies or undoes: the host, the run, the face."""

    host: Host
    run: RunWriter
    step: str
    emit: EventSink = discard

    def log(self, text: str, stream: str = "info") -> None:
        self.emit(LogLine(self.step, text, stream))

    def progress(self, fraction: Optional[float], label: str = "") -> None:
        self.emit(Progress(self.step, fraction, label))

    def line_logger(self) -> Any:
        """A runner callback that forwards each output line as a LogLine."""

        def on_line(stream: str, text: str) -> None:
            self.emit(LogLine(self.step, text, stream))

        return on_line


_REGISTRY: dict[str, type[Action]] = {}


def register(cls: type[Action]) -> type[Action]:
    """Make an action kind known to rollback, which rebuilds undo from the journal alone."""
    _REGISTRY[cls.kind] = cls
    return cls


def action_class(kind: str) -> type[Action]:
    if kind not in _REGISTRY:
        # actions register on import; make sure every module has been imported
        import gpuwizard.actions  # noqa: F401
    return _REGISTRY[kind]


@dataclass
class Action(ABC):
    """One reversible change."""

    kind: ClassVar[str] = "action"
    disruptive: ClassVar[bool] = False  # e.g. restarts: guarded and covered by auto-revert
    # False for checks (a test container): they run when asked but are no pending change,
    # so a host that is set up converges: a second plan has nothing to do
    mutates: ClassVar[bool] = True

    step: str = field(default="", init=False)

    @classmethod
    def group_facts(cls, host: Host, actions: list[Any]) -> Any:
        """What starts_now needs, learned once for all of a step's actions of this kind."""
        return None

    def starts_now(self, facts: Any) -> bool:
        """True for a check that may run at the same time as its neighbours that also say
        so (it shares nothing with them and needs nothing first: a test container whose
        image is here). Changes never do: they run one at a time, in order."""
        return False

    @abstractmethod
    def describe(self) -> str:
        """One line for the plan: what this does, in the user's words."""

    @abstractmethod
    def preview(self, host: Host) -> list[Diff]:
        """What would change, computed read-only."""

    def needed(self, host: Host) -> bool:
        """False when the host already is as this action would leave it."""
        return any(d.changed for d in self.preview(host))

    def params(self) -> dict[str, Any]:
        """JSON-able parameters, for the plan and the journal."""
        return {}

    def simulate(self, sim: Any) -> None:
        """Record this action's effect in a steps.base.Simulation, for later steps' plans."""

    @abstractmethod
    def prepare(self, ctx: ApplyContext) -> dict[str, Any]:
        """Capture what undo needs (backups, previous state). Called before the intent."""

    @abstractmethod
    def apply(self, ctx: ApplyContext) -> dict[str, Any]:
        """Make the change; return facts for the journal's done record."""

    def verify(self, ctx: ApplyContext) -> None:
        """Check that the change took; raise a WizardError if not."""

    @classmethod
    @abstractmethod
    def undo(cls, ctx: ApplyContext, undo: dict[str, Any], result: Optional[dict[str, Any]]) -> str:
        """Undo from the journal record alone; idempotent. Returns a note for the user."""

    def run(self, ctx: ApplyContext) -> dict[str, Any]:
        """Journal, apply, verify: the write-ahead protocol every action follows."""
        return self.finish(ctx, self.begin(ctx))

    def begin(self, ctx: ApplyContext) -> int:
        """Prepare and journal the intent (the first half of `run`); its record number.
        Actions run together begin one by one in plan order, so a run's journal (and the
        history drawn from it) reads the same every time."""
        undo = self.prepare(ctx)
        seq = ctx.run.append(
            "intent",
            {
                "step": ctx.step,
                "action": self.kind,
                "params": self.params(),
                "describe": self.describe(),
                "undo": undo,
            },
        )
        ctx.emit(ActionEvent(ctx.step, self.kind, "start", self.describe()))
        return seq

    def finish(self, ctx: ApplyContext, seq: int) -> dict[str, Any]:
        """Apply and verify after `begin`, journaling done or failed against its record."""
        try:
            result = self.apply(ctx)
            checkpoint()
            self.verify(ctx)
        except BaseException as exc:
            err = exc.to_json() if hasattr(exc, "to_json") else {"cause": repr(exc)}
            ctx.run.append("failed", {"ref": seq, "error": err})
            ctx.emit(ActionEvent(ctx.step, self.kind, "failed", self.describe(), err))
            raise
        ctx.run.append("done", {"ref": seq, "result": result})
        ctx.emit(ActionEvent(ctx.step, self.kind, "done", self.describe()))
        return result
