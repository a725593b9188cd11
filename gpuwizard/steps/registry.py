"""The one list of steps: name, title, class, where it sits in a rollback, what it restarts on.

The wizard, the worker, the CLI and the app read this module and nothing else for these
facts, so a step is titled the same everywhere and auto-revert's coverage has one source.
The step classes are named as strings and imported on first use: start-up stays fast.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Optional

if TYPE_CHECKING:
    from gpuwizard.steps.base import Step


@dataclass(frozen=True)
class StepInfo:
    """What every face needs to know about one step, without importing it."""

    name: str
    title: str
    target: str  # "module:Class"
    # the engine this step serves beyond Docker: in a plan only where that engine is there
    engine: Optional[str] = None
    # a restart step names the configuration steps it puts into effect: auto-revert takes
    # those back together with the restart, or the engine would run on a half-undone state
    restarts_on: tuple[str, ...] = ()

    def load(self) -> Step:
        module, _, cls = self.target.partition(":")
        step: Step = getattr(importlib.import_module(module), cls)()
        return step


STEPS: tuple[StepInfo, ...] = (
    StepInfo("driver", "NVIDIA driver", "gpuwizard.steps.driver:DriverStep"),
    StepInfo("repository", "Toolkit repository", "gpuwizard.steps.repository:RepositoryStep"),
    StepInfo("packages", "Toolkit packages", "gpuwizard.steps.packages:PackagesStep"),
    StepInfo("cdi", "CDI spec", "gpuwizard.steps.cdi:CdiStep"),
    StepInfo(
        "daemon-config", "Docker daemon.json", "gpuwizard.steps.daemon_config:DaemonConfigStep"
    ),
    StepInfo(
        "restart",
        "Restart Docker",
        "gpuwizard.steps.restart:RestartStep",
        restarts_on=("daemon-config",),
    ),
    StepInfo("gpu-test", "GPU test container", "gpuwizard.steps.gpu_test:GpuTestStep"),
    StepInfo("podman", "Podman (CDI)", "gpuwizard.steps.podman:PodmanStep", engine="podman"),
    StepInfo(
        "containerd",
        "containerd runtime",
        "gpuwizard.steps.containerd:ContainerdStep",
        engine="containerd",
    ),
    StepInfo(
        "containerd-restart",
        "Restart containerd",
        "gpuwizard.steps.containerd:ContainerdRestartStep",
        engine="containerd",
        restarts_on=("containerd",),
    ),
)

BY_NAME = {s.name: s for s in STEPS}
STEP_NAMES = tuple(s.name for s in STEPS if s.engine is None)
ENGINE_STEP_NAMES = tuple(s.name for s in STEPS if s.engine is not None)
ALL_STEP_NAMES = STEP_NAMES + ENGINE_STEP_NAMES
TITLES = {s.name: s.title for s in STEPS}

# Rollback order matters in this domain: daemon.json back first, then Docker restarted on it,
# then packages removed, then the repository. Within a step, newest change first.
# containerd's files come back before containerd is restarted on them, as with Docker.
ROLLBACK_ORDER = (
    "gpu-test",
    "podman",
    "containerd",
    "containerd-restart",
    "daemon-config",
    "restart",
    "cdi",
    "packages",
    "repository",
    "driver",
)


def title(name: str) -> str:
    """The step's title, or the name itself for something that is not a step."""
    info = BY_NAME.get(name)
    return info.title if info else name


def rollback_rank(step: str) -> int:
    """Where a step's changes come back in a rollback (unknown steps last)."""
    return ROLLBACK_ORDER.index(step) if step in ROLLBACK_ORDER else len(ROLLBACK_ORDER)


def load_all() -> list[Step]:
    """One instance of every step, in order."""
    return [s.load() for s in STEPS]


def auto_revert_covers(disruptive_steps: Iterable[str]) -> set[str]:
    """The steps auto-revert takes back, given the steps that did something disruptive (a
    restart): each of them and the configuration it restarted on."""
    out: set[str] = set()
    for name in disruptive_steps:
        out.add(name)
        info = BY_NAME.get(name)
        if info:
            out.update(info.restarts_on)
    return out


def disruptive_steps_of(intents: Iterable[tuple[str, str]]) -> set[str]:
    """The steps of a run whose changes include a disruptive action, from (step, action kind)
    pairs as the journal records them: derived from the actions' own `disruptive` flag."""
    from gpuwizard.actions.base import action_class

    out = set()
    for step, kind in intents:
        try:
            if action_class(kind).disruptive:
                out.add(step)
        except KeyError:
            continue
    return out
