"""`gpuwizard doctor` walks the chain on a machine, or on a root folder that reproduces one.

The sandbox roots below hold real files: a sysfs entry for an H200, /proc/modules, a dpkg
status database read by the real dpkg-query, apt lists checked against the real apt, a keyring
made by the real gpg, daemon.json files. Only the GPU itself is a stand-in: an `nvidia-smi`
script (run by busybox in a chroot) that answers like the driver does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

import driver_roots
import pytest

from gpuwizard import doctor
from gpuwizard.doctor import (
    BROKEN,
    OK,
    SKIPPED,
    WARN,
    DoctorReport,
    Link,
    daemon_needs_restart,
    gpu_runtime_link,
    process_start_time,
    render_report,
    run_doctor,
)
from gpuwizard.events import StepState
from gpuwizard.failures import classify
from gpuwizard.host.system import Host
from gpuwizard.options import Options

H200 = Path(__file__).resolve().parent / "fixtures" / "h200"
KEYRING = "/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg"
LIST = "/etc/apt/sources.list.d/nvidia-container-toolkit.list"
CURRENT_LINE = (
    f"deb [signed-by={KEYRING}] https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /\n"
)
PACKAGES = (
    "nvidia-container-toolkit",
    "nvidia-container-toolkit-base",
    "libnvidia-container-tools",
    "libnvidia-container1",
)


@pytest.fixture(scope="session")
def signing_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, str]:
    """A real OpenPGP key (binary keyring bytes, fingerprint), standing in for NVIDIA's."""
    home = tmp_path_factory.mktemp("gnupg")
    os.chmod(home, 0o700)
    gpg = [
        "gpg",
        "--homedir",
        str(home),
        "--batch",
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        "",
    ]
    subprocess.run(
        [
            *gpg,
            "--quick-gen-key",
            "Test Toolkit Repo <repo@example.invalid>",
            "ed25519",
            "sign",
            "never",
        ],
        check=True,
        capture_output=True,
    )
    listing = subprocess.run(
        [*gpg, "--with-colons", "--list-keys"], check=True, capture_output=True, text=True
    ).stdout
    fpr = next(ln.split(":")[9] for ln in listing.splitlines() if ln.startswith("fpr:"))
    key = subprocess.run([*gpg, "--export", fpr], check=True, capture_output=True).stdout
    return key, fpr


def _status_entry(name: str, version: str) -> str:
    return (
        f"Package: {name}\nStatus: install ok installed\nPriority: optional\n"
        f"Section: utils\nInstalled-Size: 1\nMaintainer: NVIDIA <cudatools@nvidia.com>\n"
        f"Architecture: amd64\nVersion: {version}\nDescription: {name}\n\n"
    )


def write_packages(root: Path, versions: dict[str, str]) -> None:
    status = root / "var/lib/dpkg/status"
    status.parent.mkdir(parents=True, exist_ok=True)
    status.write_text("".join(_status_entry(n, v) for n, v in versions.items()))


def _executable(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)


@pytest.fixture
def gpu_host(sandbox: Path, signing_key: tuple[bytes, str]) -> Path:
    """A root folder of a healthy GPU host: every link doctor can check there holds."""
    root = sandbox
    dev = root / "sys/bus/pci/devices/0000:65:00.0"
    dev.mkdir(parents=True)
    (dev / "vendor").write_text("0x10de\n")
    (dev / "device").write_text("0x2335\n")
    (dev / "class").write_text("0x030200\n")
    other = root / "sys/bus/pci/devices/0000:00:00.0"
    other.mkdir(parents=True)
    (other / "vendor").write_text("0x8086\n")
    (other / "device").write_text("0x1237\n")
    (other / "class").write_text("0x060000\n")
    (root / "proc/driver/nvidia").mkdir(parents=True)
    (root / "proc/modules").write_text(
        "nvidia_uvm 1982464 0 - Live 0x0000000000000000 (POE)\n"
        "nvidia 14381056 1 nvidia_uvm, Live 0x0000000000000000 (POE)\n"
    )
    (root / "proc/driver/nvidia/version").write_text(
        "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build  "
        "(dvs-builder@U22-I3-AF03-09-1)  Thu Oct  2 21:27:46 UTC 2026\n"
        "GCC version:  gcc version 12.3.0 (Ubuntu 12.3.0-1ubuntu1~22.04)\n"
    )
    driver_roots.add_userspace(root)  # libnvidia-ml.so.1 -> .so.580.159.04
    driver_roots.busybox_root(root)  # /bin/sh, cat … for the stand-in below, run in chroot
    # stand-in for the GPU's driver: replays what nvidia-smi -q -x printed on the H200
    recorded = root / "usr/share/gpuwizard-test/nvidia-smi-q.xml"
    recorded.parent.mkdir(parents=True)
    shutil.copy(H200 / "nvidia-smi-q.xml", recorded)
    _executable(
        root / "usr/bin/nvidia-smi",
        "#!/bin/sh\n# test stand-in for NVIDIA's nvidia-smi (recorded on the H200)\n"
        "cat /usr/share/gpuwizard-test/nvidia-smi-q.xml\n",
    )
    _executable(root / "usr/bin/nvidia-container-runtime-hook", "#!/bin/sh\nexit 0\n")
    _executable(root / "usr/bin/nvidia-container-runtime", "#!/bin/sh\nexit 0\n")
    write_packages(root, {n: "1.20.0-1" for n in PACKAGES})
    (root / "etc/nvidia-container-runtime").mkdir(parents=True)
    (root / "etc/nvidia-container-runtime/config.toml").write_text(TOOLKIT_CONFIG_TOML)
    _executable(root / "sbin/ldconfig", "#!/bin/sh\nexit 0\n")
    (root / LIST.lstrip("/")).write_text(CURRENT_LINE)
    (root / KEYRING.lstrip("/")).write_bytes(signing_key[0])
    return root


