"""One typed way for tests to drive gpuwizard's own API as the CLI does: plan, then apply in
a journaled run (and roll back). The Debian-root, dockerd and engine tests all use it, so a
test reads `out.plan.step("packages").state` without casts or `type: ignore`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from gpuwizard import wizard
from gpuwizard.errors import WizardError
from gpuwizard.events import Event, LogLine, Progress
from gpuwizard.host.system import Host
from gpuwizard.journal import Journal, RunWriter
from gpuwizard.options import Options
from gpuwizard.steps.base import Step
from gpuwizard.wizard import Plan


@dataclass
class Outcome:
    """What one plan + apply left: the plan, the run, the events, and the error if it failed."""

    plan: Plan
    run: RunWriter
    events: list[Event] = field(default_factory=list)
    error: Optional[WizardError] = None

    def progress(self) -> list[Progress]:
        return [e for e in self.events if isinstance(e, Progress)]

    def logs(self) -> list[str]:
        return [e.text for e in self.events if isinstance(e, LogLine)]


def plan_only(host: Host, options: Options, steps: Optional[Sequence[Step]] = None) -> Plan:
    return wizard.plan(host, options, steps=steps)


def plan_and_apply(
    host: Host,
    options: Options,
    state: Path,
    steps: Optional[Sequence[Step]] = None,
    on_event: Optional[Callable[[Event], None]] = None,
    raise_errors: bool = False,
) -> Outcome:
    """Plan, then apply in a new journaled run of the journal at `state`. A WizardError is
    kept in the outcome (or raised, with raise_errors)."""
    the_plan = wizard.plan(host, options, steps=steps)
    run = Journal(state).start_run(["test"])
    out = Outcome(the_plan, run)

    def emit(event: Event) -> None:
        out.events.append(event)
        if on_event is not None:
            on_event(event)

    try:
        wizard.apply(host, options, the_plan, run, emit=emit, steps=steps)
    except WizardError as exc:
        if raise_errors:
            raise
        out.error = exc
    return out


def rollback_latest(host: Host, state: Path) -> list[dict[str, object]]:
    report: list[dict[str, object]] = wizard.rollback(host, Journal(state))
    return report
