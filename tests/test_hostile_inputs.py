"""Hostile inputs: every bad value a user (or a damaged disk) can hand gpuwizard, and every way
a rollback could make things worse. Each is a clear error naming cause and fix, with nothing
changed and no traceback. Future changes keep this module green (issue 13, items 6-8, 10-12).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from gpuwizard import cli, daemon_json, wizard
from gpuwizard.actions.base import ApplyContext
from gpuwizard.actions.files import WriteFile
from gpuwizard.errors import RollbackConflict
from gpuwizard.host.system import Host
from gpuwizard.journal import Journal

REPO = Path(__file__).resolve().parent.parent
DAEMON = "/etc/docker/daemon.json"


def _root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc/docker").mkdir(parents=True)
    (root / "etc/apt/sources.list.d").mkdir(parents=True)
    (root / "etc/os-release").write_text("ID=debian\nVERSION_ID=12\n")
    return root


def _main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """The real CLI entry point, in this process: any traceback fails the test."""
    code = cli.main(args)
    out = capsys.readouterr()
    return code, out.out + out.err


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GPUWIZARD_CRASH_AT"}
    return subprocess.run(
        [sys.executable, "-m", "gpuwizard", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _write(root: Path, state: Path, content: bytes, step: str = "daemon-config") -> Any:
    """One real WriteFile of daemon.json through the journal, as the daemon-config step."""
    host = Host(root)
    journal = Journal(state)
    run = journal.start_run(["test"])
    action = WriteFile(path=DAEMON, content=content, merge_back="daemon-json")
    action.step = step
    action.run(ApplyContext(host, run, step))
    return host, journal, run


# -- item 12: bad options are an error naming the fix, before anything happens ---------------


@pytest.mark.parametrize(
    "args, expect",
    [
        (["--docker-restart-command", "systemctl 'restart docker"], "Balance the quotes"),
        (["--daemon-json", "etc/docker/daemon.json"], "relative path"),
        (["--daemon-json", "/etc/docker/../../../etc/shadow"], "climbs out"),
        (["--repo-url", "https://mirror.example/stable\ndeb http://evil/ /"], "newline"),
        (["--key-url", "gopher://x/key"], "not an http(s) or file URL"),
    ],
)
def test_a_bad_option_is_a_clear_error_and_nothing_is_probed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], expect: str
) -> None:
    root = _root(tmp_path)
    code, text = _main(["plan", "--root", str(root), *args], capsys)
    assert code == 1
    assert expect in text and "->" in text
    assert "Traceback" not in text


def test_a_5000_character_root_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, text = _main(["status", "--root", "/" + "a" * 5000], capsys)
    assert code == 1
    assert "--root is not a usable path" in text and "Traceback" not in text


@pytest.mark.parametrize("value", ["-5", "nan", "inf"])
def test_auto_revert_that_is_not_a_number_of_seconds_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    """Today -5 and nan silently turned auto-revert off (`auto_revert > 0` is False)."""
    with pytest.raises(SystemExit) as exc:
        cli.main(["apply", "--root", str(_root(tmp_path)), f"--auto-revert={value}"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--auto-revert" in err and "number of seconds >= 0" in err


def test_rollback_run_that_is_a_path_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _root(tmp_path)
    state = tmp_path / "state"
    args = ["--root", str(root), "--state-dir", str(state), "--yes"]
    code, text = _main(["rollback", "--run", "../../../../etc", *args], capsys)
    assert code == 1 and "is not a run id" in text and "rolled back" not in text
    code, text = _main(["rollback", "--run", "20990101T000000Z-abcdef", *args], capsys)
    assert code == 1 and "There is no run" in text and "rolled back" not in text


def test_attach_to_a_run_that_does_not_exist_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _root(tmp_path)
    args = ["--root", str(root), "--state-dir", str(tmp_path / "state")]
    code, text = _main(["attach", "bogus", *args], capsys)
    assert code == 1 and "There is no run bogus" in text and "interrupted" not in text


# -- daemon.json contents dockerd refuses or Python cannot parse ------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b'{"a": ' * 10000 + b"1" + b"}" * 10000,
        b'{"a": ' + b"[" * 10000 + b"]" * 10000 + b"}",
    ],
    ids=["objects", "lists"],
)
def test_a_10000_level_nested_daemon_json_is_refused_not_a_recursion_error(data: bytes) -> None:
    with pytest.raises(daemon_json.DaemonJsonError) as exc:
        daemon_json.merge(data, daemon_json.Wanted())
    assert "nested too deeply" in exc.value.cause


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_in_daemon_json_are_refused(literal: str) -> None:
    data = b'{"max-concurrent-downloads": ' + literal.encode() + b"}\n"
    with pytest.raises(daemon_json.DaemonJsonError) as exc:
        daemon_json.merge(data, daemon_json.Wanted())
    assert literal in exc.value.cause and "dockerd refuses" in exc.value.remedy


# -- the state disk, the journal --------------------------------------------------------------


def test_a_full_state_disk_is_named_and_nothing_changes(tmp_path: Path) -> None:
    full = tmp_path / "full"
    full.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(full)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        fd = os.open(full / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass
        finally:
            os.close(fd)
        root = _root(tmp_path)
        (root / "etc/docker/daemon.json").write_bytes(b"{}\n")
        res = _cli(
            "apply", "--root", str(root), "--state-dir", str(full / "state"), "--yes",
            "--step", "daemon-config", "--no-detach",
        )  # fmt: skip
        assert res.returncode == 1, res.stdout + res.stderr
        assert "full disk" in res.stderr and "--state-dir" in res.stderr
        assert "Traceback" not in res.stderr
        assert (root / "etc/docker/daemon.json").read_bytes() == b"{}\n"
    finally:
        subprocess.run(["umount", "-l", str(full)], check=True)


def test_a_disk_that_fills_during_a_run_is_named_and_leaves_no_torn_record(
    tmp_path: Path,
) -> None:
    from gpuwizard.errors import JournalError
    from gpuwizard.journal import read_records

    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        run = Journal(disk / "state").start_run(["test"])
        fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass
        finally:
            os.close(fd)
        with pytest.raises(JournalError) as exc:
            run.save_backup(os.urandom(8192))
        assert "disk is full" in exc.value.cause
        with pytest.raises(JournalError):
            run.append("intent", {"pad": "x" * 100_000})
        records, warnings = read_records(run.path)  # whole records only, none torn
        assert [r.type for r in records] == ["begin"] and not warnings
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def test_one_corrupt_journal_does_not_block_history_or_another_runs_rollback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _root(tmp_path)
    state = tmp_path / "state"
    (root / "etc/docker/daemon.json").write_bytes(b"{}\n")
    _, journal, first = _write(root, state, b'{"runtimes": {}}\n')
    first.append("end", {"status": "finished"})
    time.sleep(1.1)  # run ids are per second
    other = root / "etc/other.conf"
    host = Host(root)
    second = journal.start_run(["test"])
    WriteFile(path="/etc/other.conf", content=b"x\n").run(ApplyContext(host, second, "driver"))
    second.append("end", {"status": "finished"})
    # the first run's journal gets a corrupt line in the middle
    lines = first.path.read_bytes().split(b"\n")
    lines[1] = b'{"seq": 2, "type": "intent", "da'
    first.path.write_bytes(b"\n".join(lines))

    args = ["--root", str(root), "--state-dir", str(state)]
    code, text = _main(["history", *args], capsys)
    assert code == 0, text
    assert first.run_id in text and "damaged" in text and "corrupt at line 2" in text
    assert second.run_id in text
    code, text = _main(["rollback", "--run", second.run_id, "--yes", *args], capsys)
    assert code == 0, text
    assert not other.exists()
    code, text = _main(["rollback", "--run", first.run_id, "--yes", *args], capsys)
    assert code == 1 and "corrupt" in text and "backups" in text and "Traceback" not in text


def test_an_empty_journal_with_backups_is_not_nothing_to_roll_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _root(tmp_path)
    state = tmp_path / "state"
    (root / "etc/docker/daemon.json").write_bytes(b'{"debug": true}\n')
    _, _, run = _write(root, state, b'{"debug": true, "runtimes": {}}\n')
    run.path.write_bytes(b"")
    args = ["--root", str(root), "--state-dir", str(state), "--yes"]
    code, text = _main(["rollback", *args], capsys)
    assert code == 1, text
    assert "Nothing to roll back" not in text
    assert "backup(s) but its journal records no change" in text and "backups" in text


# -- files: modes, xattrs, bytes --------------------------------------------------------------


def test_a_mode_000_daemon_json_keeps_its_mode_through_apply_and_rollback(tmp_path: Path) -> None:
    root = _root(tmp_path)
    target = root / "etc/docker/daemon.json"
    target.write_bytes(b"{}\n")
    os.chmod(target, 0)
    host, journal, _ = _write(root, tmp_path / "state", b'{"runtimes": {}}\n')
    assert stat.S_IMODE(target.stat().st_mode) == 0
    wizard.rollback(host, journal)
    assert target.read_bytes() == b"{}\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0


def test_xattrs_survive_apply_and_rollback(tmp_path: Path) -> None:
    """SELinux labels and ACLs are extended attributes; user.* stands for them here."""
    root = _root(tmp_path)
    target = root / "etc/docker/daemon.json"
    target.write_bytes(b"{}\n")
    try:
        os.setxattr(target, "user.label", b"system_u:object_r:container_config_t:s0")
    except OSError:
        pytest.skip("this file system has no user xattrs")
    host, journal, _ = _write(root, tmp_path / "state", b'{"runtimes": {}}\n')
    assert os.getxattr(target, "user.label").startswith(b"system_u")
    # someone drops the label on our file: the rollback still brings the original back
    os.removexattr(target, "user.label")
    wizard.rollback(host, journal)
    assert target.read_bytes() == b"{}\n"
    assert os.getxattr(target, "user.label") == b"system_u:object_r:container_config_t:s0"


def test_a_non_utf8_byte_in_a_sources_file_is_kept_when_the_file_is_rewritten(
    tmp_path: Path,
) -> None:
    from gpuwizard.host.sources import legacy_apt_sources

    root = _root(tmp_path)
    data = (
        b"# Mirror f\xfcr M\xfcnchen (Latin-1)\n"
        b"deb http://deb.debian.org/debian bookworm main\n"
        b"deb https://nvidia.github.io/nvidia-docker/debian10/$(ARCH) /\n"
    )
    (root / "etc/apt/sources.list.d/mixed.list").write_bytes(data)
    found = legacy_apt_sources(
        Host(root), "https://nvidia.github.io/libnvidia-container/stable", "/none"
    )
    assert len(found) == 1
    assert found[0].after == (
        b"# Mirror f\xfcr M\xfcnchen (Latin-1)\ndeb http://deb.debian.org/debian bookworm main\n"
    )


# -- item 6: a rollback never leaves a daemon.json Docker refuses ----------------------------


def _restart_intent(run: Any, marker: Path) -> None:
    """A restart-docker intent whose undo (the restart on the restored file) touches a
    marker: if the rollback restarted Docker, the marker exists."""
    run.append(
        "intent",
        {
            "step": "restart",
            "action": "restart-docker",
            "describe": "restart Docker",
            "undo": {"method": "command", "argv": ["touch", str(marker)], "wait": 1},
        },
    )


def test_rollback_that_would_leave_default_runtime_without_its_runtime_stops(
    tmp_path: Path,
) -> None:
    root = _root(tmp_path)
    target = root / "etc/docker/daemon.json"
    original = b'{\n    "debug": true\n}\n'
    target.write_bytes(original)
    merged = daemon_json.merge(original, daemon_json.Wanted()).after
    host, journal, run = _write(root, tmp_path / "state", merged)
    marker = tmp_path / "docker-restarted"
    _restart_intent(run, marker)
    # someone makes nvidia the default by hand after gpuwizard added the runtime
    edited = merged.replace(b'"debug": true,', b'"debug": true,\n    "default-runtime": "nvidia",')
    assert edited != merged
    target.write_bytes(edited)
    with pytest.raises(RollbackConflict) as exc:
        wizard.rollback(host, journal)
    assert "Docker refuses to start" in exc.value.cause and "default-runtime" in exc.value.cause
    assert "--force" in exc.value.remedy
    assert target.read_bytes() == edited  # nothing changed
    assert not marker.exists()  # and Docker was not restarted on it
    # --force restores the original bytes (the restart's undo is not asked for here: this
    # machine has no Docker to restart)
    wizard.rollback(host, journal, steps={"daemon-config"}, force=True)
    assert target.read_bytes() == original


def test_rollback_does_not_restore_an_original_docker_would_not_start_on(tmp_path: Path) -> None:
    """The merge repairs a hand-written default-runtime nvidia with no runtime; putting that
    file back byte-exact and restarting Docker on it would leave Docker down."""
    root = _root(tmp_path)
    target = root / "etc/docker/daemon.json"
    original = b'{"default-runtime": "nvidia"}\n'
    target.write_bytes(original)
    merged = daemon_json.merge(original, daemon_json.Wanted()).after
    host, journal, run = _write(root, tmp_path / "state", merged)
    marker = tmp_path / "docker-restarted"
    _restart_intent(run, marker)
    with pytest.raises(RollbackConflict) as exc:
        wizard.rollback(host, journal)
    assert "Docker refuses to start" in exc.value.cause
    assert target.read_bytes() == merged and not marker.exists()


# -- item 7: liveness by the run's lock, never a bare pid ------------------------------------


def test_a_reused_pid_does_not_make_a_dead_run_look_alive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _root(tmp_path)
    target = root / "etc/docker/daemon.json"
    target.write_bytes(b"{}\n")
    state = tmp_path / "state"
    _, journal, run = _write(root, state, b'{"runtimes": {}}\n')
    # the worker died; an unrelated live process now has its pid
    unrelated = subprocess.Popen(["sleep", "60"])
    try:
        journal.update_meta(run.run_id, worker_pid=unrelated.pid)
        assert journal.read_run(run.run_id).status() == "interrupted"
        code, text = _main(["history", "--root", str(root), "--state-dir", str(state)], capsys)
        assert "interrupted" in text and "in-progress" not in text
        args = ["--root", str(root), "--state-dir", str(state), "--yes"]
        code, text = _main(["rollback", *args], capsys)
        assert code == 0, text
        assert target.read_bytes() == b"{}\n"
    finally:
        unrelated.kill()
        unrelated.wait()


def test_a_live_worker_is_seen_by_its_lock(tmp_path: Path) -> None:
    root = _root(tmp_path)
    (root / "etc/docker/daemon.json").write_bytes(b"{}\n")
    state = tmp_path / "state"
    _, journal, run = _write(root, state, b'{"runtimes": {}}\n')
    holder = _hold_lock(state, root, run.run_id)
    try:
        journal.update_meta(run.run_id, worker_pid=999_999_999)  # a pid that means nothing
        assert journal.read_run(run.run_id).status() == "in-progress"
    finally:
        holder.kill()
        holder.wait()
    assert journal.read_run(run.run_id).status() == "interrupted"


# -- item 8: one lock per target root, whatever the state directory ---------------------------


def _hold_lock(state: Path, root: Path, run_id: str) -> subprocess.Popen[str]:
    code = (
        f"import sys,time; sys.path.insert(0, {str(REPO)!r});"
        "from gpuwizard.journal import Journal; from pathlib import Path;"
        f"Journal(Path({str(state)!r})).acquire({run_id!r}, ['gpuwizard','apply'],"
        f" Path({str(root)!r}));"
        "print('held', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_two_state_dirs_cannot_change_one_root_at_once(tmp_path: Path) -> None:
    root = _root(tmp_path)
    first = _hold_lock(tmp_path / "state-a", root, "run-a")
    try:
        code = (
            f"import sys; sys.path.insert(0, {str(REPO)!r});"
            "from gpuwizard.journal import Journal; from gpuwizard.errors import LockHeld;"
            "from pathlib import Path\n"
            "try:\n"
            f"    Journal(Path({str(tmp_path / 'state-b')!r})).acquire('run-b', ['x'],"
            f" Path({str(root)!r}))\n"
            "except LockHeld as exc:\n"
            "    print('REFUSED', exc.cause, exc.remedy)\n"
            "else:\n"
            "    print('TOOK IT')\n"
        )
        res = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=30
        )
        assert "REFUSED" in res.stdout, res.stdout + res.stderr
        assert f"on the target root {root}" in res.stdout
        assert str(tmp_path / "state-a") in res.stdout  # names where to attach
        # the other state dir's own lock was not left taken
        later = Journal(tmp_path / "state-b")
        later.acquire("later", ["x"])
        later.release()
    finally:
        first.kill()
        first.wait()
    j = Journal(tmp_path / "state-b")
    j.acquire("run-b", ["x"], root)  # free once the first is gone
    j.release()


def test_lock_held_in_another_state_dir_stops_a_cli_rollback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _root(tmp_path)
    target = root / "etc/docker/daemon.json"
    target.write_bytes(b"{}\n")
    _write(root, tmp_path / "state-b", b'{"runtimes": {}}\n')
    first = _hold_lock(tmp_path / "state-a", root, "run-a")
    try:
        args = ["--root", str(root), "--state-dir", str(tmp_path / "state-b"), "--yes"]
        code, text = _main(["rollback", *args], capsys)
        assert code == 1 and "on the target root" in text
        assert target.read_bytes() == b'{"runtimes": {}}\n'
    finally:
        first.kill()
        first.wait()
    code, text = _main(["rollback", *args], capsys)  # the holder is gone: now it works
    assert code == 0, text
    assert target.read_bytes() == b"{}\n"


# -- item 10 (folders): what gpuwizard created and left empty goes on rollback ---------------


def test_folders_gpuwizard_created_are_removed_on_rollback(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    host = Host(root)
    journal = Journal(tmp_path / "state")
    run = journal.start_run(["t"])
    WriteFile(path=DAEMON, content=b"{}\n").run(ApplyContext(host, run, "daemon-config"))
    assert (root / "etc/docker/daemon.json").exists()
    report = wizard.rollback(host, journal)
    assert not (root / "etc/docker").exists(), report
    assert (root / "etc").is_dir()
    # a folder someone put a file into since is kept
    run = journal.start_run(["t"])
    WriteFile(path=DAEMON, content=b"{}\n").run(ApplyContext(host, run, "daemon-config"))
    (root / "etc/docker/certs.d").mkdir()
    wizard.rollback(host, journal)
    assert (root / "etc/docker/certs.d").is_dir() and not (root / DAEMON.lstrip("/")).exists()


# -- a login in a mirror URL: refused up front, never shown, never a traceback ---------------
SECRET = "s3cr3t-Pw9"
MIRROR = "mirror.example.invalid"


@pytest.fixture(scope="module")
def real_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A real armored key and its fingerprint: the plan gets past the key to the probe."""
    if shutil.which("gpg") is None:
        pytest.skip("needs gpg")
    from debroot import make_key

    top = tmp_path_factory.mktemp("urlkey")
    key = make_key(top / "home", "url test <url@example.invalid>")
    (top / "gpgkey").write_bytes(key.armored)
    return top / "gpgkey", key.fingerprint


