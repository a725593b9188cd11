"""The words for what a step and a run are: one vocabulary each, as Literal types.

A step's plan state, what a step event may say while a run goes, and a run's status used to
be three sets of bare strings that met in one dict; mypy now checks every place that sets or
compares one. (Doctor's verdicts are an enum of their own: `doctor.links.Verdict`.)
"""

from __future__ import annotations

from typing import Literal, cast, get_args

# what planning finds for a step
StepStatus = Literal["pending", "done", "blocked", "failed", "skipped"]
# what a step event says during a run: a plan state, or it runs, or it was undone
StepProgress = Literal["pending", "done", "blocked", "failed", "skipped", "running", "rolled-back"]
# what a doctor link's event says while doctor walks the chain (its Verdict's values)
LinkProgress = Literal["running", "ok", "warn", "broken", "skipped"]
# a run, as its journal and its events tell it
RunStatus = Literal[
    "running",
    "in-progress",
    "awaiting-confirmation",
    "finished",
    "failed",
    "rolled-back",
    "auto-reverted",
    "refused",
    "interrupted",
    "resumed",
    "damaged",
]

DONE: StepStatus = "done"
PENDING: StepStatus = "pending"
BLOCKED: StepStatus = "blocked"
FAILED: StepStatus = "failed"
SKIPPED: StepStatus = "skipped"

# after these a run does nothing more (interrupted is not one: a resume or a rollback follows)
TERMINAL: tuple[RunStatus, ...] = ("finished", "failed", "rolled-back", "auto-reverted", "refused")
# a face stops following a run in any of these
ENDED: tuple[RunStatus, ...] = (*TERMINAL, "interrupted")

_RUN_STATUSES = frozenset(get_args(RunStatus))
_STEP_PROGRESS = frozenset(get_args(StepProgress))


def run_status(text: str) -> RunStatus:
    """A run status read from a journal or an event file; an unknown word (a newer
    gpuwizard's) reads as interrupted, which every face treats with care."""
    return cast(RunStatus, text) if text in _RUN_STATUSES else "interrupted"


def step_progress(text: str) -> StepProgress:
    """A step state read back from an event file (unknown: pending)."""
    return cast(StepProgress, text) if text in _STEP_PROGRESS else "pending"
