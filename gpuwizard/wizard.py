"""The wizard: the ordered steps, their states, one plan, one apply, one rollback.

Faces (the Textual app, the CLI) call these functions and draw the events; nothing here
knows how things are drawn.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from gpuwizard.actions.base import ApplyContext, action_class
from gpuwizard.actions.together import run_actions
from gpuwizard.errors import RollbackConflict, WizardError
from gpuwizard.events import ActionEvent, EventSink, LogLine, StepState, discard
from gpuwizard.host.system import Host
from gpuwizard.journal import Journal, Run, RunWriter, rollback_targets
from gpuwizard.options import ALL_STEP_NAMES, Options
from gpuwizard.steps import probes, registry
from gpuwizard.steps.base import BLOCKED, DONE, FAILED, PENDING, SKIPPED, Simulation, Step, StepPlan


def default_steps() -> list[Step]:
    return registry.load_all()


@dataclass
class Plan:
    """Every step's plan, in order, and a digest that detects a host changed since."""

    steps: list[StepPlan]
    selected: tuple[str, ...]
    warnings: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # facts unreadable without root

    @property
    def digest(self) -> str:
        basis = [
            {
                "step": s.step,
                "state": s.state,
                "actions": [[a.kind, a.params()] for a in s.actions],
                "diffs": [[d.path, d.before, d.after] for d in s.diffs],
            }
            for s in self.steps
            if s.step in self.selected
        ]
        return hashlib.sha256(json.dumps(basis, sort_keys=True, default=str).encode()).hexdigest()

    def runnable(self) -> list[StepPlan]:
        """The steps apply will run: the selected ones with something to do."""
        return [s for s in self.steps if s.step in self.selected and s.state == PENDING]

    def has_changes(self) -> bool:
        """Something to change on the host (checks such as the GPU test do not count)."""
        return any(a.mutates for s in self.runnable() for a in s.actions)

    def has_work(self) -> bool:
        """Anything to run at all, checks included."""
        return any(s.actions for s in self.runnable())

    def blocked(self) -> list[StepPlan]:
        return [s for s in self.steps if s.step in self.selected and s.state in (BLOCKED, FAILED)]

    def step(self, name: str) -> StepPlan:
        return next(s for s in self.steps if s.step == name)

    def to_json(self) -> dict[str, Any]:
        return {
            "steps": [s.to_json() | {"selected": s.step in self.selected} for s in self.steps],
            "selected": list(self.selected),
            "changes_pending": self.has_changes(),
            "digest": self.digest,
            "warnings": self.warnings,
            "unknown_without_permission": self.unknown,
        }


def select_steps(options: Options) -> tuple[str, ...]:
    if not options.steps:
        return tuple(ALL_STEP_NAMES)
    unknown = [s for s in options.steps if s not in ALL_STEP_NAMES]
    if unknown:
        raise WizardError(
            f"Unknown step {unknown[0]!r}", "Steps are: " + ", ".join(ALL_STEP_NAMES) + "."
        )
    return tuple(s for s in ALL_STEP_NAMES if s in options.steps)


def plan(
    host: Host, options: Options, steps: Optional[Sequence[Step]] = None, emit: EventSink = discard
) -> Plan:
    """Probe every step read-only and plan it against the simulated effects of the earlier
    selected steps. Nothing on the host changes."""
    with host.probing():
        return _plan(host, options, steps, emit)


def _plan(host: Host, options: Options, steps: Optional[Sequence[Step]], emit: EventSink) -> Plan:
    selected = select_steps(options)
    explicit = bool(options.steps)
    sim = Simulation()
    out: list[StepPlan] = []
    warnings: list[str] = []
    blocks: list[StepPlan] = []  # the selected steps found blocked or failed, in order
    planned = list(steps) if steps is not None else default_steps()
    with probes.started(host, options, sim, planned):
        for step in planned:
            sp = _plan_step(step, host, options, sim, selected, explicit, blocks, warnings)
            if sp is None:
                continue
            emit(StepState(sp.step, sp.state, sp.reason))
            out.append(sp)
    return Plan(out, selected, warnings, list(host.unknown))