# what nvidia-container-toolkit-base 1.20's postinst leaves (nvidia-ctk config --in-place)
TOOLKIT_CONFIG_TOML = """#accept-nvidia-visible-devices-as-volume-mounts = false
#accept-nvidia-visible-devices-envvar-when-unprivileged = true
disable-require = false
supported-driver-capabilities = "compat32,compute,display,graphics,ngx,utility,video"
#swarm-resource = "DOCKER_RESOURCE_GPU"

[nvidia-container-cli]
#debug = "/var/log/nvidia-container-toolkit.log"
environment = []
#ldcache = "/etc/ld.so.cache"
ldconfig = "@/sbin/ldconfig"
load-kmods = true
#no-cgroups = false
#path = "/usr/bin/nvidia-container-cli"
#root = "/run/nvidia/driver"
#user = "root:video"

[nvidia-container-runtime]
#debug = "/var/log/nvidia-container-runtime.log"
log-level = "info"
mode = "auto"
runtimes = ["docker-runc", "runc", "crun"]

[nvidia-container-runtime.modes]

[nvidia-container-runtime.modes.cdi]
annotation-prefixes = ["cdi.k8s.io/"]
default-kind = "nvidia.com/gpu"
spec-dirs = ["/etc/cdi", "/var/run/cdi"]

[nvidia-container-runtime-hook]
path = "nvidia-container-runtime-hook"
skip-mode-detection = false

[nvidia-ctk]
path = "nvidia-ctk"
"""


def options_for(signing_key: tuple[bytes, str], **kw: Any) -> Options:
    return Options(key_fingerprint=signing_key[1], **kw)


def check(root: Path, signing_key: tuple[bytes, str], **kw: Any) -> DoctorReport:
    return run_doctor(Host(root), options_for(signing_key, **kw))


# --- this machine --------------------------------------------------------------------------


def _has_nvidia_pci() -> bool:
    base = Path("/sys/bus/pci/devices")
    return base.is_dir() and any(
        (d / "vendor").is_file() and (d / "vendor").read_text().strip() == "0x10de"
        for d in base.iterdir()
    )


@pytest.mark.skipif(_has_nvidia_pci(), reason="this machine has an NVIDIA GPU")
def test_on_a_machine_without_a_gpu_doctor_says_so_first_and_skips_what_needs_one() -> None:
    report = run_doctor(Host(), Options())
    hardware = report.link("hardware")
    assert hardware.verdict == BROKEN
    assert "No NVIDIA GPU" in hardware.summary
    assert hardware.next_command and hardware.fix
    assert report.first_broken == hardware
    assert report.exit_code == 1
    for name in ("kernel-module", "driver", "gpu-runtime", "smoke-test"):
        assert report.link(name).verdict == SKIPPED, report.link(name)
    assert report.seconds < 10


def test_a_root_without_a_gpu_gets_a_short_account_and_a_container_is_named(
    sandbox: Path,
) -> None:
    dev = sandbox / "sys/bus/pci/devices/0000:00:03.0"
    dev.mkdir(parents=True)
    (dev / "vendor").write_text("0x1af4\n")
    (dev / "class").write_text("0x020000\n")
    report = run_doctor(Host(sandbox), Options())
    hardware = report.link("hardware")
    assert hardware.verdict == BROKEN and report.first_broken == hardware
    assert "1 PCI devices, none from NVIDIA" in hardware.summary
    assert "says this may be a container" not in hardware.cause
    assert [link.verdict for link in report.links].count(BROKEN) == 1, render_report(report)
    (sandbox / ".dockerenv").write_text("")
    hardware = run_doctor(Host(sandbox), Options()).link("hardware")
    assert "/.dockerenv says this may be a container" in hardware.cause
    assert "--gpus all" in hardware.fix


