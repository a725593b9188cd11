"""The engine's one API for faces: plan, start an apply or a rollback, keep, revert, follow.

The CLI and the app call this and nothing below it for runs, so both get the same policy:
mutating work always goes to a detached, locked worker (an SSH drop stops neither an apply
nor a rollback halfway), expired runs are recovered before anything new starts, and a
rollback's targets are chosen by one rule. It is subiquity's server role, in process: the
faces draw, the session decides.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal, Optional

from gpuwizard import events as ev
from gpuwizard.errors import WizardError
from gpuwizard.host.system import Host
from gpuwizard.journal import Journal, Run, rollback_targets
from gpuwizard.options import Options
from gpuwizard.states import ENDED

if TYPE_CHECKING:
    from gpuwizard.worker import FreshPlan

# a plan this young, made by this process, is the one its forked worker applies (see
# Session._fresh_plan); older, the worker probes again
FRESH_PLAN_S = 2.0
SEEN = "seen"  # a file in a run's folder: a face has shown how the run ended


@dataclass(frozen=True)
class AwayNotice:
    """What happened to a detached run while no face watched it."""

    run_id: str
    text: str
    severity: Literal["information", "warning", "error"]


def _worker_api() -> Any:
    from gpuwizard import worker

    return worker


class Session:
    """One face's handle on a host and its journal.

    `backend` is the detached worker's face-side API (the `gpuwizard.worker` module); a test
    of a face may hand in a recorder with the same functions.
    """

    def __init__(self, host: Host, options: Options, journal: Journal, backend: Any = None) -> None:
        self.host = host
        self.options = options
        self.journal = journal
        self._backend = backend
        self._last_plan: Optional[tuple[Any, Options, tuple[Any, ...], float]] = None

    @classmethod
    def open(cls, host: Host, options: Options) -> Session:
        """The session on this host's journal (--state-dir, else /var/lib/gpuwizard)."""
        from gpuwizard.worker import state_dir_for

        return cls(host, options, Journal(state_dir_for(host, options)))

    @property
    def backend(self) -> Any:
        if self._backend is None:
            self._backend = _worker_api()
        return self._backend

    # -- reading ------------------------------------------------------------------------
    def plan(self, options: Optional[Options] = None, emit: ev.EventSink = ev.discard) -> Any:
        """Probe every step read-only and plan it. Nothing on the host changes."""
        from gpuwizard import wizard
        from gpuwizard.journal import activity_mark

        options = options or self.options
        mark = activity_mark(self.journal)
        the_plan = wizard.plan(self.host, options, emit=emit)
        self._last_plan = (the_plan, options, mark, time.monotonic())
        return the_plan

    def _fresh_plan(self, digest: str, options: Options) -> Optional[FreshPlan]:
        """The plan this session made a moment ago (FRESH_PLAN_S), for these options and this
        digest, with the journal's mark taken before it: a worker forked from this process
        applies it as it is if, under its lock, the journal shows no run since (the worker's
        own re-plan would find what this one just found, a second probe later). Not after a
        prompt: a person may read a preview for minutes."""
        if self._last_plan is None:
            return None
        the_plan, planned_with, mark, when = self._last_plan
        if time.monotonic() - when > FRESH_PLAN_S or the_plan.digest != digest:
            return None
        if dataclasses.replace(options, yes=planned_with.yes) != planned_with:
            return None
        return the_plan, mark

    def active_run(self) -> Optional[Run]:
        """The run a face should show first: in progress, awaiting confirmation, or
        interrupted with changes in place."""
        run: Optional[Run] = self.backend.active_run(self.journal)
        return run

    def latest_run(self) -> Optional[Run]:
        return self.journal.latest_run()

    def run(self, run_id: str) -> Run:
        """A run read back (an error naming the fix when there is no such run)."""
        return self.journal.read_run(run_id)

    def runs(self) -> list[Run]:
        return self.journal.runs()

    # -- recovering ---------------------------------------------------------------------
    def recover(self, emit: ev.EventSink = ev.discard) -> list[str]:
        """Roll back runs whose confirmation deadline passed while no worker watched them (a
        reboot kills timers). Returns the ids rolled back."""
        done: list[str] = self.backend.recover_expired(self.host, self.journal, emit=emit)
        return done

    # -- starting work --------------------------------------------------------------------
    def check_can_start(self) -> Optional[Run]:
        """Refuse while another run is going or waiting; return an interrupted run that a
        new apply resumes (its steps already done are skipped), or None."""
        active = self.active_run()
        if active is not None and active.status() != "interrupted":
            raise WizardError(
                f"Run {active.run_id} is {active.status()}",
                "Follow it with `gpuwizard attach`; confirm it with `gpuwizard confirm`.",
            )
        return active

    def start_apply(
        self, digest: str, argv: list[str], options: Optional[Options] = None, detach: bool = True
    ) -> str:
        """Start applying the plan whose digest the user approved; returns the run id.

        Detached (the default): a worker outside this terminal's session does it, so the
        work goes on when the connection drops. `detach=False` runs it in this process
        (`apply --no-detach`), under the same lock and journal."""
        options = options or self.options
        if detach:
            fresh = self._fresh_plan(digest, options)
            if fresh is not None:
                run_id: str = self.backend.launch(
                    self.host, options, digest, self.journal, argv, fresh=fresh
                )
            else:
                run_id = self.backend.launch(self.host, options, digest, self.journal, argv)
            return run_id
        from gpuwizard import worker

        run_id = worker.write_request(self.host, options, digest, self.journal, argv)
        worker.run_worker(self.journal, run_id, host=self.host)
        return run_id

    def rollback_targets(
        self, run_id: Optional[str] = None, all_runs: bool = False, steps: Optional[set[str]] = None
    ) -> list[Run]:
        """The runs a rollback undoes, oldest first (`journal.rollback_targets`: the rule the
        worker follows too). A run whose journal cannot be trusted is refused with where its
        backups are."""
        return rollback_targets(self.journal, run_id, all_runs, steps)

    def start_rollback(
        self,
        targets: list[str],
        argv: list[str],
        steps: Optional[set[str]] = None,
        force: bool = False,
        detach: bool = True,
    ) -> str:
        """Start rolling back these runs (newest first), detached and locked like an apply;
        returns the id of the rollback's own run, whose events a face follows."""
        import dataclasses

        options = dataclasses.replace(
            self.options, steps=tuple(sorted(steps)) if steps else (), force=force
        )
        order = list(reversed(targets))  # the newest run's changes come back first
        from gpuwizard import worker

        if detach:
            run_id: str = self.backend.launch(
                self.host, options, "", self.journal, argv, kind=worker.ROLLBACK, targets=order
            )
            return run_id
        run_id = worker.write_request(
            self.host, options, "", self.journal, argv, worker.ROLLBACK, order
        )
        worker.run_worker(self.journal, run_id, host=self.host)
        return run_id

    # -- a run awaiting confirmation ------------------------------------------------------
    def confirm(self, run_id: str) -> None:
        """Keep the run's changes (stops its auto-revert)."""
        self.backend.confirm(self.journal, run_id)

    def revert(self, run_id: str) -> None:
        """Do not keep them: the run's worker rolls the change back now."""
        self.backend.revert(self.journal, run_id)

    def waiting_run(self) -> Optional[Run]:
        """The run waiting for confirmation, or None."""
        active = self.active_run()
        if active is None or active.confirmation_deadline() is None:
            return None
        return active

    # -- following ----------------------------------------------------------------------
    def follow(self, run_id: str, stop: Optional[Callable[[], bool]] = None) -> Iterator[ev.Event]:
        """A run's events from its start, then live, until it ends."""
        yield from self.backend.follow(self.journal, run_id, stop=stop)

    def follow_batches(
        self, run_id: str, stop: Optional[Callable[[], bool]] = None
    ) -> Iterator[list[ev.Event]]:
        """`follow`, a batch of events at a time (what a UI should draw at once)."""
        batches = getattr(self.backend, "follow_batches", None)
        if batches is None:
            for event in self.follow(run_id, stop):
                yield [event]
            return
        yield from batches(self.journal, run_id, stop=stop)

    def rollback_report(self, run_id: str) -> list[dict[str, Any]]:
        """What a finished rollback run undid: [{"run": id, "undone": [notes]}]."""
        end = self.journal.read_run(run_id).ended()
        report = end.data.get("report", []) if end is not None else []
        return list(report) if isinstance(report, list) else []

    # -- what happened while nobody watched ----------------------------------------------
    def ended_unseen(self) -> Optional[AwayNotice]:
        """The newest detached run, if it ended and no face has shown how: said once, on
        the next start (an SSH drop, a reboot, an auto-revert at the deadline)."""
        try:
            runs = self.journal.runs()
        except (OSError, WizardError):
            return None
        if not runs:
            return None
        run = runs[-1]
        if not (run.folder / "request.json").exists() or (run.folder / SEEN).exists():
            return None  # not a detached run, or a face already showed how it ended
        status = run.status()
        if status not in ENDED:
            return None
        try:
            ended_at = (run.folder / "journal.jsonl").stat().st_mtime
            when = time.strftime("%H:%M", time.localtime(ended_at))
        except OSError:
            when = "?"
        end = run.ended()
        if run.meta.get("kind") == "rollback":
            targets = ", ".join(run.meta.get("targets", [])) or "?"
            if status == "finished":
                return AwayNotice(
                    run.run_id, f"Your rollback of run {targets} finished at {when}.", "information"
                )
            return AwayNotice(
                run.run_id,
                f"Your rollback of run {targets} ended {status} at {when}: run `gpuwizard "
                "rollback` again; it takes up where it stopped.",
                "error" if status == "failed" else "warning",
            )
        if status == "auto-reverted":
            declined = (
                any(r.type == "confirmed" for r in run.records) or (run.folder / "revert").exists()
            )
            why = "it was not kept" if declined else "nobody confirmed it before the deadline"
            text = f"Your run {run.run_id} was rolled back at {when} because {why}."
            return AwayNotice(run.run_id, text, "warning")
        if status == "finished":
            kept = any(r.type == "confirmed" for r in run.records)
            text = f"Your run {run.run_id} finished at {when}" + (
                "; its changes were kept." if kept else "."
            )
            return AwayNotice(run.run_id, text, "information")
        detail = ""
        if end is not None and isinstance(end.data.get("error"), dict):
            detail = ": " + str(end.data["error"].get("cause", ""))
        text = f"Your run {run.run_id} ended {status} at {when}{detail}."
        return AwayNotice(run.run_id, text, "error" if status == "failed" else "warning")

    def mark_seen(self, run_id: str) -> None:
        """A face has shown how this run ended: not said again at the next start."""
        with contextlib.suppress(OSError):  # read-only: the next start says it again
            (self.journal.runs_dir / run_id / SEEN).write_text(str(time.time()))
