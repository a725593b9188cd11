"""The one list of steps: every face titles a step the same, and auto-revert's coverage is
derived from the actions' `disruptive` flag, not from a second hand-kept list."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from gpuwizard import worker
from gpuwizard.journal import Journal, Record, Run
from gpuwizard.steps import registry
from gpuwizard.steps.base import Step


def test_every_registered_step_loads_under_its_name_and_title() -> None:
    steps = registry.load_all()
    assert [s.name for s in steps] == list(registry.ALL_STEP_NAMES)
    for step in steps:
        assert isinstance(step, Step)
        assert step.title == registry.TITLES[step.name]
    assert set(registry.ROLLBACK_ORDER) == set(registry.ALL_STEP_NAMES)


def test_cli_plan_titles_are_the_apps_titles(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gpuwizard", "--demo", "plan", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert out.returncode in (0, 2), out.stderr
    steps = json.loads(out.stdout)["steps"]
    assert steps, out.stdout
    for sp in steps:
        assert sp["title"] == registry.TITLES[sp["step"]], sp["step"]


def _run(intents: list[tuple[str, str]]) -> Run:
    records = [
        Record(i + 1, "intent", {"step": step, "action": kind})
        for i, (step, kind) in enumerate(intents)
    ]
    return Run("R1", Path("/nonexistent"), {}, records)


def test_auto_revert_covers_a_restart_and_the_configuration_it_restarted_on() -> None:
    docker = _run(
        [
            ("packages", "install-packages"),
            ("daemon-config", "write-file"),
            ("restart", "restart-docker"),
        ]
    )
    assert worker.auto_revert_steps(docker) == {"daemon-config", "restart"}
    # containerd's restart is disruptive too (kubelet loses its runtime): its config comes
    # back with it. The old hand-kept list covered Docker's two steps only.
    ctd = _run([("containerd", "write-file"), ("containerd-restart", "restart-containerd")])
    assert worker.auto_revert_steps(ctd) == {"containerd", "containerd-restart"}
    # a run that restarted nothing has nothing for auto-revert to take back
    assert worker.auto_revert_steps(_run([("daemon-config", "write-file")])) == set()


def test_journal_intents_name_the_action_kind_auto_revert_reads(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "state")
    writer = journal.start_run(["test"])
    writer.append("intent", {"step": "restart", "action": "restart-docker", "undo": {}})
    assert worker.auto_revert_steps(journal.read_run(writer.run_id)) == {
        "daemon-config",
        "restart",
    }