# --- a healthy GPU host, then one broken thing at a time ------------------------------------


def test_a_healthy_gpu_host_holds_at_every_link_doctor_can_check_there(
    gpu_host: Path, signing_key: tuple[bytes, str]
) -> None:
    report = check(gpu_host, signing_key)
    verdicts = {link.name: link.verdict for link in report.links}
    assert verdicts == {
        "hardware": OK,
        "kernel-module": OK,
        "driver": OK,
        "repository": OK,
        "packages": OK,
        "toolkit-config": OK,
        "daemon-config": OK,
        "engine": SKIPPED,
        "gpu-runtime": SKIPPED,
        "cdi": OK,
        "smoke-test": SKIPPED,
    }, render_report(report)
    assert report.ok and report.exit_code == 0
    assert "10de:2335" in report.link("hardware").summary
    assert "580.159.04" in report.link("kernel-module").summary
    assert "NVIDIA H200" in report.link("driver").summary
    assert "key verified" in report.link("repository").summary


def test_a_legacy_list_beside_the_new_one_breaks_apt_and_doctor_names_the_repository(
    gpu_host: Path, signing_key: tuple[bytes, str]
) -> None:
    legacy = gpu_host / "etc/apt/sources.list.d/libnvidia-container.list"
    legacy.write_text(
        "deb [signed-by=/etc/apt/keyrings/nvidia.gpg] "
        "https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /\n"
    )
    report = check(gpu_host, signing_key)
    link = report.link("repository")
    assert link.verdict == BROKEN
    assert report.first_broken == link
    assert link.code == "signed-by-conflict"
    assert "libnvidia-container.list" in link.summary
    assert "libnvidia-container.list" in link.next_command
    assert "nvidia-container-toolkit.list /root" not in link.next_command  # keeps the new one
    # the real apt, reading the same files, fails with the message doctor's table names
    apt = _apt_check(gpu_host)
    assert "Conflicting values set for option Signed-By" in apt
    found = classify(apt)
    assert found is not None and found.code == link.code


def _apt_check(root: Path) -> str:
    for d in (
        "var/lib/apt/lists/partial",
        "var/cache/apt/archives/partial",
        "etc/apt/preferences.d",
        "etc/apt/apt.conf.d",
        "etc/apt/trusted.gpg.d",
    ):
        (root / d).mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [
            "apt-get",
            "-o",
            f"Dir={root}",
            "-o",
            f"Dir::State::status={root}/var/lib/dpkg/status",
            "check",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )  # reads lists; no network
    return result.stdout + result.stderr


def test_a_conflict_and_an_empty_keyring_are_both_reported_worst_first(
    gpu_host: Path, signing_key: tuple[bytes, str]
) -> None:
    (gpu_host / "etc/apt/sources.list.d/libnvidia-container.list").write_text(
        "deb https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /\n"
    )
    (gpu_host / KEYRING.lstrip("/")).write_bytes(b"")
    link = check(gpu_host, signing_key).link("repository")
    assert link.code == "signed-by-conflict"
    assert "Also: the keyring" in link.summary and "empty" in link.summary
    assert [a["code"] for a in link.facts["also"]] == ["nvidia-key-missing"]


def test_an_old_list_at_another_url_is_a_warning_and_unsupported_distribution_is_broken(
    gpu_host: Path, signing_key: tuple[bytes, str]
) -> None:
    old = gpu_host / "etc/apt/sources.list.d/nvidia-docker.list"
    old.write_text(
        "deb https://nvidia.github.io/libnvidia-container/stable/ubuntu18.04/$(ARCH) /\n"
        "deb https://nvidia.github.io/nvidia-docker/ubuntu18.04/$(ARCH) /\n"
    )
    link = check(gpu_host, signing_key).link("repository")
    assert link.verdict == WARN
    assert "nvidia-docker.list" in link.summary
    old.write_text("# Unsupported distribution!\n# Check https://nvidia.github.io/nvidia-docker\n")
    link = check(gpu_host, signing_key).link("repository")
    assert link.verdict == BROKEN
    assert link.code == "unsupported-distribution"
    assert "stable/deb" in link.fix