def _plan_step(
    step: Step,
    host: Host,
    options: Options,
    sim: Simulation,
    selected: tuple[str, ...],
    explicit: bool,
    blocks: list[StepPlan],
    warnings: list[str],
) -> Optional[StepPlan]:
    """One step's plan against the simulation so far (None: the step does not apply here)."""
    if not step.applies(host, sim):
        return None  # e.g. the podman step where there is no Podman
    try:
        sp = step.plan(
            host,
            options,
            sim
            if step.name in selected
            else Simulation(
                files=dict(sim.files),
                packages=dict(sim.packages),
                marks=dict(sim.marks),
                facts=sim.facts,
                offline=True,
            ),
        )
    except WizardError as exc:
        sp = step.make(
            FAILED,
            reason=exc.cause,
            remedy=exc.remedy,
            facts={"detail": exc.detail} if exc.detail else {},
        )
    except PermissionError as exc:
        # a probe that met "permission denied" (a normal user): this step's state is
        # unknown, the others are still planned
        what = f"{step.name}: cannot read {exc.filename or 'a file'} (permission denied)"
        host.note_unknown(what)
        sp = step.make(
            BLOCKED,
            reason=f"unknown without root: {exc.filename or 'a file'} is not readable",
            remedy="Run it as root (sudo gpuwizard …) to know this step's state.",
            facts={"unknown": [what]},
        )
    if step.name in selected:
        for action in sp.actions:
            action.step = step.name
            if sp.state == PENDING:
                action.simulate(sim)
        # a step waits for the first blocked step it depends on (all earlier ones, unless
        # it names them: Podman does not wait for Docker's daemon.json)
        first_block = next(
            (b for b in blocks if step.waits_for is None or b.step in step.waits_for), None
        )
        if first_block is not None and not explicit and sp.state == PENDING:
            sp.state = BLOCKED
            sp.reason = f"waits for {first_block.step}: {first_block.reason}"
            sp.remedy = ""
        if sp.state in (BLOCKED, FAILED):
            blocks.append(sp)
    else:
        if sp.state in (BLOCKED, FAILED, PENDING):
            warnings.append(
                f"{sp.step} is {sp.state} (not selected)" + (f": {sp.reason}" if sp.reason else "")
            )
        sp = StepPlan(
            sp.step,
            sp.title,
            SKIPPED,
            reason=f"not selected ({sp.state})",
            remedy=sp.remedy,
            diffs=sp.diffs,
            facts=sp.facts,
            warnings=sp.warnings,
        )
    return sp


def apply(
    host: Host,
    options: Options,
    the_plan: Plan,
    run: RunWriter,
    emit: EventSink = discard,
    steps: Optional[Sequence[Step]] = None,
) -> None:
    """Run the plan's pending steps in order. A failed step is rolled back at once (with the
    steps it depends on, e.g. daemon-config for a failed restart) and the error re-raised."""
    by_name = {s.name: s for s in (steps if steps is not None else default_steps())}
    for sp in the_plan.steps:
        if sp.step not in the_plan.selected:
            continue
        if sp.state in (BLOCKED, FAILED):
            raise WizardError(
                f"Step {sp.step} is {sp.state}: {sp.reason}",
                sp.remedy or "Fix the cause, then run gpuwizard again.",
            )
        if sp.state != PENDING:
            emit(StepState(sp.step, sp.state, sp.reason))
            continue
        emit(StepState(sp.step, "running"))
        ctx = ApplyContext(host, run, sp.step, emit)
        try:
            run_actions(sp.actions, ctx)
            by_name[sp.step].verify(ctx, options, sp)
        except WizardError as exc:
            emit(StepState(sp.step, FAILED, exc.cause))
            emit(LogLine(sp.step, f"{exc.cause} — rolling back this step", "err"))
            undo_steps = {sp.step, *by_name[sp.step].rollback_with}
            try:
                rollback_records(host, run, _reread(run), undo_steps, emit=emit)
            except WizardError as rb:
                # say both, truthfully: the step failed, and undoing it did not bring the
                # host back either (e.g. Docker does not start on the restored daemon.json)
                raise WizardError(
                    f"{exc.cause}; the rollback did not bring it back either: {rb.cause}",
                    rb.remedy,
                    "\n".join(d for d in (exc.detail, rb.detail) if d),
                ) from rb
            raise
        emit(StepState(sp.step, DONE))


