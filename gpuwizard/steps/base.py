"""What a step is: it looks at the host, and plans the actions that bring it where it must be.

A step never changes the machine itself. It plans against a Simulation that already holds
the effects of the steps before it, so a later step's preview accounts for earlier ones
(the packages step knows the repository step will have added the list).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

from gpuwizard.actions.base import Action, ApplyContext, Diff
from gpuwizard.host.system import Host
from gpuwizard.options import Options
from gpuwizard.states import BLOCKED, DONE, FAILED, PENDING, SKIPPED, StepStatus

__all__ = ["BLOCKED", "DONE", "FAILED", "PENDING", "SKIPPED", "Simulation", "Step", "StepPlan"]


@dataclass
class Simulation:
    """The host as it will be once the steps planned so far have run."""

    files: dict[str, Optional[bytes]] = field(default_factory=dict)  # path -> bytes | None
    packages: dict[str, Optional[str]] = field(default_factory=dict)  # name -> version | None
    marks: dict[str, Any] = field(default_factory=dict)  # planned effects: "docker-restarted"
    # what probes found (the GpuReport, the engine's facts): true whatever steps are selected,
    # so a step run alone with --step still sees what earlier steps' probes learnt
    facts: dict[str, Any] = field(default_factory=dict)
    # planning a step that is not selected (--step): from what is on this machine only. It
    # is shown, never applied, so it must not wait on the network (a key download that
    # times out after 30 s on a firewalled host, for `--step restart`)
    offline: bool = False

    def read(self, host: Host, path: str) -> Optional[bytes]:
        """A file's bytes as they will be (None: absent)."""
        if path in self.files:
            return self.files[path]
        try:
            return host.path(path).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def exists(self, host: Host, path: str) -> bool:
        if path in self.files:
            return self.files[path] is not None
        return host.path(path).exists()


@dataclass
class StepPlan:
    """What one step found and what it will do."""

    step: str
    title: str
    state: StepStatus
    reason: str = ""
    remedy: str = ""
    actions: list[Action] = field(default_factory=list)
    diffs: list[Diff] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "title": self.title,
            "state": self.state,
            "reason": self.reason,
            "remedy": self.remedy,
            "actions": [
                {"action": a.kind, "describe": a.describe(), "params": a.params()}
                for a in self.actions
            ],
            "diffs": [d.to_json() for d in self.diffs],
            "facts": self.facts,
            "warnings": self.warnings,
        }


class Step(ABC):
    """One screen of the wizard, one row of the plan."""

    name: ClassVar[str]
    title: ClassVar[str]  # from the registry (steps/registry.py), the one list of steps
    # steps whose changes must be undone with this one when it fails (a failed restart
    # brings daemon.json back): the registry's `restarts_on`
    rollback_with: ClassVar[tuple[str, ...]] = ()
    # the earlier steps whose block this one waits for; None: every earlier step
    waits_for: ClassVar[Optional[tuple[str, ...]]] = None
    # the plan's shared probes this step reads (steps/probes.py): started when a plan begins,
    # only those that some planned step asks for
    asks: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        from gpuwizard.steps.registry import BY_NAME

        info = BY_NAME.get(cls.__dict__.get("name", ""))
        if info is not None:
            if "title" not in cls.__dict__:
                cls.title = info.title
            if "rollback_with" not in cls.__dict__:
                cls.rollback_with = info.restarts_on

    @abstractmethod
    def plan(self, host: Host, options: Options, sim: Simulation) -> StepPlan:
        """Probe (read-only) and plan. Record planned effects in `sim`."""

    def applies(self, host: Host, sim: Simulation) -> bool:
        """False: this step has no place on this host (its engine is absent) and is left out
        of the plan entirely, rather than shown as a row with nothing to do."""
        return True

    def verify(self, ctx: ApplyContext, options: Options, plan: StepPlan) -> None:
        """After the actions ran: check the step's goal is met; raise WizardError if not."""

    def make(self, state: StepStatus, **kw: Any) -> StepPlan:
        return StepPlan(step=self.name, title=self.title, state=state, **kw)
