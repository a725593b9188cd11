"""What gpuwizard reads from apt, gpg, /proc/locks and source files, checked on real samples
(fast: no root folder, no network)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from gpuwizard.host.keys import parse_colons
from gpuwizard.host.packages import (
    Change,
    below_floor,
    file_lock_holder,
    is_nvidia_build,
    parse_apt_simulation,
    parse_apt_status,
    parse_madison,
    parse_policy_origins,
    version_key,
)
from gpuwizard.host.sources import (
    SourceMatcher,
    legacy_apt_sources,
    own_list_lines,
    repo_satisfied,
)
from gpuwizard.host.system import Host
from gpuwizard.options import NVIDIA_REPO_URL, Options
from gpuwizard.steps.repository import rpm_repo_sections

KEYRING = "/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg"


def test_apt_simulation_names_new_upgraded_and_removed_packages() -> None:
    text = (
        "Inst libnvidia-container1 (1.20.1-1 gpuwizard-tests:127.0.0.1 [amd64])\n"
        "Inst nvidia-container-toolkit [1.17.8-1] (1.20.1-1 gpuwizard-tests:127.0.0.1 [amd64]) []\n"
        "Conf libnvidia-container1 (1.20.1-1 gpuwizard-tests:127.0.0.1 [amd64])\n"
        "Remv nvidia-docker2 [2.13.0-1]\n"
    )
    assert parse_apt_simulation(text) == [
        Change("libnvidia-container1", None, "1.20.1-1"),
        Change("nvidia-container-toolkit", "1.17.8-1", "1.20.1-1"),
        Change("nvidia-docker2", "2.13.0-1", None),
    ]


def test_madison_and_policy_tell_versions_and_where_the_installed_one_came_from() -> None:
    madison = (
        "nvidia-container-toolkit |   1.20.1-1 | https://nvidia.github.io/libnvidia-"
        "container/stable/deb/amd64  Packages\n"
    )
    assert parse_madison(madison) == [
        ("1.20.1-1", "https://nvidia.github.io/libnvidia-container/stable/deb/amd64  Packages")
    ]
    from_repo = (
        "nvidia-container-toolkit:\n  Installed: 1.17.8-1\n  Candidate: 1.20.1-1\n"
        "  Version table:\n     1.20.1-1 500\n        500 http://m/stable/deb/amd64  Packages\n"
        " *** 1.17.8-1 500\n        500 http://m/stable/deb/amd64  Packages\n"
        "        100 /var/lib/dpkg/status\n"
    )
    assert parse_policy_origins(from_repo) == ["http://m/stable/deb/amd64  Packages"]
    lambda_stack = (
        "nvidia-container-toolkit:\n  Installed: 1.11.0-0lambda0.22.04.1\n"
        "  Version table:\n *** 1.11.0-0lambda0.22.04.1 100\n        100 /var/lib/dpkg/status\n"
    )
    assert parse_policy_origins(lambda_stack) == []


def test_versions_order_like_nvidias_and_the_security_floor_is_1_17_8() -> None:
    ordered = ["1.9.0-1", "1.17.7-1", "1.17.8-1", "1.18.0~rc.1-1", "1.18.0-1", "1.20.1-1"]
    assert sorted(reversed(ordered), key=version_key) == ordered
    assert below_floor("1.17.7-1") and not below_floor("1.17.8-1")
    assert is_nvidia_build("1.20.1-1") and is_nvidia_build("1.18.0~rc.1-1")
    assert not is_nvidia_build("1.11.0-0lambda0.22.04.1")
    assert not is_nvidia_build("1.17.4-1.fc41")


def test_apt_status_lines_become_one_progress_bar() -> None:
    assert parse_apt_status("dlstatus:1:50.0000:Retrieving file 1 of 4\n") == (
        0.05,
        "Retrieving file 1 of 4",
    )
    frac, label = parse_apt_status(
        "pmstatus:nvidia-container-toolkit:47.0588:Installing nvidia-container-toolkit (amd64)"
    )
    assert abs(frac - (0.1 + 0.9 * 0.470588)) < 1e-6
    assert label == "Installing nvidia-container-toolkit (amd64)"
    assert parse_apt_status("pmconffile:/etc/x:...") is None
    assert parse_apt_status("media-change: ...") is None


def test_gpg_colons_give_the_primary_fingerprint_not_the_subkeys() -> None:
    out = (
        "pub:-:4096:1:DDCAE044F796ECB0:1506556800:::-:::scSC::::::23::0:\n"
        "fpr:::::::::C95B321B61E88C1809C4F759DDCAE044F796ECB0:\n"
        "uid:-::::1506556800::X::NVIDIA CORPORATION (Open Source Projects) "
        "<cudatools@nvidia.com>::::::::::0:\n"
        "sub:e:2048:1:6ED91CA3AC1160CD:1568764800:1623801600:::::s::::::23:\n"
        "fpr:::::::::0123456789ABCDEF01236ED91CA3AC1160CD:\n"
    )
    info = parse_colons(out)
    assert info.fingerprints == ("C95B321B61E88C1809C4F759DDCAE044F796ECB0",)
    assert info.uids == ("NVIDIA CORPORATION (Open Source Projects) <cudatools@nvidia.com>",)


def test_the_list_is_nvidias_with_signed_by_and_a_mirror_without_stable_has_no_experimental() -> (
    None
):
    assert own_list_lines(NVIDIA_REPO_URL, KEYRING, False) == (
        f"deb [signed-by={KEYRING}] https://nvidia.github.io/libnvidia-container/stable/deb/"
        "$(ARCH) /\n"
        f"#deb [signed-by={KEYRING}] https://nvidia.github.io/libnvidia-container/experimental/"
        "deb/$(ARCH) /\n"
    )
    assert own_list_lines("https://mirror.corp/nvidia-ctk", KEYRING, True).count("\n") == 1


def test_a_company_mirror_of_debian_is_never_taken_for_an_nvidia_leftover() -> None:
    m = SourceMatcher("https://mirror.corp/libnvidia-container/stable")
    assert m.matches("https://nvidia.github.io/nvidia-docker/ubuntu18.04/amd64")
    assert m.matches("https://mirror.corp/libnvidia-container/stable/deb/amd64")
    assert m.matches("https://mirror.corp/nvidia-docker/ubuntu18.04/amd64")
    assert not m.matches("https://mirror.corp/debian")
    assert not m.matches("https://mirror.corp/ubuntu")
    flat = SourceMatcher("https://mirror.corp/stable")
    assert not flat.matches("https://mirror.corp/debian")


def test_legacy_sources_are_found_in_list_sources_and_unsupported_files(sandbox: Path) -> None:
    d = sandbox / "etc/apt/sources.list.d"
    (sandbox / "etc/apt/sources.list").write_text(
        "deb http://deb.debian.org/debian bookworm main\n"
        "deb https://nvidia.github.io/libnvidia-container/stable/ubuntu18.04/$(ARCH) /\n"
    )
    (d / "nvidia-container-toolkit.list").write_text("ours, never touched\n")
    (d / "nvidia-docker.list").write_text(
        "deb https://nvidia.github.io/libnvidia-container/stable/ubuntu18.04/$(ARCH) /\n"
        "deb https://nvidia.github.io/nvidia-container-runtime/stable/ubuntu18.04/$(ARCH) /\n"
        "deb https://nvidia.github.io/nvidia-docker/ubuntu18.04/$(ARCH) /\n"
    )
    (d / "libnvidia-container.list").write_text("# Unsupported distribution!\n")
    (d / "docker.list").write_text("deb https://download.docker.com/linux/debian bookworm stable\n")
    own = "/etc/apt/sources.list.d/nvidia-container-toolkit.list"
    found = {x.path: x for x in legacy_apt_sources(Host(root=sandbox), NVIDIA_REPO_URL, own)}
    assert set(found) == {
        "/etc/apt/sources.list",
        "/etc/apt/sources.list.d/nvidia-docker.list",
        "/etc/apt/sources.list.d/libnvidia-container.list",
    }
    # the main file is rewritten, never removed; whole legacy files are removed
    assert (
        found["/etc/apt/sources.list"].after == b"deb http://deb.debian.org/debian bookworm main\n"
    )
    assert found["/etc/apt/sources.list.d/nvidia-docker.list"].after is None
    assert len(found["/etc/apt/sources.list.d/nvidia-docker.list"].entries) == 3


def test_rpm_repo_file_is_nvidias_key_by_key() -> None:
    sections = rpm_repo_sections(Options(), zypper=False)
    main = sections["nvidia-container-toolkit"]
    assert main == {
        "name": "nvidia-container-toolkit",
        "baseurl": "https://nvidia.github.io/libnvidia-container/stable/rpm/$basearch",
        "repo_gpgcheck": "1",
        "gpgcheck": "0",
        "enabled": "1",
        "gpgkey": "file:///etc/pki/rpm-gpg/RPM-GPG-KEY-nvidia-container-toolkit",
        "sslverify": "1",
    }
    assert sections["nvidia-container-toolkit-experimental"]["enabled"] == "0"
    assert (
        rpm_repo_sections(Options(experimental=True), zypper=True)[
            "nvidia-container-toolkit-experimental"
        ]["enabled"]
        == "1"
    )
    # an existing file with extra keys (the published one has sslcacert) still satisfies
    existing = "".join(
        f"[{s}]\n"
        + "".join(f"{k}={v}\n" for k, v in keys.items())
        + "sslcacert=/etc/pki/tls/certs/ca-bundle.crt\n"
        for s, keys in sections.items()
    )
    assert repo_satisfied(existing, sections)
    assert not repo_satisfied(existing.replace("repo_gpgcheck=1", "repo_gpgcheck=0"), sections)


def test_a_dpkg_style_fcntl_lock_is_seen_with_its_holder(tmp_path: Path) -> None:
    lock = tmp_path / "lock-frontend"
    lock.write_bytes(b"")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (  # noqa: S603
                "import fcntl, sys, time\n"
                f"f = open({str(lock)!r}, 'r+')\n"
                "fcntl.lockf(f, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(30)\n"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        found = file_lock_holder(lock, "/var/lib/dpkg/lock-frontend")
        assert found is not None and found.pid == holder.pid
        assert "fcntl.lockf" in found.command
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.05)
    assert file_lock_holder(lock, "x") is None
