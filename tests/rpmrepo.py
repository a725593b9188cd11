"""pytest plugin: a signed NVIDIA-shaped RPM repository (rpmbuild + createrepo_c + a detached
signature of repomd.xml, as NVIDIA's `repo_gpgcheck=1` repository has), served on 127.0.0.1,
and empty install roots for `dnf --installroot` and `zypper --root`.

The packages are four tiny noarch stand-ins named like the real ones, with the real
dependency shape, in two versions.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
from debroot import LEGACY_DAEMON_JSON, RepoServer, TestKey, make_key

RPM_VERSIONS = ("1.17.8", "1.20.1")

_REQUIRES = {
    "libnvidia-container1": [],
    "libnvidia-container-tools": ["libnvidia-container1 = {v}-1"],
    "nvidia-container-toolkit-base": [],
    "nvidia-container-toolkit": [
        "nvidia-container-toolkit-base = {v}-1",
        "libnvidia-container-tools = {v}-1",
    ],
}
_FILES = {
    "libnvidia-container1": ["/usr/lib64/libnvidia-container.so.1"],
    "libnvidia-container-tools": ["/usr/bin/nvidia-container-cli"],
    "nvidia-container-toolkit-base": ["/usr/bin/nvidia-ctk", "/usr/bin/nvidia-container-runtime"],
    "nvidia-container-toolkit": ["/usr/bin/nvidia-container-runtime-hook"],
}


def build_rpm(top: Path, name: str, version: str) -> Path:
    """One noarch stand-in RPM, built for real by rpmbuild."""
    requires = "".join(f"Requires: {r.format(v=version)}\n" for r in _REQUIRES[name])
    install = "".join(
        f"mkdir -p %{{buildroot}}{os.path.dirname(f)}\n"
        f"printf '#!/bin/sh\\necho {os.path.basename(f)} {version} (gpuwizard test stand-in)\\n'"
        f" > %{{buildroot}}{f}\nchmod 755 %{{buildroot}}{f}\n"
        for f in _FILES[name]
    )
    spec = top / "SPECS" / f"{name}-{version}.spec"
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(
        f"Name: {name}\nVersion: {version}\nRelease: 1\nSummary: gpuwizard test stand-in\n"
        f"License: Apache-2.0\nBuildArch: noarch\nAutoReqProv: no\n{requires}"
        "%description\nStand-in named like NVIDIA's package, for gpuwizard's tests.\n"
        f"%install\n{install}%files\n" + "".join(f"{f}\n" for f in _FILES[name])
    )
    subprocess.run(
        ["rpmbuild", "--define", f"_topdir {top}", "-bb", str(spec)],  # noqa: S603 S607
        check=True,
        capture_output=True,
    )
    return top / "RPMS/noarch" / f"{name}-{version}-1.noarch.rpm"


def build_legacy_nvidia_docker2(top: Path) -> Path:
    """nvidia-docker2 2.13.0 as it was: /etc/docker/daemon.json is its %config (not
    noreplace) file, so erasing it moves an edited file away to .rpmsave."""
    spec = top / "SPECS/nvidia-docker2.spec"
    spec.parent.mkdir(parents=True, exist_ok=True)
    daemon = LEGACY_DAEMON_JSON.decode().replace("\n", "\\n").replace('"', '\\"')
    spec.write_text(
        "Name: nvidia-docker2\nVersion: 2.13.0\nRelease: 1\nSummary: legacy stand-in\n"
        "License: Apache-2.0\nBuildArch: noarch\nAutoReqProv: no\n"
        "%description\nThe legacy package that owned daemon.json (gpuwizard test stand-in).\n"
        "%install\nmkdir -p %{buildroot}/etc/docker\n"
        f'printf "{daemon}" > %{{buildroot}}/etc/docker/daemon.json\n'
        "%files\n%config /etc/docker/daemon.json\n"
    )
    subprocess.run(
        ["rpmbuild", "--define", f"_topdir {top}", "-bb", str(spec)],  # noqa: S603 S607
        check=True,
        capture_output=True,
    )
    return top / "RPMS/noarch/nvidia-docker2-2.13.0-1.noarch.rpm"


@dataclass
class RpmRepo:
    server: RepoServer
    key: TestKey
    other_key: TestKey

    @property
    def repo_url(self) -> str:
        return self.server.url + "/stable"

    @property
    def key_url(self) -> str:
        return self.server.url + "/gpgkey"


def build_rpm_repo(top: Path) -> RpmRepo:
    key = make_key(top / "keys/good", "gpuwizard rpm test repository <rpm@example.invalid>")
    other = make_key(top / "keys/other", "not the repository key <other@example.invalid>")
    www = top / "www"
    repo = www / "stable/rpm" / platform.machine()
    repo.mkdir(parents=True)
    for version in RPM_VERSIONS:
        for name in _REQUIRES:
            shutil.copy2(build_rpm(top / "build", name, version), repo)
    shutil.copy2(build_legacy_nvidia_docker2(top / "build"), repo)
    subprocess.run(["createrepo_c", "-q", str(repo)], check=True, capture_output=True)  # noqa: S603 S607
    key.sign_detached(repo / "repodata/repomd.xml", repo / "repodata/repomd.xml.asc")
    (www / "gpgkey").write_bytes(key.armored)
    (www / "other-gpgkey").write_bytes(other.armored)
    return RpmRepo(RepoServer(www), key, other)


@pytest.fixture(scope="session")
def rpm_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RpmRepo]:
    for tool in ("rpmbuild", "createrepo_c", "gpg", "rpm"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool}")
    repo = build_rpm_repo(tmp_path_factory.mktemp("rpmrepo"))
    repo.server.start()
    try:
        yield repo
    finally:
        repo.server.stop()


def rpm_root(where: Path, os_release: str) -> Path:
    """An empty target system: only its os-release, as before a first install."""
    root = where / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text(os_release)
    return root


ROCKY = (
    'NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\n'
    'PRETTY_NAME="Rocky Linux 9.4"\n'
)
LEAP = (
    'NAME="openSUSE Leap"\nID="opensuse-leap"\nID_LIKE="suse opensuse"\n'
    'VERSION_ID="15.6"\nPRETTY_NAME="openSUSE Leap 15.6"\n'
)


def rpm_qa(root: Path) -> list[str]:
    out = subprocess.run(
        [
            "rpm",
            "--root",
            str(root),
            "-qa",
            "--qf",  # noqa: S603 S607
            "%{NAME} %{VERSION}-%{RELEASE}\n",
        ],
        capture_output=True,
        text=True,
    )
    return sorted(out.stdout.splitlines())