def test_an_empty_keyring_is_named_as_the_no_pubkey_cause(
    gpu_host: Path, signing_key: tuple[bytes, str]
) -> None:
    (gpu_host / KEYRING.lstrip("/")).write_bytes(b"")
    report = check(gpu_host, signing_key)
    link = report.link("repository")
    assert link.verdict == BROKEN and report.first_broken == link
    assert link.code == "nvidia-key-missing"
    assert "empty" in link.summary and "NO_PUBKEY" in link.summary
    assert "--dearmor" in link.fix  # Debian's variant of the fix
    (gpu_host / KEYRING.lstrip("/")).unlink()
    assert "missing" in check(gpu_host, signing_key).link("repository").summary


def test_a_keyring_holding_another_key_is_not_trusted(
    gpu_host: Path, signing_key: tuple[bytes, str]
) -> None:
    report = run_doctor(Host(gpu_host), Options())  # expects NVIDIA's real fingerprint
    link = report.link("repository")
    assert link.verdict == BROKEN
    assert signing_key[1] in link.summary
    assert "C95B321B61E88C1809C4F759DDCAE044F796ECB0" in link.summary


def test_packages_at_different_versions_are_broken_and_an_old_toolkit_is_a_cve_warning(
    gpu_host: Path, signing_key: tuple[bytes, str]
) -> None:
    write_packages(
        gpu_host, {**{n: "1.20.0-1" for n in PACKAGES}, "libnvidia-container1": "1.18.1-1"}
    )
    link = check(gpu_host, signing_key).link("packages")
    assert link.verdict == BROKEN
    assert "libnvidia-container1 1.18.1-1" in link.summary
    assert "libnvidia-container1=1.20.0-1" in link.next_command
    write_packages(gpu_host, {**{n: "1.17.3-1" for n in PACKAGES}, "nvidia-docker2": "2.13.0-1"})
    link = check(gpu_host, signing_key).link("packages")
    assert link.verdict == WARN
    assert "CVE" in link.summary and "nvidia-docker2" in link.summary
    assert "never purge" in link.summary


def test_a_toolkit_from_a_vendor_repository_makes_a_missing_nvidia_list_only_a_warning(
    gpu_host: Path, signing_key: tuple[bytes, str]
) -> None:
    (gpu_host / LIST.lstrip("/")).unlink()
    (gpu_host / "etc/apt/sources.list.d/lambda-repository.list").write_text(
        "deb http://archive.lambdalabs.com/ubuntu jammy main\n"
    )
    write_packages(gpu_host, {n: "1.11.0-0lambda0.22.04.1" for n in PACKAGES})
    report = check(gpu_host, signing_key)
    assert report.link("repository").verdict == WARN
    assert "elsewhere" in report.link("repository").summary
    packages = report.link("packages")
    assert packages.verdict == WARN and "not an NVIDIA build" in packages.summary
    assert report.ok


def test_a_missing_toolkit_on_a_gpu_host_is_broken_with_the_install_command(
    gpu_host: Path, signing_key: tuple[bytes, str]
) -> None:
    write_packages(gpu_host, {"bash": "5.2.15-2+b2"})
    link = check(gpu_host, signing_key).link("packages")
    assert link.verdict == BROKEN
    assert link.next_command.startswith("sudo apt-get install nvidia-container-toolkit")


def test_default_runtime_nvidia_without_the_runtime_is_named_before_docker_refuses_to_start(
    gpu_host: Path, signing_key: tuple[bytes, str]
) -> None:
    (gpu_host / "etc/docker/daemon.json").write_text(
        '{\n  "log-driver": "json-file",\n  "default-runtime": "nvidia"\n}\n'
    )
    report = check(gpu_host, signing_key)
    link = report.link("daemon-config")
    assert link.verdict == BROKEN and report.first_broken == link
    assert link.code == "default-runtime-undefined"
    assert "'nvidia'" in link.summary


def test_invalid_daemon_json_is_broken_with_its_line_and_column(
    gpu_host: Path, signing_key: tuple[bytes, str]
) -> None:
    (gpu_host / "etc/docker/daemon.json").write_text(
        '{\n  "data-root": "/srv/docker",\n  "runtimes": {\n    "nvidia": {"path": '
        '"nvidia-container-runtime", "args": []},\n  }\n}\n'
    )
    link = check(gpu_host, signing_key).link("daemon-config")
    assert link.verdict == BROKEN
    assert link.code == "daemon-json-invalid"
    assert "line 5, column 3" in link.summary
    assert link.facts["line"] == 5
    assert link.next_command == "python3 -m json.tool /etc/docker/daemon.json"
    (gpu_host / "etc/docker/daemon.json").write_text("")
    assert "empty" in check(gpu_host, signing_key).link("daemon-config").summary


