"""Hostile inputs, trust and privilege (issue 13, items 1-5 and 13).

Each test is an attack tried for real: real gpg keys made here, real files and symlinks, a
real second user (made with useradd, run through setpriv with a clean environment, from /).
Keep these green: they are the promises of README's "Safety model".
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Iterator

import pytest

from gpuwizard import events as ev
from gpuwizard.journal import Journal

REPO = Path(__file__).resolve().parent.parent
SITE = sysconfig.get_paths()["purelib"]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (useradd, chown)")


# -- a real second user -----------------------------------------------------------------------
class User:
    """An unprivileged account that runs gpuwizard from / with a clean environment."""

    def __init__(self, name: str, python: str) -> None:
        self.name = name
        self.python = python
        entry = pwd.getpwnam(name)
        self.uid, self.gid = entry.pw_uid, entry.pw_gid

    def run(
        self, *args: str, path: str = "/usr/bin:/bin", timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        boot = (
            "import sys; sys.path[:0] = [sys.argv.pop(1), sys.argv.pop(1)]; "
            "from gpuwizard.cli import main; raise SystemExit(main(sys.argv[1:]))"
        )
        argv = [
            "setpriv",
            f"--reuid={self.uid}",
            f"--regid={self.gid}",
            "--clear-groups",
            "env",
            "-i",
            f"PATH={path}",
            "HOME=/nonexistent",
            "NO_COLOR=1",
            self.python,
            "-I",
            "-c",
            boot,
            str(REPO),
            SITE,
            *args,
        ]
        return subprocess.run(
            argv, cwd="/", capture_output=True, text=True, timeout=timeout, check=False
        )


def _python_for(uid: int, gid: int) -> str:
    """An interpreter the user can run: ours, or the system's of the same version (a pyenv
    under /root is not readable by others)."""
    candidates = [
        sys.executable,
        f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}",
    ]
    for exe in candidates:
        res = subprocess.run(
            [
                "setpriv",
                f"--reuid={uid}",
                f"--regid={gid}",
                "--clear-groups",
                "env",
                "-i",
                exe,
                "-I",
                "-c",
                "import encodings",
            ],
            cwd="/",
            capture_output=True,
            check=False,
        )
        if res.returncode == 0:
            return exe
    pytest.skip("no Python interpreter an unprivileged user can run")


@pytest.fixture(scope="session")
def other_user() -> Iterator[User]:
    name = f"gwz{secrets.token_hex(3)}"
    subprocess.run(["useradd", "-M", "-s", "/bin/sh", "-d", "/nonexistent", name], check=True)
    try:
        entry = pwd.getpwnam(name)
        yield User(name, _python_for(entry.pw_uid, entry.pw_gid))
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A temp folder another user can reach (pytest's tmp_path sits in a 0700 folder)."""
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="gpuwizard-hostile-", dir="/var/tmp"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _sandbox_root(base: Path) -> Path:
    root = base / "root"
    for d in ("etc/docker", "etc/apt/sources.list.d", "usr/share/keyrings", "var/lib", "usr/bin"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "etc/os-release").write_text(
        'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\nPRETTY_NAME="Debian GNU/Linux 12"\n'
    )
    (root / "etc/docker/daemon.json").write_text('{"log-driver": "json-file"}\n')
    base.chmod(0o755)
    return root


# -- 13: a normal user ------------------------------------------------------------------------
def test_status_plan_doctor_as_a_real_user_say_what_is_unknown_and_never_crash(
    open_tmp: Path, other_user: User
) -> None:
    """/root and a home are unreadable, a PATH entry is unreadable, the journal is root's:
    every command answers, and its JSON names the facts it could not read."""
    tmp_path = open_tmp
    root = _sandbox_root(tmp_path)
    apt = root / "usr/bin/apt-get"
    apt.write_text("#!/bin/sh\nexit 0\n")
    apt.chmod(0o755)
    for home in (root / "root", root / "home" / "alice"):
        (home / ".docker").mkdir(parents=True)
        home.chmod(0o700)
    state = tmp_path / "state"
    journal = Journal(state)
    journal.start_run(["gpuwizard", "apply"]).save_backup(b"secret")
    secret_dir = tmp_path / "secret-bin"
    secret_dir.mkdir(mode=0o700)
    common = ["--root", str(root), "--state-dir", str(state), "--json"]
    for command in ("status", "plan", "doctor", "history"):
        res = other_user.run(command, *common, path=f"{secret_dir}:/usr/bin:/bin")
        assert "Traceback" not in res.stderr, (command, res.stderr)
        assert res.stdout.startswith("{"), (command, res.stdout, res.stderr)
        data = json.loads(res.stdout)
        unknown = data["unknown_without_permission"]
        assert unknown, (command, data)
    # at / too: the real /root is unreadable to the user and PATH holds an unreadable folder
    res = other_user.run("status", "--json", path=f"{secret_dir}:/usr/bin:/bin")
    assert "Traceback" not in res.stderr, res.stderr
    assert json.loads(res.stdout)["unknown_without_permission"]


# -- 5: backups and events are private, secrets masked ----------------------------------------
def test_state_dir_backups_and_events_are_private_and_events_mask_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gpuwizard.worker import _EventWriter

    monkeypatch.setattr(os, "umask", os.umask)  # keep the test's umask as it is
    old = os.umask(0o022)
    try:
        state = tmp_path / "state"
        state.mkdir(mode=0o755)  # left so by an older version
        journal = Journal(state)
        writer = journal.start_run(["gpuwizard", "apply"])
        daemon = (
            b'{"proxies": {"https-proxy": "http://bob:hunter2@proxy:3128"},\n'
            b' "auths": {"r.example": {"auth": "Ym9iOmh1bnRlcjI="}}}\n'
        )
        sha = writer.save_backup(daemon)
        emit = _EventWriter(writer)
        emit(
            ev.DiffReady(
                "daemon-config",
                [{"path": "/etc/docker/daemon.json", "before": daemon.decode(), "after": "{}"}],
            )
        )
        emit(ev.LogLine("repository", "Get:1 https://u:tok3n@mirror/x?token=tok3n stable"))
        writer.close_events()
    finally:
        os.umask(old)
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "runs").stat().st_mode) == 0o700
    folder = writer.folder
    for f in (
        folder / "backups" / sha,
        folder / "events.jsonl",
        folder / "journal.jsonl",
        folder / "meta.json",
    ):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert (folder / "backups" / sha).read_bytes() == daemon  # the backup keeps the bytes
    events = (folder / "events.jsonl").read_text()
    for secret in ("hunter2", "Ym9iOmh1bnRlcjI=", "tok3n"):
        assert secret not in events
    assert "proxy:3128" in events  # the rest of the diff is still there
