"""The engine on real files: crash consistency, idempotence, the lock, bad input."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gpuwizard import wizard
from gpuwizard.errors import JournalError, LockHeld, RollbackConflict, WizardError
from gpuwizard.host.system import Host
from gpuwizard.journal import Journal
from gpuwizard.options import Options

REPO = Path(__file__).resolve().parent.parent

APPLY_SCRIPT = """
import sys
sys.path.insert(0, {repo!r}); sys.path.insert(0, {tests!r})
from pathlib import Path
from gpuwizard import wizard
from gpuwizard.host.system import Host
from gpuwizard.journal import Journal, _Transitions
from gpuwizard.options import Options
import engine_steps
host = Host(Path({root!r}))
journal = Journal(Path({state!r}))
opts = Options(steps=("repository", "daemon-config"))
plan = wizard.plan(host, opts, steps=engine_steps.steps())
with journal.locked("t", ["test"]):
    run = journal.start_run(["test"])
    wizard.apply(host, opts, plan, run, steps=engine_steps.steps())
    run.append("end", {{"status": "finished"}})
print("TRANSITIONS", _Transitions.count)
"""


def make_root(base: Path) -> Path:
    root = base / "root"
    (root / "etc/app").mkdir(parents=True)
    (root / "etc/apt/sources.list.d").mkdir(parents=True)
    (root / "etc/docker").mkdir(parents=True)
    a = root / "etc/app/a.conf"
    a.write_bytes(b'{"log-driver": "journald"}')  # no trailing newline, on purpose
    os.chmod(a, 0o640)
    os.chown(a, 1234, 2345)
    legacy = root / "etc/apt/sources.list.d/legacy.list"
    legacy.write_bytes(b"deb https://nvidia.github.io/nvidia-docker/ubuntu18.04/$(ARCH) /\n")
    os.chmod(legacy, 0o600)
    return root


def snapshot(root: Path) -> dict[str, tuple[str, int, int, int]]:
    """Every file under root except the journal: hash, mode, owner."""
    out = {}
    for p in sorted(root.rglob("*")):
        if "gpuwizard" in p.parts or p.is_dir():
            continue
        st = p.lstat()
        out[str(p.relative_to(root))] = (
            hashlib.sha256(p.read_bytes()).hexdigest(),
            stat.S_IMODE(st.st_mode),
            st.st_uid,
            st.st_gid,
        )
    return out


def run_apply(root: Path, state: Path, crash_at: int | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("GPUWIZARD_CRASH_AT", None)
    if crash_at is not None:
        env["GPUWIZARD_CRASH_AT"] = str(crash_at)
    code = APPLY_SCRIPT.format(
        repo=str(REPO), tests=str(REPO / "tests"), root=str(root), state=str(state)
    )
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )


def cli(
    *args: str, env: dict | None = None, input: str | None = None
) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env.pop("GPUWIZARD_CRASH_AT", None)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "gpuwizard", *args],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        input=input,
    )


def test_a_full_run_counts_its_transitions(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    res = run_apply(root, tmp_path / "state")
    assert res.returncode == 0, res.stderr
    assert int(res.stdout.split()[-1]) >= 10


def test_rollback_restores_every_file_byte_exact_after_a_kill_at_every_transition(
    tmp_path: Path,
) -> None:
    probe_root = make_root(tmp_path / "probe")
    total = int(run_apply(probe_root, tmp_path / "probe" / "state").stdout.split()[-1])
    for n in range(1, total + 1):
        base = tmp_path / f"kill{n}"
        root = make_root(base)
        state = base / "state"
        before = snapshot(root)
        res = run_apply(root, state, crash_at=n)
        assert res.returncode == -signal.SIGKILL, (n, res.stdout, res.stderr)
        rb = cli("rollback", "--root", str(root), "--state-dir", str(state), "--yes", "--json")
        assert rb.returncode == 0, (n, rb.stdout, rb.stderr)
        assert snapshot(root) == before, f"files differ after a kill at transition {n}"
        # rollback again: idempotent, nothing left to do
        again = cli("rollback", "--root", str(root), "--state-dir", str(state), "--yes", "--json")
        assert json.loads(again.stdout)["rolled_back"] == []


@pytest.mark.parametrize("detach", [False, True], ids=["in-process", "detached"])
def test_a_rollback_killed_half_way_finishes_when_run_again(tmp_path: Path, detach: bool) -> None:
    root = make_root(tmp_path)
    state = tmp_path / "state"
    before = snapshot(root)
    assert run_apply(root, state).returncode == 0
    for k in range(1, 12):
        rb = cli(
            "rollback",
            "--root",
            str(root),
            "--state-dir",
            str(state),
            "--yes",
            *([] if detach else ["--no-detach"]),
            env={"GPUWIZARD_CRASH_AT": str(k)},
        )
        if rb.returncode == 0:
            break
        if not detach:
            assert rb.returncode == -signal.SIGKILL
        else:  # the detached worker was killed; the face says so and what to do
            assert rb.returncode == 1, (rb.stdout, rb.stderr)
            assert "stopped before it finished" in rb.stderr
            assert "Run `gpuwizard rollback` again" in rb.stderr
    final = cli("rollback", "--root", str(root), "--state-dir", str(state), "--yes", "--json")
    assert final.returncode == 0, final.stderr
    assert snapshot(root) == before


def test_second_apply_changes_nothing_and_says_so(tmp_path: Path) -> None:
    import engine_steps

    root = make_root(tmp_path)
    host = Host(root)
    opts = Options()
    journal = Journal(tmp_path / "state")
    plan = wizard.plan(host, opts, steps=engine_steps.steps())
    assert plan.has_changes()
    run = journal.start_run(["t"])
    wizard.apply(host, opts, plan, run, steps=engine_steps.steps())
    again = wizard.plan(host, opts, steps=engine_steps.steps())
    assert not again.has_changes()
    assert [s.state for s in again.steps] == ["done", "done"]


def test_plan_changes_nothing_on_disk(tmp_path: Path) -> None:
    import engine_steps

    root = make_root(tmp_path)
    before = snapshot(root)
    listing = sorted(str(p) for p in root.rglob("*"))
    wizard.plan(Host(root), Options(), steps=engine_steps.steps())
    assert snapshot(root) == before
    assert sorted(str(p) for p in root.rglob("*")) == listing


def test_second_run_is_refused_while_the_first_holds_the_lock(tmp_path: Path) -> None:
    state = tmp_path / "state"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import sys,time; sys.path.insert(0, {str(REPO)!r});"
            "from gpuwizard.journal import Journal; from pathlib import Path;"
            f"j=Journal(Path({str(state)!r})); j.acquire('r1', ['gpuwizard','apply']);"
            "print('held', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(LockHeld) as exc:
            Journal(state).acquire("r2", ["gpuwizard", "apply"])
        assert f"pid {holder.pid}" in exc.value.cause
        assert "attach" in exc.value.remedy
    finally:
        holder.kill()
        holder.wait()
    Journal(state).acquire("r3", ["again"])  # free once the holder is gone


def test_a_file_edited_after_we_wrote_it_is_not_clobbered_by_rollback(tmp_path: Path) -> None:
    import engine_steps

    root = make_root(tmp_path)
    host = Host(root)
    journal = Journal(tmp_path / "state")
    plan = wizard.plan(host, Options(), steps=engine_steps.steps())
    run = journal.start_run(["t"])
    wizard.apply(host, Options(), plan, run, steps=engine_steps.steps())
    (root / "etc/app/a.conf").write_bytes(b"someone else's edit\n")
    with pytest.raises(RollbackConflict) as exc:
        wizard.rollback(host, journal)
    assert "changed by someone else" in exc.value.cause
    assert (root / "etc/app/a.conf").read_bytes() == b"someone else's edit\n"
    # --force restores the original and keeps the edit in the backups
    wizard.rollback(host, journal, force=True)
    assert (root / "etc/app/a.conf").read_bytes() == b'{"log-driver": "journald"}'
    backups = list((tmp_path / "state/runs").glob("*/backups/*"))
    assert any(b.read_bytes() == b"someone else's edit\n" for b in backups)


def test_a_corrupt_journal_is_a_clear_error_and_loses_nothing(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    state = tmp_path / "state"
    assert run_apply(root, state).returncode == 0
    journal_file = next(state.glob("runs/*/journal.jsonl"))
    lines = journal_file.read_bytes().split(b"\n")
    lines[2] = b'{"seq": 3, "type": "intent", "da'
    journal_file.write_bytes(b"\n".join(lines))
    # history still lists the run (one bad run must not hide the others), marked damaged
    res = cli("history", "--root", str(root), "--state-dir", str(state))
    assert res.returncode == 0, res.stderr
    assert "damaged" in res.stdout and "is corrupt at line 3" in res.stdout
    # and rolling it back is a clear error naming the backups
    run_id = journal_file.parent.name
    res = cli("rollback", "--run", run_id, "--root", str(root), "--state-dir", str(state), "--yes")
    assert res.returncode == 1
    assert "is corrupt at line 3" in res.stderr
    assert "backups" in res.stderr and "Traceback" not in res.stderr
    assert len(list(state.glob("runs/*/backups/*"))) >= 3


def test_a_torn_last_record_is_dropped_and_rollback_still_works(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    state = tmp_path / "state"
    before = snapshot(root)
    assert run_apply(root, state).returncode == 0
    journal_file = next(state.glob("runs/*/journal.jsonl"))
    with open(journal_file, "ab") as fh:
        fh.write(b'{"seq": 99, "type": "do')
    hist = cli("history", "--root", str(root), "--state-dir", str(state))
    assert hist.returncode == 0 and "torn last record" in hist.stdout
    rb = cli("rollback", "--root", str(root), "--state-dir", str(state), "--yes")
    assert rb.returncode == 0, rb.stderr
    assert snapshot(root) == before


def test_a_state_directory_on_a_read_only_mount_is_named(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    if (
        subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)]).returncode
        != 0
    ):
        pytest.skip("cannot mount a tmpfs here")
    try:
        with pytest.raises(JournalError) as exc:
            Journal(ro / "gpuwizard").ensure_writable()
        assert "read-only" in exc.value.cause
        assert "--state-dir" in exc.value.remedy
    finally:
        subprocess.run(["umount", str(ro)], check=True)


def test_a_missing_root_is_a_clear_error(tmp_path: Path) -> None:
    res = cli("status", "--root", str(tmp_path / "nope"))
    assert res.returncode == 1
    assert "does not exist" in res.stderr and "--root" in res.stderr


def test_write_file_refuses_a_directory_and_a_dangling_symlink(tmp_path: Path) -> None:
    from gpuwizard.actions.files import WriteFile

    root = make_root(tmp_path)
    (root / "etc/docker/daemon.json").mkdir()
    with pytest.raises(WizardError, match="is a directory"):
        WriteFile(path="/etc/docker/daemon.json", content=b"{}").preview(Host(root))
    os.rmdir(root / "etc/docker/daemon.json")
    os.symlink("/nowhere/daemon.json", root / "etc/docker/daemon.json")
    with pytest.raises(WizardError, match="does not exist"):
        WriteFile(path="/etc/docker/daemon.json", content=b"{}").preview(Host(root))


def test_write_file_writes_through_a_symlink_and_says_so(tmp_path: Path) -> None:
    from gpuwizard.actions.base import ApplyContext
    from gpuwizard.actions.files import WriteFile

    root = make_root(tmp_path)
    target = root / "etc/docker/real.json"
    target.write_bytes(b"{}\n")
    os.symlink("real.json", root / "etc/docker/daemon.json")
    action = WriteFile(path="/etc/docker/daemon.json", content=b'{"a": 1}\n')
    diff = action.preview(Host(root))[0]
    assert "a symlink; its target" in diff.path
    run = Journal(tmp_path / "state").start_run(["t"])
    ctx = ApplyContext(Host(root), run, "daemon-config")
    undo = action.prepare(ctx)
    action.apply(ctx)
    assert (root / "etc/docker/daemon.json").is_symlink()
    assert target.read_bytes() == b'{"a": 1}\n'
    WriteFile.undo(ctx, undo, None)
    assert target.read_bytes() == b"{}\n"


def test_an_interrupted_run_is_shown_first_and_a_new_apply_takes_it_over(tmp_path: Path) -> None:
    from gpuwizard import worker

    root = make_root(tmp_path)
    state = tmp_path / "state"
    before = snapshot(root)
    res = run_apply(root, state, crash_at=6)  # killed after a change was made
    assert res.returncode == -signal.SIGKILL
    journal = Journal(state)
    interrupted = worker.active_run(journal)
    assert interrupted is not None and interrupted.status() == "interrupted"
    assert interrupted.pending_undo()

    worker._mark_resumed(journal, "a-newer-run")
    assert journal.read_run(interrupted.run_id).status() == "resumed"
    assert worker.active_run(journal) is None
    # its changes are still undone by rollback --all
    rb = cli("rollback", "--all", "--root", str(root), "--state-dir", str(state), "--yes")
    assert rb.returncode == 0, rb.stderr
    assert snapshot(root) == before


def test_a_step_chosen_alone_still_sees_what_earlier_probes_found(tmp_path: Path) -> None:
    """`--step gpu-test` on a machine without a GPU: the driver step is not selected, but
    its finding (no GPU) still reaches the gpu-test step, which says why it cannot run."""
    from gpuwizard.host.system import Host as RealHost

    plan = wizard.plan(RealHost(), Options(steps=("gpu-test",), state_dir=str(tmp_path)))
    driver, gpu_test = plan.step("driver"), plan.step("gpu-test")
    assert driver.state == "skipped"
    assert any("driver is" in w for w in plan.warnings)
    assert gpu_test.state == "blocked"
    assert "no working driver" in gpu_test.reason


def test_plan_detailed_exitcode_on_a_sandbox_root(tmp_path: Path) -> None:
    """`plan --root R --json --detailed-exitcode`: the seven steps with states and diffs; 1 when
    a selected step is blocked, 2 when changes are pending, 0 when there is nothing to do."""
    root = tmp_path / "root"
    (root / "etc/docker").mkdir(parents=True)
    (root / "etc/os-release").write_text('ID=ubuntu\nVERSION_ID="24.04"\nID_LIKE=debian\n')
    (root / "etc/docker/daemon.json").write_bytes(b'{"log-driver": "journald"}\n')
    state = str(tmp_path / "state")
    full = cli("plan", "--root", str(root), "--state-dir", state, "--json", "--detailed-exitcode")
    data = json.loads(full.stdout)
    assert [s["step"] for s in data["steps"]] == [
        "driver",
        "repository",
        "packages",
        "cdi",
        "daemon-config",
        "restart",
        "gpu-test",
    ]
    assert full.returncode == 1  # no GPU and no package manager in this root: blocked
    one = cli(
        "plan",
        "--root",
        str(root),
        "--state-dir",
        state,
        "--json",
        "--detailed-exitcode",
        "--step",
        "daemon-config",
    )
    assert one.returncode == 2, one.stdout + one.stderr
    step = next(s for s in json.loads(one.stdout)["steps"] if s["step"] == "daemon-config")
    assert step["state"] == "pending"
    assert '"nvidia"' in step["diffs"][0]["after"]
    assert step["diffs"][0]["before"] == '{"log-driver": "journald"}\n'
    assert (root / "etc/docker/daemon.json").read_bytes() == b'{"log-driver": "journald"}\n'
