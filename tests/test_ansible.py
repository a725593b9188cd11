"""The gpuwizard.gpu collection with ansible-core from PyPI against three real hosts: sshd's on
127.0.0.1 ports, each chrooted into a Debian root of its own (tests/fleet_hosts.py), with the
suite's signed toolkit repository on 127.0.0.1. The play copies gpuwizard.pyz (SHA-256 checked)
and runs it there headless; what a host ends up with is read from its own root."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.debroot import NvidiaRepo
from tests.fleet_hosts import Fleet, recap, recap_lines

pytestmark = pytest.mark.slow

# the steps a GPU-less root can take: no driver, no dockerd in a chroot
STEPS = ["repository", "packages", "daemon-config"]
# what gpuwizard may change on a host, and its journal (compared byte for byte)
WATCHED = (
    "etc/apt",
    "etc/docker",
    "etc/nvidia-container-runtime",
    "usr/share/keyrings",
    "usr/bin",
    "usr/lib/x86_64-linux-gnu",
    "var/lib/dpkg/status",
    "var/lib/gpuwizard",
)
SOMEONES_DAEMON_JSON = (
    b'{\n  "log-driver": "journald",\n  "registry-mirrors": ["https://m.example"]\n}\n'
)


def _opts(repo: NvidiaRepo, **more: Any) -> dict[str, Any]:
    return {
        "gpuwizard_steps": STEPS,
        "gpuwizard_repo_url": repo.repo_url,
        "gpuwizard_key_url": repo.key_url,
        "gpuwizard_key_fingerprint": repo.key.fingerprint,
        "gpuwizard_toolkit_version": repo.versions[0],
        # a chroot sees this machine's /proc and so other sessions' dockerd: name the file
        "gpuwizard_daemon_json": "/etc/docker/daemon.json",
        **more,
    }


def _tree(root: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for top in WATCHED:
        base = root / top
        if base.is_file():
            out[top] = base.read_bytes()
        for p in sorted(base.rglob("*")) if base.is_dir() else []:
            if p.is_symlink():
                out[str(p.relative_to(root))] = b"-> " + str(p.readlink()).encode()
            elif p.is_file():
                out[str(p.relative_to(root))] = p.read_bytes()
            elif p.is_dir():
                out[str(p.relative_to(root)) + "/"] = b""
    return out


def _dpkg(root: Path, package: str) -> str:
    r = subprocess.run(
        ["chroot", str(root), "dpkg-query", "-W", "-f", "${Status} ${Version}", package],
        capture_output=True,
        text=True,
    )
    return r.stdout.strip()


def _ok(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-3000:]
    return res.stdout


def _seed(fleet: Fleet) -> None:
    for h in fleet.hosts:
        (h.root / "etc/docker").mkdir(parents=True, exist_ok=True)
        (h.root / "etc/docker/daemon.json").write_bytes(SOMEONES_DAEMON_JSON)


def test_converge_twice_on_three_hosts_second_run_changes_nothing(
    fleet: Fleet, nvidia_repo: NvidiaRepo
) -> None:
    _seed(fleet)
    first = _ok(fleet.playbook("site.yml", **_opts(nvidia_repo)))
    numbers = recap(first)
    assert sorted(numbers) == ["host1", "host2", "host3"], first[-3000:]
    for h in fleet.hosts:
        assert numbers[h.name]["failed"] == 0 and numbers[h.name]["changed"] >= 2, numbers
        assert _dpkg(h.root, "nvidia-container-toolkit") == (
            f"install ok installed {nvidia_repo.versions[0]}"
        )
        daemon = json.loads((h.root / "etc/docker/daemon.json").read_text())
        assert daemon["runtimes"]["nvidia"]["path"] == "nvidia-container-runtime"
        assert daemon["log-driver"] == "journald"  # merged, not clobbered
        runs = list((h.root / "var/lib/gpuwizard/runs").iterdir())
        assert len(runs) == 1  # each host's journal is in its own root
    second = _ok(fleet.playbook("site.yml", **_opts(nvidia_repo)))
    print("\n".join(recap_lines(first) + [""] + recap_lines(second)))
    for h in fleet.hosts:
        assert recap(second)[h.name]["changed"] == 0, second[-4000:]
        assert len(list((h.root / "var/lib/gpuwizard/runs").iterdir())) == 1
