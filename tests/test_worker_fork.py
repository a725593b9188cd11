"""The CLI forks its detached worker (no fresh interpreter to import gpuwizard again: 0.2-0.4 s
of every apply), and the fork is as detached and as isolated as the `python -I` worker was:
not the face's child, in its own session, cwd `/`, no PYTHON* variable, no `''` or working
directory or PYTHONPATH entry on sys.path, none of the face's descriptors (a pipe the face
writes to reaches end-of-file when the face exits, while the worker still works)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

FACE = r"""
import json, os, sys, time
sys.path.insert(0, os.getcwd())   # as `python -m` does: the working directory on sys.path
from gpuwizard.demo import demo_host, demo_options
from gpuwizard.journal import Journal
from gpuwizard.options import Options
from gpuwizard.session import Session
from gpuwizard.worker import state_dir_for

host = demo_host()
options = demo_options(Options(yes=True, auto_revert=0))
session = Session(host, options, Journal(state_dir_for(host, options)))
plan = session.plan()
run_id = session.start_apply(plan.digest, ["gpuwizard", "apply"])
folder = session.journal.runs_dir / run_id
pid = int((folder / "spawned-pid").read_text())
state = str(session.journal.state_dir)
print(json.dumps({"run": run_id, "pid": pid, "face": os.getpid(), "state": state}), flush=True)
"""

PROBE = r"""
import json, os, signal, sys
sys.path.insert(0, os.getcwd())
from gpuwizard import worker
signal.signal(signal.SIGTERM, signal.SIG_IGN)
worker._isolate_process()
print(json.dumps({"path": sys.path, "cwd": os.getcwd(), "env": dict(os.environ),
                  "term": signal.getsignal(signal.SIGTERM) == signal.SIG_DFL}))
"""


def _proc(pid: int, name: str) -> str:
    return Path(f"/proc/{pid}/{name}").read_bytes().decode(errors="replace")


def test_the_forked_worker_is_detached_and_isolated(tmp_path: Path) -> None:
    hostile = tmp_path / "cwd"
    hostile.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUWIZARD_WORKER")}
    env |= {
        "GPUWIZARD_DEMO_ROOT": str(tmp_path / "demo"),
        "PYTHONPATH": f"{hostile}{os.pathsep}{Path(__file__).resolve().parent.parent}",
        "PYTHONDONTWRITEBYTECODE": "1",
        "GPUWIZARD_NO_SYSTEMD_RUN": "1",
    }
    started = time.monotonic()
    face = subprocess.run(
        [sys.executable, "-c", FACE],
        cwd=hostile,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    took = time.monotonic() - started
    assert face.returncode == 0, face.stderr[-2000:]
    info = json.loads(face.stdout.strip().splitlines()[-1])
    pid = info["pid"]
    # the face's pipes are closed in the worker: the face's run() returned long before the
    # demo apply (a few seconds of recorded output) ended
    assert Path(f"/proc/{pid}").exists(), "the worker should still be working"
    assert took < 20
    stat = _proc(pid, "stat")
    fields = stat[stat.rindex(")") + 2 :].split()
    ppid, sid = int(fields[1]), int(fields[3])
    assert ppid != info["face"] and sid == pid  # nobody's child; its own session leader
    assert os.readlink(f"/proc/{pid}/cwd") == "/"
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with_target = os.readlink(f"/proc/{pid}/fd/{fd}")
        assert str(hostile) not in with_target
    state = Path(info["state"])
    deadline = time.monotonic() + 90
    end = None
    while time.monotonic() < deadline:
        lines = (state / "runs" / info["run"] / "journal.jsonl").read_text().splitlines()
        ends = [json.loads(x) for x in lines if '"type": "end"' in x]
        if ends:
            end = ends[-1]
            break
        time.sleep(0.2)
    assert end is not None and end["data"]["status"] == "finished", lines[-3:]
    log = (state / "runs" / info["run"] / "worker.log").read_text()
    assert "Traceback" not in log


def test_the_forked_worker_s_sys_path_is_what_python_I_gives(tmp_path: Path) -> None:
    """_isolate_sys_path: the script folder / working directory and PYTHONPATH go, relative
    entries go, this gpuwizard's own location comes first."""
    from gpuwizard import worker
    from gpuwizard.selfexec import package_parent

    saved = list(sys.path)
    try:
        sys.path[:] = [str(tmp_path), "", "rel/dir", str(tmp_path / "pp"), *saved]
        worker._isolate_sys_path(str(tmp_path / "pp"), str(tmp_path / "cwd"))
        assert sys.path[0] == package_parent()
        assert str(tmp_path) not in sys.path and "" not in sys.path
        assert "rel/dir" not in sys.path and str(tmp_path / "pp") not in sys.path
    finally:
        sys.path[:] = saved


