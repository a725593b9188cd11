"""The repository and packages steps driven through the real CLI, as a user runs them:
`gpuwizard apply --root R --step repository --step packages --yes`, then `rollback`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from debroot import TOOLKIT, NvidiaRepo, dpkg_set

pytestmark = pytest.mark.slow


def _cli(cmd: list[str], args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=300)  # noqa: S603


def test_cli_apply_installs_pinned_packages_and_rollback_restores_the_package_set(
    debroot: Path, nvidia_repo: NvidiaRepo, gpuwizard_cmd: list[str]
) -> None:
    pristine = dpkg_set(debroot)
    repo = [
        "--repo-url",
        nvidia_repo.repo_url,
        "--key-url",
        nvidia_repo.key_url,
        "--key-fingerprint",
        nvidia_repo.key.fingerprint,
    ]
    steps = ["--root", str(debroot), "--step", "repository", "--step", "packages"]
    res = _cli(gpuwizard_cmd, ["apply", *steps, *repo, "--yes"])
    assert res.returncode == 0, res.stdout + res.stderr
    assert nvidia_repo.key.fingerprint in res.stdout + res.stderr
    installed = dpkg_set(debroot)
    for name in TOOLKIT:
        assert f"{name} 1.20.1-1 ii" in installed

    again = _cli(gpuwizard_cmd, ["apply", *steps, *repo, "--yes"])
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Nothing to do" in again.stdout

    back = _cli(gpuwizard_cmd, ["rollback", "--root", str(debroot), "--yes"])
    assert back.returncode == 0, back.stdout + back.stderr
    assert dpkg_set(debroot) == pristine