def test_the_nvidia_runtime_as_default_with_its_binary_gone_breaks_every_container(
    gpu_host: Path, signing_key: tuple[bytes, str]
) -> None:
    (gpu_host / "usr/bin/nvidia-container-runtime").unlink()
    (gpu_host / "etc/docker/daemon.json").write_text(
        json.dumps(
            {
                "default-runtime": "nvidia",
                "runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}},
            }
        )
    )
    link = check(gpu_host, signing_key).link("daemon-config")
    assert link.verdict == BROKEN
    assert link.code == "nvidia-runtime-binary-missing"
    assert "every container fails" in link.summary


def test_hosts_in_daemon_json_with_minus_h_in_the_unit_is_a_conflict(
    gpu_host: Path, signing_key: tuple[bytes, str]
) -> None:
    unit = gpu_host / "lib/systemd/system/docker.service"
    unit.parent.mkdir(parents=True)
    unit.write_text(
        "[Service]\nType=notify\nExecStart=/usr/bin/dockerd -H fd:// "
        "--containerd=/run/containerd/containerd.sock\n"
    )
    (gpu_host / "etc/docker/daemon.json").write_text('{"hosts": ["unix:///var/run/docker.sock"]}')
    link = check(gpu_host, signing_key).link("daemon-config")
    assert link.verdict == BROKEN and link.code == "daemon-flag-conflict"
    dropin = gpu_host / "etc/systemd/system/docker.service.d/override.conf"
    dropin.parent.mkdir(parents=True)
    dropin.write_text("[Service]\nExecStart=\nExecStart=/usr/bin/dockerd\n")
    assert check(gpu_host, signing_key).link("daemon-config").verdict == OK


def test_a_driver_whose_module_and_libraries_differ_is_a_mismatch(
    gpu_host: Path, signing_key: tuple[bytes, str]
) -> None:
    (gpu_host / "proc/driver/nvidia/version").write_text(
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  570.124.06  Tue Feb 25 04:41:58 UTC 2025\n"
    )
    link = check(gpu_host, signing_key).link("driver")
    assert link.verdict == BROKEN and link.code == "driver-library-mismatch"
    assert "570.124.06" in link.summary and "580.159.04" in link.summary


def test_a_failing_nvidia_smi_is_classified_by_the_same_table(
    gpu_host: Path, signing_key: tuple[bytes, str]
) -> None:
    _executable(
        gpu_host / "usr/bin/nvidia-smi",
        "#!/bin/sh\n# test stand-in: a driver whose module did not load\n"
        "echo \"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA "
        'driver. Make sure that the latest NVIDIA driver is installed and running."\n'
        "exit 9\n",
    )
    link = check(gpu_host, signing_key).link("driver")
    assert link.verdict == BROKEN and link.code == "driver-not-loaded"


def test_nouveau_holding_the_gpu_is_named_at_the_kernel_module(
    gpu_host: Path, signing_key: tuple[bytes, str]
) -> None:
    (gpu_host / "proc/driver/nvidia/version").unlink()
    (gpu_host / "proc/modules").write_text("nouveau 2768896 0 - Live 0x0000000000000000\n")
    report = check(gpu_host, signing_key)
    assert report.first_broken is not None and report.first_broken.name == "kernel-module"
    assert "nouveau" in report.first_broken.summary


NVIDIA_REPO = """[nvidia-container-toolkit]
name=nvidia-container-toolkit
baseurl=https://nvidia.github.io/libnvidia-container/stable/rpm/$basearch
repo_gpgcheck=1
gpgcheck=0
enabled=1
gpgkey=https://nvidia.github.io/libnvidia-container/gpgkey
sslverify=1
sslcacert=/etc/pki/tls/certs/ca-bundle.crt

[nvidia-container-toolkit-experimental]
name=nvidia-container-toolkit-experimental
baseurl=https://nvidia.github.io/libnvidia-container/experimental/rpm/$basearch
enabled=0
"""


@pytest.fixture
def rocky_gpu_host(gpu_host: Path) -> Path:
    """The same GPU host, as Rocky Linux 9 with dnf: yum.repos.d and an rpm database."""
    root = gpu_host
    (root / "etc/os-release").write_text(
        'NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.7"\n'
        'PRETTY_NAME="Rocky Linux 9.7 (Blue Onyx)"\n'
    )
    shutil.rmtree(root / "etc/apt")
    shutil.rmtree(root / "var/lib/dpkg")
    _executable(root / "usr/bin/dnf", "#!/bin/sh\nexit 0\n")  # only its presence is probed
    (root / "var/lib/rpm").mkdir(parents=True)
    (root / "etc/yum.repos.d").mkdir(parents=True)
    (root / "etc/yum.repos.d/nvidia-container-toolkit.repo").write_text(NVIDIA_REPO)
    return root