def test_a_face_with_threads_never_forks(monkeypatch: object) -> None:
    import threading

    from gpuwizard import worker

    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert not worker._can_fork()
    finally:
        stop.set()
        t.join()
    assert worker._can_fork() or threading.active_count() > 1


def test_the_forked_worker_s_process_is_what_a_fresh_worker_gets(tmp_path: Path) -> None:
    """_isolate_process, which the forked worker runs first: cwd `/`, no PYTHON* variable
    left for it or its children, no working directory on sys.path, default handlers."""
    repo = str(Path(__file__).resolve().parent.parent)
    hostile = tmp_path / "cwd"
    hostile.mkdir()
    env = {**os.environ, "PYTHONPATH": f"{hostile}{os.pathsep}{repo}", "PYTHONSAFEPATH": ""}
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    seen = json.loads(out.stdout)
    assert seen["cwd"] == "/"
    assert not [k for k in seen["env"] if k.startswith("PYTHON")]
    assert str(hostile) not in seen["path"] and "" not in seen["path"]
    assert seen["path"][0] == repo  # this gpuwizard (here the source tree), first
    assert seen["term"]


def _demo_session(tmp_path: Path, monkeypatch: Any) -> Any:
    from gpuwizard.demo import demo_host, demo_options
    from gpuwizard.journal import Journal
    from gpuwizard.options import Options
    from gpuwizard.session import Session
    from gpuwizard.worker import state_dir_for

    monkeypatch.setenv("GPUWIZARD_DEMO_ROOT", str(tmp_path / "demo"))
    host = demo_host()
    options = demo_options(Options(yes=True, auto_revert=0, steps=("repository",)))
    session = Session(host, options, Journal(state_dir_for(host, options)))
    session.journal.ensure_writable()
    return session


def test_the_forked_worker_applies_the_plan_just_made_without_probing_again(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """One probe per run: the plan the CLI made a moment ago, no run in the journal since."""
    from gpuwizard import wizard, worker

    session = _demo_session(tmp_path, monkeypatch)
    the_plan = session.plan()
    fresh = session._fresh_plan(the_plan.digest, session.options)
    assert fresh is not None and fresh[0] is the_plan
    run_id = worker.write_request(
        session.host, session.options, the_plan.digest, session.journal, ["gpuwizard"]
    )

    def no_second_probe(*a: Any, **k: Any) -> Any:
        raise AssertionError("the worker probed the host again")

    monkeypatch.setattr(wizard, "plan", no_second_probe)
    assert worker.run_worker(session.journal, run_id, host=session.host, fresh=fresh) == 0
    assert session.run(run_id).status() == "finished"


def test_a_run_in_between_makes_the_worker_probe_again_and_refuse(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Another gpuwizard run between the preview and this worker's lock: the fresh plan is not
    trusted; the host is probed again, and the changed host refused (PlanChanged)."""
    from gpuwizard import worker

    session = _demo_session(tmp_path, monkeypatch)
    the_plan = session.plan()
    fresh = session._fresh_plan(the_plan.digest, session.options)
    assert fresh is not None
    other = session.start_apply(the_plan.digest, ["gpuwizard", "apply"], detach=False)
    assert session.run(other).status() == "finished"  # it set up the repository
    run_id = worker.write_request(
        session.host, session.options, the_plan.digest, session.journal, ["gpuwizard"]
    )
    assert worker.run_worker(session.journal, run_id, host=session.host, fresh=fresh) == 1
    end = session.run(run_id).ended()
    assert end is not None and "changed since the preview" in json.dumps(end.data)


def test_a_plan_that_is_old_or_for_other_options_is_not_fresh(
    tmp_path: Path, monkeypatch: Any
) -> None:
    import dataclasses

    from gpuwizard import session as session_mod

    session = _demo_session(tmp_path, monkeypatch)
    the_plan = session.plan()
    other = dataclasses.replace(session.options, enable_cdi=not session.options.enable_cdi)
    assert session._fresh_plan(the_plan.digest, other) is None
    assert session._fresh_plan("0" * 64, session.options) is None
    monkeypatch.setattr(session_mod, "FRESH_PLAN_S", -1.0)
    assert session._fresh_plan(the_plan.digest, session.options) is None