APT_LINE = f"`machine {MIRROR} login USER password PASSWORD`"


@pytest.mark.parametrize(
    "args, expect",
    [
        (  # the reported command: it reached the probe and died in http.client
            ["--repo-url", f"https://u:{SECRET}@{MIRROR}/nvidia/stable"],
            [
                f"--repo-url 'https://********@{MIRROR}/nvidia/stable' holds a login",
                f"Pass --repo-url https://{MIRROR}/nvidia/stable",
                "/etc/apt/auth.conf.d/nvidia.conf (owned by root, mode 0600)",
                APT_LINE,
                "username=USER and password=PASSWORD in the [nvidia-container-toolkit] "
                "section of /etc/yum.repos.d/nvidia-container-toolkit.repo",
            ],
        ),
        (  # a token as the user name alone
            ["--repo-url", f"https://{SECRET}@{MIRROR}/nvidia/stable"],
            ["holds a login", APT_LINE],
        ),
        (  # apt's machine without a protocol matches https only: http needs it spelt out
            ["--repo-url", f"http://u:{SECRET}@{MIRROR}:8081/nvidia/stable"],
            [f"`machine http://{MIRROR}:8081 login USER password PASSWORD`"],
        ),
        (  # a password with a / in it: urlsplit reads the rest as a port
            ["--repo-url", f"https://u:{SECRET}/x@{MIRROR}/nvidia/stable"],
            ["has no usable host[:port]", "a login does not go in the URL"],
        ),
        (
            ["--repo-url", f"https://{MIRROR}:8o80/nvidia/stable"],
            [f"--repo-url 'https://{MIRROR}:8o80/nvidia/stable' has no usable host[:port]"],
        ),
        (
            ["--key-url", f"https://u:{SECRET}@{MIRROR}/nvidia/gpgkey"],
            [
                "--key-url 'https://********@",
                f"curl -fsSL -u USER https://{MIRROR}/nvidia/gpgkey -o /root/nvidia-gpgkey",
                "--key-url file:///root/nvidia-gpgkey",
            ],
        ),
        (  # an export would carry it to every host
            ["--export", "sh", "--repo-url", f"https://u:{SECRET}@{MIRROR}/nvidia/stable"],
            ["holds a login", APT_LINE],
        ),
    ],
)
def test_a_login_in_a_url_option_is_refused_by_name_and_never_shown(
    tmp_path: Path, real_key: tuple[Path, str], args: list[str], expect: list[str]
) -> None:
    key, fingerprint = real_key
    # a Rocky root: dnf is its package manager, so the old code got past the key to the probe
    root, state = tmp_path / "root", tmp_path / "state"
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text('ID=rocky\nVERSION_ID=9.4\nID_LIKE="rhel centos fedora"\n')
    res = _cli(
        "plan",
        "--root",
        str(root),
        "--state-dir",
        str(state),
        "--step",
        "repository",
        "--key-url",
        f"file://{key}",
        "--key-fingerprint",
        fingerprint,
        *args,
    )
    assert res.returncode == 1, res.stdout + res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    assert SECRET not in res.stdout + res.stderr
    assert res.stderr.startswith("error: ") and "\n  -> " in res.stderr, res.stderr
    for text in expect:
        assert text in res.stderr, res.stderr
    assert not state.exists() or not any(
        SECRET.encode() in p.read_bytes() for p in state.rglob("*") if p.is_file()
    )


