"""Whether the GPU test passed since the host last changed: read from the journal.

The GPU test is a check, so every plan calls it pending, even right after it passed; the CLI
and a fresh app start then said "pending" for a host that works. A run that passed it is in
the journal: the newest run that still counts (not rolled back) either ran the test and
passed it, or changed the host after it (then the old verdict no longer holds).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional

from gpuwizard import clock

GPU_TEST = "gpu-test"
UNDONE = ("rolled-back", "auto-reverted")  # the host is as it was before these runs


@dataclass(frozen=True)
class GpuTestPass:
    run_id: str
    when: float  # when its run ended (kept)

    def text(self) -> str:
        return f"passed at {clock.hhmm(self.when)} (run {self.run_id})"


def last_pass(journal: Any) -> Optional[GpuTestPass]:
    """The run whose GPU test still speaks for the host, or None."""
    try:
        runs = journal.runs()
    except Exception:  # unreadable as this user, damaged: no verdict, never a crash
        return None
    for run in reversed(runs):
        status = run.status()
        if status in UNDONE or not run.changed_something():
            continue
        if status != "finished":
            return None  # failed, interrupted, in progress: the host may be anywhere
        tests = [r for r in run.intents() if r.data.get("step") == GPU_TEST]
        if not tests:
            return None  # it changed the host without testing the GPU again
        done = run.done_refs()
        if not all(r.seq in done for r in tests):
            return None
        return GpuTestPass(run.run_id, _mtime(run))
    return None


def _mtime(run: Any) -> float:
    try:
        return float((run.folder / "journal.jsonl").stat().st_mtime)
    except OSError:
        return clock.now()


def mark_passed(plan: Any, verdict: str, again: str = "`a` on its step runs it again") -> None:
    """Show a pending GPU test as done when it passed and nothing before it is left to do
    (an earlier step that changes again could make the verdict wrong)."""
    for i, sp in enumerate(plan.steps):
        if sp.step != GPU_TEST:
            if sp.state in ("pending", "blocked", "failed"):
                return
            continue
        if sp.state == "pending":
            plan.steps[i] = dataclasses.replace(sp, state="done", reason=f"{verdict}; {again}")
        return
