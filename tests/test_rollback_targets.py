"""One rule picks what a rollback undoes: the session (what `gpuwizard rollback` and the app
show and start) and the engine (what the worker then undoes) both follow
`journal.rollback_targets`, damaged-journal refusals included; a run whose worker is dead is
no longer "still in progress"."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest
from harness import rollback_latest

from gpuwizard import wizard
from gpuwizard.actions.base import ApplyContext
from gpuwizard.actions.files import WriteFile
from gpuwizard.errors import JournalError, WizardError
from gpuwizard.host.system import Host
from gpuwizard.journal import Journal, RunWriter
from gpuwizard.options import Options
from gpuwizard.session import Session

OLD, NEW, LOOK = "20260101T000001Z-000001", "20260101T000002Z-000002", "20260101T000003Z-000003"


def _setup(tmp_path: Path) -> tuple[Host, Journal]:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text("ID=debian\nVERSION_ID=12\n")
    return Host(root), Journal(tmp_path / "state")


def _change(
    host: Host, journal: Journal, run_id: str, step: str, path: str, end: bool = True
) -> RunWriter:
    """A run that wrote one new file as `step` (its undo removes the file)."""
    run = journal.start_run(["test"], run_id=run_id)
    action = WriteFile(path=path, content=f"{run_id}\n".encode())
    action.step = step
    action.run(ApplyContext(host, run, step))
    if end:
        run.append("end", {"status": "finished"})
    return run


def _three_runs(host: Host, journal: Journal) -> None:
    _change(host, journal, OLD, "driver", "/etc/old.conf")
    _change(host, journal, NEW, "daemon-config", "/etc/new.conf")
    look = journal.start_run(["test"], run_id=LOOK)  # the newest run only looked
    look.append("end", {"status": "finished"})


@pytest.mark.parametrize(
    ("run_id", "all_runs", "steps", "expected"),
    [
        (None, False, None, [NEW]),
        (None, True, None, [OLD, NEW]),
        (None, False, {"driver"}, [OLD]),
        (None, True, {"driver"}, [OLD]),
        (OLD, False, None, [OLD]),
        (None, False, {"cdi"}, []),
    ],
)
def test_the_engine_undoes_exactly_the_runs_the_session_names(
    tmp_path: Path,
    run_id: Optional[str],
    all_runs: bool,
    steps: Optional[set[str]],
    expected: list[str],
) -> None:
    host, journal = _setup(tmp_path)
    _three_runs(host, journal)
    session = Session(host, Options(), journal)
    named = [r.run_id for r in session.rollback_targets(run_id, all_runs, steps)]
    assert named == expected  # oldest first
    report = wizard.rollback(host, journal, run_id, all_runs, steps)
    assert [r["run"] for r in report] == list(reversed(named))  # newest undone first
    assert all(r["undone"] for r in report)
    for rid, name in ((OLD, "old"), (NEW, "new")):
        assert (host.root / f"etc/{name}.conf").exists() == (rid not in expected)


def _damaged(host: Host, journal: Journal) -> RunWriter:
    """A run that kept a backup but whose journal lost its records (an emptied file)."""
    (host.root / "etc/kept.conf").write_text("the user's\n")
    run = _change(host, journal, OLD, "daemon-config", "/etc/kept.conf")
    run.path.write_bytes(b"")
    return run


def test_the_engine_refuses_a_named_damaged_run_as_the_session_does(tmp_path: Path) -> None:
    host, journal = _setup(tmp_path)
    run = _damaged(host, journal)
    session = Session(host, Options(), journal)
    with pytest.raises(JournalError) as by_session:
        session.rollback_targets(OLD)
    with pytest.raises(JournalError) as by_engine:
        wizard.rollback(host, journal, run_id=OLD)  # it used to "roll back" nothing, silently
    for err in (by_session.value, by_engine.value):
        assert f"Run {OLD} cannot be rolled back from its journal" in err.cause
        assert "backup(s) but its journal records no change" in err.cause
        assert f"{run.folder}/backups" in err.remedy
    assert by_engine.value.cause == by_session.value.cause
    assert (host.root / "etc/kept.conf").read_text() == f"{OLD}\n"  # nothing was touched
    assert run.path.read_bytes() == b""


def test_a_damaged_journal_is_never_nothing_to_roll_back_for_the_engine(tmp_path: Path) -> None:
    host, journal = _setup(tmp_path)
    run = _damaged(host, journal)
    with pytest.raises(JournalError) as err:
        rollback_latest(host, journal.state_dir)  # it used to return [] ("nothing to do")
    assert err.value.cause.startswith("Nothing can be rolled back from the journal, but ")
    assert f"{run.folder}/backups" in err.value.remedy


def _hold_lock(journal: Journal, root: Path, run_id: str) -> subprocess.Popen[str]:
    """Another process holds the journal's lock in the run's name (so it reads in-progress)."""
    code = (
        "import time; from pathlib import Path; from gpuwizard.journal import Journal;"
        f"Journal(Path({str(journal.state_dir)!r})).acquire({run_id!r}, ['gpuwizard', 'apply'],"
        f" Path({str(root)!r})); print('held', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()  # reaped: no process has this pid now
    return child.pid


def test_a_live_worker_s_run_is_refused_a_dead_one_s_is_rolled_back(tmp_path: Path) -> None:
    host, journal = _setup(tmp_path)
    _change(host, journal, OLD, "daemon-config", "/etc/old.conf", end=False)
    holder = _hold_lock(journal, host.root, OLD)
    try:
        assert journal.read_run(OLD).status() == "in-progress"
        journal.update_meta(OLD, worker_pid=holder.pid)  # its worker is alive
        with pytest.raises(WizardError) as err:
            wizard.rollback(host, journal)
        assert err.value.cause == f"Run {OLD} is still in progress"
        assert (host.root / "etc/old.conf").exists()
        # its worker died (the lock note outlived it): no longer refused, forever
        journal.update_meta(OLD, worker_pid=_dead_pid())
        report = wizard.rollback(host, journal)
        assert [r["run"] for r in report] == [OLD] and report[0]["undone"]
        assert not (host.root / "etc/old.conf").exists()
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("pid", ["1234", -1, 0, True, 2**70])
def test_a_worker_pid_that_is_no_pid_is_no_live_worker(pid: object) -> None:
    assert not wizard._other_live_worker(pid)


def test_our_own_pid_and_another_user_s_live_process() -> None:
    import os

    assert not wizard._other_live_worker(os.getpid())  # the run's own worker rolls it back
    assert wizard._other_live_worker(1)  # init: alive (PermissionError for a normal user)


def test_runs_begun_within_one_second_keep_their_order_and_rollback_undoes_the_newest(
    tmp_path: Path,
) -> None:
    """Two applies a moment apart (a script, a fleet, a fast host: the packages step now takes
    a third of a second): the run ids' seconds are equal, and a random tail used to decide
    which was "newest", so a rollback could undo the earlier run under the later one."""
    host, journal = _setup(tmp_path)
    made = []
    for n in range(12):  # a few milliseconds in all: most ids share their second
        run = journal.start_run(["test"])
        made.append(run.run_id)
        action = WriteFile(path=f"/etc/run{n}.conf", content=b"x\n")
        action.step = "daemon-config"
        action.run(ApplyContext(host, run, "daemon-config"))
        run.append("end", {"status": "finished"})
    assert [r.run_id for r in journal.runs()] == made
    assert len(set(made)) == len(made)
    report = wizard.rollback(host, journal)
    assert [r["run"] for r in report] == [made[-1]]
    assert not (host.path("/etc/run11.conf")).exists()
    assert (host.path("/etc/run10.conf")).exists()