def test_bundle_refuses_a_login_in_its_urls_before_any_download(tmp_path: Path) -> None:
    for option, expect in (
        ("--repo-url", "`gpuwizard bundle` downloads with no login"),
        ("--key-url", "--key-url file:///root/nvidia-gpgkey"),
    ):
        res = _cli(
            "bundle",
            "--target",
            "debian12/amd64",
            "-o",
            str(tmp_path / "kit.tar"),
            "--no-images",
            "--no-pyz",
            option,
            f"https://builder:{SECRET}@{MIRROR}/nvidia/x",
        )
        assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
        assert f"{option} 'https://********@{MIRROR}/nvidia/x' holds a login" in res.stderr
        assert expect in res.stderr and SECRET not in res.stdout + res.stderr
        assert not (tmp_path / "kit.tar").exists()


def test_a_url_urllib_cannot_open_is_a_wizard_error_that_does_not_quote_it() -> None:
    """Below the option check (Options built by code): http.client's InvalidURL quoted the
    host part, password included, and was no URLError, so it came out as a traceback."""
    import urllib.error
    import urllib.request

    from gpuwizard.errors import WizardError
    from gpuwizard.host import download
    from gpuwizard.host.keys import fetch_key
    from gpuwizard.steps.repository import probe_repository

    for url in (
        f"https://u:{SECRET}@{MIRROR}/stable/deb/amd64/InRelease",
        f"https://u:{SECRET}/x@{MIRROR}/stable/deb/amd64/InRelease",
    ):
        with pytest.raises(urllib.error.URLError) as raw:
            download.urlopen(urllib.request.Request(url), timeout=5)
        assert SECRET not in str(raw.value)
        for fetch in (probe_repository, fetch_key):
            with pytest.raises(WizardError) as err:
                fetch(url, timeout=5)
            shown = f"{err.value.cause} {err.value.remedy} {err.value.detail or ''}"
            assert SECRET not in shown and "not a usable URL" in shown, shown


