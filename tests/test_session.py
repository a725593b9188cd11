"""The session is the faces' one API for runs: a rollback from the app is detached and
locked like an apply (it used to run inside the app's process, so an SSH drop stopped it
halfway), and the CLI's rollback goes the same way."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from gpuwizard import cli
from gpuwizard.demo import demo_host, demo_options
from gpuwizard.errors import LockHeld
from gpuwizard.journal import Journal, Run
from gpuwizard.options import Options
from gpuwizard.session import Session
from gpuwizard.worker import state_dir_for


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Session:
    """The demo machine with one applied, kept run (every step, the restart included)."""
    monkeypatch.setenv("GPUWIZARD_DEMO_ROOT", str(tmp_path / "demo"))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["--demo", "apply", "--yes", "--no-auto-revert"]) == 0
    host = demo_host()
    options = demo_options(Options())
    return Session(host, options, Journal(state_dir_for(host, options)))


def _wait_ended(session: Session, run_id: str, timeout: float = 60) -> Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = session.run(run_id)
        if run.ended() is not None:
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} did not end: {session.run(run_id).records}")


def test_a_rollback_nobody_follows_still_finishes_in_its_own_worker(demo: Session) -> None:
    target = demo.rollback_targets()[0]
    assert target.status() == "finished" and target.pending_undo()
    op = demo.start_rollback([target.run_id], ["test", "rollback"])
    # nobody follows it (the terminal is gone): the worker does the whole rollback anyway
    run = _wait_ended(demo, op)
    assert run.meta["kind"] == "rollback" and run.meta["targets"] == [target.run_id]
    assert run.meta["worker_pid"] != os.getpid(), "the rollback ran in the face's process"
    assert demo.run(target.run_id).status() == "rolled-back"
    assert not demo.run(target.run_id).pending_undo()
    report = demo.rollback_report(op)
    assert report and report[0]["run"] == target.run_id and report[0]["undone"]
    # the rollback's own run is no rollback target and no run to resume
    assert demo.rollback_targets() == [] and demo.active_run() is None


def test_a_rollback_waits_for_nobody_else_holding_the_journal(demo: Session) -> None:
    target = demo.rollback_targets()[0]
    demo.journal.acquire("someone-else", ["gpuwizard", "apply"], demo.host.root)
    try:
        with pytest.raises(LockHeld) as err:
            demo.start_rollback([target.run_id], ["test", "rollback"])
        assert "Another gpuwizard run is in progress" in err.value.cause
    finally:
        demo.journal.release()
    assert demo.run(target.run_id).pending_undo(), "nothing may be undone without the lock"


def test_the_apps_rollback_goes_through_the_detached_worker(demo: Session) -> None:
    import asyncio

    from gpuwizard.tui.app import GpuWizardApp

    target = demo.rollback_targets()[0]
    app = GpuWizardApp(demo.host, demo.options, demo.journal)
    assert app.demo, "the demo machine is a capability of the host"

    async def go() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(0.5)
            app.roll_back(target.run_id, None)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                await pilot.pause(0.2)
                if demo.run(target.run_id).status() == "rolled-back" and not app.run_active:
                    break
            with contextlib.suppress(Exception):
                await app.action_quit()

    asyncio.run(go())
    ops = [r for r in demo.runs() if r.meta.get("kind") == "rollback"]
    assert len(ops) == 1, [r.meta for r in demo.runs()]
    assert ops[0].meta["worker_pid"] != os.getpid()
    assert demo.run(target.run_id).status() == "rolled-back"
    assert app.run_id == ops[0].run_id  # the app followed the rollback's own run


def test_the_cli_rollback_prints_what_it_undid_and_history_names_the_rollback(
    demo: Session, capsys: Any
) -> None:
    target = demo.rollback_targets()[0]
    capsys.readouterr()
    assert cli.main(["--demo", "rollback", "--yes"]) == 0
    out = capsys.readouterr().out
    assert f"Run {target.run_id}: rolled back" in out
    assert "✓ daemon-config: /etc/docker/daemon.json: restored byte-exact" in out
    assert cli.main(["--demo", "history"]) == 0
    out = capsys.readouterr().out
    assert f"rollback of {target.run_id}: rolled back" in out
    # the JSON says the same: which run is the rollback, and of what
    assert cli.main(["--demo", "history", "--json"]) == 0
    entries = {e["run"]: e for e in json.loads(capsys.readouterr().out)["runs"]}
    [op] = [e for e in entries.values() if e["kind"] == "rollback"]
    assert op["targets"] == [target.run_id] and op["status"] == "finished"
    assert entries[target.run_id]["kind"] == "apply" and "targets" not in entries[target.run_id]
    # a second rollback finds nothing: the rollback's own run changed nothing itself
    assert cli.main(["--demo", "rollback", "--yes"]) == 0
    assert "Nothing to roll back" in capsys.readouterr().out


def test_a_rollback_that_ended_unseen_is_told_once_as_a_rollback(demo: Session) -> None:
    target = demo.rollback_targets()[0]
    op = demo.start_rollback([target.run_id], ["test", "rollback"])
    _wait_ended(demo, op)
    notice = demo.ended_unseen()
    assert notice is not None and notice.run_id == op
    assert notice.text.startswith(f"Your rollback of run {target.run_id} finished at ")
    assert notice.severity == "information"
    demo.mark_seen(op)
    assert demo.ended_unseen() is None  # said once


def test_history_json_names_each_run_s_kind_and_a_rollback_s_targets(
    tmp_path: Path, capsys: Any
) -> None:
    journal = Journal(tmp_path / "state")
    applied = journal.start_run(["gpuwizard", "apply"], run_id="20260101T000001Z-000001")
    applied.append("end", {"status": "finished"})
    meta = {"kind": "rollback", "targets": [applied.run_id]}
    op = journal.start_run(["gpuwizard", "rollback"], meta, run_id="20260101T000002Z-000002")
    op.append("end", {"status": "finished", "report": []})
    odd = journal.start_run(["gpuwizard", "rollback"], {"kind": "rollback", "targets": 7})
    odd.append("end", {"status": "finished"})
    args = ["--root", str(tmp_path), "--state-dir", str(journal.state_dir)]
    assert cli.main(["history", "--json", *args]) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert [(r["run"], r["kind"], r.get("targets")) for r in runs] == [
        (applied.run_id, "apply", None),
        (op.run_id, "rollback", [applied.run_id]),
        (odd.run_id, "rollback", []),  # a meta.json with no list of targets: none, no traceback
    ]
    assert cli.main(["history", *args]) == 0
    out = capsys.readouterr().out
    assert f"{op.run_id}  rollback of {applied.run_id}: rolled back" in out
