"""doctor and plan agree on real distribution roots: a Debian root (apt, dpkg, gpg), a Rocky
root (dnf) and an openSUSE Leap root (zypper), each fresh, set up, and hand-broken. Where the
plan has work to do, doctor calls that link broken; where the plan calls a step done, doctor
never calls its link broken. Both read the same host facts (host.sources, host.keys,
host.packages), so a disagreement here is a bug in one of them."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import pytest
from debroot import NvidiaRepo, plan_and_apply, plan_only
from rpmrepo import LEAP, ROCKY, RpmRepo, rpm_root

from gpuwizard.doctor.links import BROKEN, WARN, Walk
from gpuwizard.doctor.packages import probe_packages
from gpuwizard.doctor.repository import probe_repository
from gpuwizard.host.system import Host
from gpuwizard.options import Options

pytestmark = pytest.mark.slow

LEGACY_LIST = "deb https://nvidia.github.io/libnvidia-container/stable/ubuntu18.04/$(ARCH) /\n"


def _options(repo: Any) -> Options:
    return Options(
        repo_url=repo.repo_url,
        key_url=repo.key_url,
        key_fingerprint=repo.key.fingerprint,
        steps=("repository", "packages"),
        lock_wait=30,
    )


def _judged(root: Path, options: Options, family: str, manager: str) -> dict[str, Any]:
    plan: Any = plan_only(root, options)
    walk = Walk(Host(root=root), options, family, "systemd", manager, gpu=True)
    return {
        "repository": (plan.step("repository"), probe_repository(walk)),
        "packages": (plan.step("packages"), probe_packages(walk)),
    }


def _agree(judged: dict[str, Any], only: tuple[str, ...] = ()) -> dict[str, tuple[str, str]]:
    seen = {}
    for name, (sp, link) in judged.items():
        if only and name not in only:
            continue
        seen[name] = (sp.state, link.verdict.value)
        if sp.state == "done":
            assert link.verdict != BROKEN, (name, sp, link)
        elif sp.state == "pending":  # work to do: doctor never calls that link ok
            assert link.verdict in (BROKEN, WARN), (name, sp, link)
        else:  # the plan refuses (failed, blocked): so does doctor
            assert link.verdict == BROKEN, (name, sp, link)
    return seen


def test_debian_fresh_set_up_and_hand_broken(
    debroot: Path, nvidia_repo: NvidiaRepo, tmp_path: Path
) -> None:
    options = _options(nvidia_repo)
    assert _agree(_judged(debroot, options, "debian", "apt")) == {
        "repository": ("pending", "broken"),
        "packages": ("pending", "broken"),
    }
    out = plan_and_apply(debroot, options, tmp_path / "state")
    assert out.error is None, out.error
    assert _agree(_judged(debroot, options, "debian", "apt")) == {
        "repository": ("done", "ok"),
        "packages": ("done", "ok"),
    }
    # an old nvidia-docker list beside ours: the plan removes it, doctor must not say ok
    legacy = debroot / "etc/apt/sources.list.d/nvidia-docker.list"
    legacy.write_text(LEGACY_LIST)
    assert _agree(_judged(debroot, options, "debian", "apt"), only=("repository",)) == {
        "repository": ("pending", "warn")
    }
    legacy.unlink()
    # the keyring emptied by hand: apt would say NO_PUBKEY. (Here and above, the packages step
    # plans an install from the index the repository step fetches again; what is installed is
    # fine, so only the repository link is compared.)
    keyring = debroot / "usr/share/keyrings/nvidia-container-toolkit-keyring.gpg"
    keyring.write_bytes(b"")
    assert _agree(_judged(debroot, options, "debian", "apt"), only=("repository",)) == {
        "repository": ("pending", "broken")
    }


@pytest.mark.parametrize(
    ("os_release", "family", "manager"),
    [(ROCKY, "rhel", "dnf"), (LEAP, "suse", "zypper")],
    ids=["rocky-dnf", "leap-zypper"],
)
def test_rpm_roots_fresh_and_set_up(
    rpm_repo: RpmRepo, tmp_path: Path, os_release: str, family: str, manager: str
) -> None:
    if shutil.which(manager) is None:
        pytest.skip(f"needs {manager}")
    root = rpm_root(tmp_path, os_release)
    options = _options(rpm_repo)
    assert _agree(_judged(root, options, family, manager)) == {
        "repository": ("pending", "broken"),
        "packages": ("pending", "broken"),
    }
    out = plan_and_apply(root, options, tmp_path / "state")
    assert out.error is None, out.error
    assert _agree(_judged(root, options, family, manager)) == {
        "repository": ("done", "ok"),
        "packages": ("done", "ok"),
    }
    # a mirror the plan would move the repository to: both see work to do
    moved = dataclasses.replace(options, repo_url=rpm_repo.repo_url + "/elsewhere")
    _agree(_judged(root, moved, family, manager))