def test_diffs_as_shown_and_printed_mask_a_repo_files_password() -> None:
    from gpuwizard.actions.base import Diff

    before = "[nvidia-container-toolkit]\nusername=builder\npassword=old-" + SECRET + "\n"
    after = before.replace("old-", "new-") + "baseurl=https://mirror/stable/rpm/$basearch\n"
    diff = Diff("/etc/yum.repos.d/nvidia-container-toolkit.repo", before, after)
    text = diff.unified() + json.dumps(diff.to_json())
    assert SECRET not in text
    assert "+baseurl=https://mirror/stable/rpm/$basearch" in diff.unified()
    assert " password=********" in diff.unified()


@pytest.mark.parametrize(
    "url, shown",
    [
        (f"https://u:{SECRET}@{MIRROR}/x", f"https://********@{MIRROR}/x"),
        (f"https://{SECRET}@{MIRROR}/x", f"https://********@{MIRROR}/x"),
        (f"https://u:{SECRET}/a@b@{MIRROR}/x?q=1", f"https://********@{MIRROR}/x?q=1"),
        (f"https://{MIRROR}/x", f"https://{MIRROR}/x"),
    ],
)
def test_mask_login_never_shows_any_part_of_a_login(url: str, shown: str) -> None:
    from gpuwizard.events import mask_login

    assert mask_login(url) == shown