def test_on_a_dnf_host_the_repo_file_is_read_and_old_repos_beside_it_are_named(
    rocky_gpu_host: Path, signing_key: tuple[bytes, str]
) -> None:
    report = check(rocky_gpu_host, signing_key)
    assert report.family == "rhel"
    assert report.link("repository").verdict == OK
    # the real rpm, reading an empty database under the root: nothing installed
    packages = report.link("packages")
    assert packages.verdict == BROKEN
    assert packages.next_command.startswith("sudo dnf install nvidia-container-toolkit")
    old = rocky_gpu_host / "etc/yum.repos.d/nvidia-docker.repo"
    old.write_text(
        "[nvidia-docker]\nname=nvidia-docker\nenabled=1\n"
        "baseurl=https://nvidia.github.io/nvidia-docker/centos8/$basearch\n"
    )
    assert check(rocky_gpu_host, signing_key).link("repository").verdict == WARN
    old.write_text("# Unsupported distribution!\n# Check https://nvidia.github.io/nvidia-docker\n")
    link = check(rocky_gpu_host, signing_key).link("repository")
    assert link.verdict == BROKEN and link.code == "unsupported-distribution"
    assert "/etc/yum.repos.d/" in link.fix  # the RPM variant of the fix


# --- the engine: runtimes loaded, and started after the hook -------------------------------


class RecordedEngine:
    """The engine seam's stand-in: answers `info()` with what a real dockerd returned."""

    def __init__(self, info: dict[str, Any]) -> None:
        self._info = info

    def info(self) -> dict[str, Any]:
        return self._info

    def close(self) -> None:
        pass


INFO_20_10 = {
    "ServerVersion": "20.10.24+dfsg1",
    "DefaultRuntime": "runc",
    "Runtimes": {
        "io.containerd.runc.v2": {"path": "runc"},
        "io.containerd.runtime.v1.linux": {"path": "runc"},
        "runc": {"path": "runc"},
    },
}


def _engine_host(root: Path, info: dict[str, Any]) -> Host:
    return Host(root, engine_factory=lambda docker_host: RecordedEngine(info))