def _reread(run: RunWriter) -> Run:
    journal = Journal(run.folder.parent.parent)
    return journal.read_run(run.run_id)


def rollback_records(
    host: Host,
    run: RunWriter,
    record_run: Run,
    steps: Optional[set[str]] = None,
    force: bool = False,
    emit: EventSink = discard,
) -> list[str]:
    """Undo a run's changes not yet undone, in the domain's order; journaled, idempotent."""
    pending = record_run.pending_undo(steps)
    results = {r.data["ref"]: r.data.get("result") for r in record_run.records if r.type == "done"}

    def order(rec: Any) -> int:
        return registry.rollback_rank(rec.data.get("step", ""))

    pending.sort(key=order)  # stable: newest first within a step
    notes: list[str] = []
    if not pending:
        return notes
    run.append("rollback-begin", {"steps": sorted(steps) if steps else None})
    for rec in pending:
        step = rec.data.get("step", "")
        kind = rec.data["action"]
        ctx = ApplyContext(host, run, step, emit)
        emit(ActionEvent(step, kind, "rollback", rec.data.get("describe", "")))
        run.append("rollback-intent", {"ref": rec.seq})
        undo = dict(rec.data.get("undo", {}))
        try:
            cls = action_class(kind)
            note = cls.undo(ctx, undo, results.get(rec.seq))
        except RollbackConflict:
            if not force:
                raise
            undo["merge_back"] = None
            note = _force_restore(ctx, cls, undo, results.get(rec.seq))
        run.append("rolled-back", {"ref": rec.seq, "note": note})
        emit(ActionEvent(step, kind, "rolled-back", note))
        emit(LogLine(step, f"undone: {note}", "info"))
        notes.append(f"{step}: {note}")
    run.append("rollback-end", {})
    return notes


def _force_restore(ctx: ApplyContext, cls: Any, undo: dict[str, Any], result: Any) -> str:
    """--force: restore the original bytes even over someone's later edit (kept in backups)."""
    from gpuwizard.journal import sha256_bytes

    real = ctx.host.path(undo["path"])  # inside the root, whatever the journal says
    if real.exists():
        current = real.read_bytes()
        sha = ctx.run.save_backup(current)
        ctx.log(f"--force: the edited {undo['path']} is kept in backups/{sha}")
        undo["after_sha"] = sha256_bytes(current)
    note: str = cls.undo(ctx, undo, result)
    return note


def rollback(
    host: Host,
    journal: Journal,
    run_id: Optional[str] = None,
    all_runs: bool = False,
    steps: Optional[set[str]] = None,
    force: bool = False,
    emit: EventSink = discard,
    argv: Optional[list[str]] = None,
) -> list[dict[str, Any]]:
    """Roll back the newest run that changed something (or one run, or every run), newest
    first; the targets are `journal.rollback_targets`'s, the session's rule."""
    targets = list(reversed(rollback_targets(journal, run_id, all_runs, steps)))
    report = []
    for target in targets:
        status = target.status()
        if status in ("in-progress", "awaiting-confirmation") and _other_live_worker(
            target.meta.get("worker_pid")
        ):
            raise WizardError(
                f"Run {target.run_id} is still in progress",
                "Wait for it (gpuwizard attach), or let its auto-revert timer act.",
            )
        writer = journal.open_run(target.run_id)
        notes = rollback_records(host, writer, target, steps, force, emit)
        if notes and not steps:
            writer.append("end", {"status": "rolled-back"})
        report.append({"run": target.run_id, "undone": notes})
    return report


def _other_live_worker(pid: Any) -> bool:
    """`pid` is a live process other than this one: a run's worker still at work. A dead
    worker's pid (or a value that is no pid) does not keep its run from being rolled back."""
    import os

    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False  # dead: its run is interrupted, whatever its lock note said
    except PermissionError:
        return True  # alive, another user's
    except OverflowError:
        return False  # larger than any pid
    return True