def test_a_runtime_in_daemon_json_that_the_running_daemon_lacks_needs_a_reload(
    gpu_host: Path, signing_key: tuple[bytes, str]
) -> None:
    (gpu_host / "etc/docker/daemon.json").write_text(
        json.dumps({"runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}}})
    )
    report = run_doctor(_engine_host(gpu_host, INFO_20_10), options_for(signing_key))
    link = report.link("engine")
    assert link.verdict == BROKEN and link.code == "runtime-nvidia-unknown"
    assert "reload" in link.next_command  # runtimes reload on SIGHUP; no restart needed
    loaded = {
        **INFO_20_10,
        "Runtimes": {**INFO_20_10["Runtimes"], "nvidia": {"path": "nvidia-container-runtime"}},
    }
    report = run_doctor(_engine_host(gpu_host, loaded), options_for(signing_key))
    assert report.link("engine").verdict == OK
    assert "--runtime nvidia: registered" in report.link("gpu-runtime").summary


def test_a_rootless_engine_needs_no_cgroups_in_the_toolkit_config(
    gpu_host: Path, signing_key: tuple[bytes, str]
) -> None:
    rootless = {**INFO_20_10, "SecurityOptions": ["name=seccomp,profile=default", "name=rootless"]}
    link = run_doctor(_engine_host(gpu_host, rootless), options_for(signing_key)).link("engine")
    assert link.verdict == BROKEN and link.code == "rootless-cgroups"
    assert "no-cgroups" in link.next_command
    config = gpu_host / "etc/nvidia-container-runtime/config.toml"
    config.write_text(TOOLKIT_CONFIG_TOML.replace("#no-cgroups = false", "no-cgroups = true"))
    link = run_doctor(_engine_host(gpu_host, rootless), options_for(signing_key)).link("engine")
    assert link.verdict == WARN and "~/.config/docker/daemon.json" in link.summary


def test_the_timing_rule_a_hook_newer_than_the_daemon_is_unseen_until_restart() -> None:
    started = 1_790_000_000.0
    assert daemon_needs_restart(started, started + 3600)
    assert not daemon_needs_restart(started, started - 86400)
    assert not daemon_needs_restart(started, started + 0.5)  # same second: installed, then started


def _walk(root: Path, info: Optional[dict[str, Any]] = None) -> Any:
    walk = doctor._Walk(
        host=Host(root),
        options=Options(),
        family="debian",
        init_system="systemd",
        package_manager="apt",
        gpu=True,
    )
    walk.engine = info if info is not None else INFO_20_10
    return walk


def test_recorded_start_times_daemon_started_before_the_toolkit_needs_a_restart(
    gpu_host: Path,
) -> None:
    hook = "/usr/bin/nvidia-container-runtime-hook"
    installed = 1_790_003_600.0
    link = gpu_runtime_link(
        _walk(gpu_host),
        hook,
        installed,
        started=1_790_000_000.0,
        daemon_path=["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"],
    )
    assert link.verdict == BROKEN and link.code == "gpu-device-driver-missing"
    assert link.next_command == "sudo systemctl restart docker"
    assert "before" in link.summary
    link = gpu_runtime_link(
        _walk(gpu_host), hook, installed, started=installed + 60, daemon_path=["/usr/bin", "/bin"]
    )
    assert link.verdict == OK
    link = gpu_runtime_link(
        _walk(gpu_host), hook, installed, started=installed + 60, daemon_path=["/opt/docker/bin"]
    )
    assert link.verdict == BROKEN and "PATH" in link.summary


def test_the_daemon_start_time_comes_from_proc_and_a_fresh_hook_flags_a_restart(
    gpu_host: Path, signing_key: tuple[bytes, str], tmp_path: Path
) -> None:
    # a real process whose pidfile doctor is given stands for the running dockerd
    daemon = subprocess.Popen(["sleep", "60"])
    try:
        pidfile = tmp_path / "docker.pid"
        pidfile.write_text(str(daemon.pid))
        started = process_start_time(daemon.pid)
        assert started is not None and abs(started - time.time()) < 30
        hook = gpu_host / "usr/bin/nvidia-container-runtime-hook"
        os.utime(hook, (time.time() + 120, time.time() + 120))  # installed after the start
        report = run_doctor(
            _engine_host(gpu_host, INFO_20_10),
            options_for(signing_key, docker_pidfile=str(pidfile)),
        )
        link = report.link("gpu-runtime")
        assert link.verdict == BROKEN and link.code == "gpu-device-driver-missing"
        os.utime(hook, (started - 3600, started - 3600))  # installed before the start
        report = run_doctor(
            _engine_host(gpu_host, INFO_20_10),
            options_for(signing_key, docker_pidfile=str(pidfile)),
        )
        assert report.link("gpu-runtime").verdict == OK, report.link("gpu-runtime")
    finally:
        daemon.kill()
        daemon.wait()


def test_an_unreachable_engine_on_a_gpu_host_is_broken_and_says_how_to_start_it(
    gpu_host: Path, signing_key: tuple[bytes, str], tmp_path: Path
) -> None:
    _executable(gpu_host / "usr/bin/dockerd", "#!/bin/sh\nexit 0\n")
    report = check(gpu_host, signing_key, docker_host=f"unix://{tmp_path}/nobody.sock")
    link = report.link("engine")
    assert link.verdict == BROKEN
    assert "not reachable" in link.summary
    assert report.link("gpu-runtime").verdict == SKIPPED


def test_a_config_toml_copied_from_ubuntu_names_an_ldconfig_debian_does_not_have(
    gpu_host: Path, signing_key: tuple[bytes, str]
) -> None:
    config = gpu_host / "etc/nvidia-container-runtime/config.toml"
    config.write_text(TOOLKIT_CONFIG_TOML.replace('"@/sbin/ldconfig"', '"@/sbin/ldconfig.real"'))
    report = check(gpu_host, signing_key)
    link = report.link("toolkit-config")
    assert link.verdict == BROKEN and report.first_broken == link
    assert link.code == "ldcache-error"
    assert "/sbin/ldconfig.real" in link.summary


def test_the_runtime_in_cdi_mode_warns_that_gpus_flag_will_be_refused(
    gpu_host: Path, signing_key: tuple[bytes, str]
) -> None:
    config = gpu_host / "etc/nvidia-container-runtime/config.toml"
    config.write_text(TOOLKIT_CONFIG_TOML.replace('mode = "auto"', 'mode = "cdi"'))
    link = check(gpu_host, signing_key).link("toolkit-config")
    assert link.verdict == WARN and link.code == "cdi-mode-gpus-flag"
    assert "--runtime nvidia" in link.fix


def test_cdi_turned_on_without_a_spec_warns_before_the_device_is_unresolvable(
    gpu_host: Path, signing_key: tuple[bytes, str]
) -> None:
    (gpu_host / "etc/docker/daemon.json").write_text('{"features": {"cdi": true}}')
    link = check(gpu_host, signing_key).link("daemon-config")
    assert link.verdict == WARN and link.code == "cdi-unresolvable"
    spec = gpu_host / "var/run/cdi/nvidia.yaml"
    spec.parent.mkdir(parents=True)
    spec.write_text("cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices: []\n")
    assert check(gpu_host, signing_key).link("daemon-config").verdict == OK


def test_the_toolkit_deb_beside_snap_docker_is_named(
    gpu_host: Path, signing_key: tuple[bytes, str]
) -> None:
    _executable(gpu_host / "snap/bin/docker", "#!/bin/sh\nexit 0\n")
    link = check(gpu_host, signing_key).link("packages")
    assert link.verdict == BROKEN and link.code == "snap-docker"


def test_a_docker_cli_on_the_desktop_context_is_named_at_the_engine(
    gpu_host: Path, signing_key: tuple[bytes, str]
) -> None:
    config = gpu_host / "home/ana/.docker/config.json"
    config.parent.mkdir(parents=True)
    config.write_text('{"auths": {}, "currentContext": "desktop-linux"}')
    report = run_doctor(_engine_host(gpu_host, INFO_20_10), options_for(signing_key))
    link = report.link("engine")
    assert link.verdict == BROKEN and link.code == "docker-desktop"
    assert link.next_command == "docker context use default"


# --- the walk itself ----------------------------------------------------------------------


def test_one_probe_crashing_does_not_stop_the_walk(
    gpu_host: Path, signing_key: tuple[bytes, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(walk: Any) -> Link:
        raise RuntimeError("probe bug")

    monkeypatch.setattr(doctor.repository, "probe_repository", boom)
    report = check(gpu_host, signing_key)
    assert report.link("repository").verdict == WARN
    assert "probe bug" in report.link("repository").summary
    assert report.link("packages").verdict == OK


def report_names() -> list[str]:
    return [link.name for link in run_doctor(Host(), Options()).links]


def test_events_report_each_link_as_it_is_checked(
    gpu_host: Path, signing_key: tuple[bytes, str]
) -> None:
    seen: list[Any] = []
    run_doctor(Host(gpu_host), options_for(signing_key), emit=seen.append)
    states = [(e.step, e.state) for e in seen if isinstance(e, StepState)]
    assert states[0] == ("doctor:hardware", "running")
    assert ("doctor:hardware", "ok") in states
    assert len(states) == 2 * len(report_names())


def test_the_report_serialises_to_json_and_renders_plain_text_without_colour(
    gpu_host: Path, signing_key: tuple[bytes, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (gpu_host / "etc/docker/daemon.json").write_text("{,}")
    report = check(gpu_host, signing_key)
    data = json.loads(json.dumps(report.to_json()))
    assert data["ok"] is False and data["exit_code"] == 1
    assert data["first_broken"] == "daemon-config"
    assert [link["name"] for link in data["links"]][:3] == ["hardware", "kernel-module", "driver"]
    monkeypatch.setenv("NO_COLOR", "1")
    text = render_report(report, color=True)
    assert "\x1b[" not in text
    assert "✓ hardware" in text and "✗ daemon-config" in text
    assert "$ python3 -m json.tool /etc/docker/daemon.json" in text
    monkeypatch.delenv("NO_COLOR")
    assert "\x1b[31m✗" in render_report(report, color=True)


def test_explain_gives_the_fix_for_the_machine_it_runs_on(sandbox: Path) -> None:
    message = "E: Unable to locate package nvidia-container-toolkit"
    (sandbox / "etc/os-release").write_text(
        'ID="rocky"\nID_LIKE="rhel centos fedora"\n'
        'VERSION_ID="9.7"\nPRETTY_NAME="Rocky Linux 9.7"\n'
    )
    assert "/etc/yum.repos.d/" in doctor.explain(message, host=Host(sandbox))
    assert "apt-get update" in doctor.explain(message, family="debian")


def test_the_cli_runs_doctor_on_a_root_and_exits_1_when_a_link_is_broken(
    gpu_host: Path, signing_key: tuple[bytes, str], gpuwizard_cmd: list[str]
) -> None:
    (gpu_host / "etc/docker/daemon.json").write_text('{"default-runtime": "nvidia"}')
    result = subprocess.run(
        [*gpuwizard_cmd, "doctor", "--root", str(gpu_host)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert result.returncode == 1, result.stderr
    assert "✗ daemon-config" in result.stdout
    explained = subprocess.run(
        [
            *gpuwizard_cmd,
            "doctor",
            "--explain",
            "docker: Error response from daemon: unknown or invalid runtime name: nvidia.",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert explained.returncode == 0
    assert "runtime-nvidia-unknown" in explained.stdout


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
