"""Each thing that stops a GPU set-up is named with its cause and this distribution's remedy:
nouveau, no driver, WSL2, a container. Real files in a tmp root."""

from __future__ import annotations

from pathlib import Path

import pytest
from driver_roots import add_pci_gpu, add_userspace, h200_nvml, make_root, write

from gpuwizard.host.gpu import probe_gpus
from gpuwizard.host.nvml import RecordedBackend
from gpuwizard.host.system import Host


@pytest.mark.parametrize(
    ("distro", "expected"),
    [
        ("ubuntu", ["sudo ubuntu-drivers install --gpgpu", "nvidia-driver-580-server"]),
        ("debian", ["non-free", "apt install", "nvidia-driver"]),
        ("rhel", ["dnf module install nvidia-driver:latest-dkms", "open-dkms", "cuda-rhel9.repo"]),
        ("suse", ["zypper addrepo", "zypper install", "nvidia-open-driver-G06"]),
    ],
)
def test_gpu_without_driver_gets_this_distributions_install_commands(
    tmp_path: Path, distro: str, expected: list[str]
) -> None:
    root = make_root(tmp_path, distro)
    add_pci_gpu(root, device="0x2330")
    report = probe_gpus(Host(root=root))
    problem = report.problems[0]
    assert problem.code == "no_driver" and problem.blocking
    assert problem.cause == (
        "You have an NVIDIA H100 SXM5 80GB (10de:2330) but no NVIDIA driver is installed"
    )
    for text in expected:
        assert text in problem.remedy
    assert "reboot" in problem.remedy


def test_no_nvidia_hardware_at_all(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    report = probe_gpus(Host(root=root))
    assert report.source == "none" and report.gpus == ()
    (problem,) = report.problems
    assert problem.code == "no_nvidia_hardware"
    assert problem.cause.startswith("No NVIDIA GPU was found")


def test_nouveau_in_proc_modules_is_named_with_how_to_blacklist_it(tmp_path: Path) -> None:
    root = make_root(tmp_path, "debian")
    add_pci_gpu(root, device="0x2204", driver="nouveau")
    write(root, "/proc/modules", "nouveau 2560000 0 - Live 0x0\ndrm 622592 3 nouveau, Live 0x0\n")
    report = probe_gpus(Host(root=root))
    assert report.nouveau_loaded
    codes = [p.code for p in report.problems]
    assert codes == ["no_driver", "nouveau_loaded"]
    nouveau = report.problems[1]
    assert "blacklist nouveau" in nouveau.remedy
    assert "/etc/modprobe.d/blacklist-nouveau.conf" in nouveau.remedy
    assert "update-initramfs -u" in nouveau.remedy


def test_nouveau_on_rhel_rebuilds_the_initramfs_with_dracut(tmp_path: Path) -> None:
    root = make_root(tmp_path, "rhel")
    add_pci_gpu(root, driver="nouveau")
    report = probe_gpus(Host(root=root))
    nouveau = next(p for p in report.problems if p.code == "nouveau_loaded")
    assert "dracut --force" in nouveau.remedy


def test_wsl_without_the_windows_driver_says_never_install_a_linux_driver(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    write(root, "/proc/sys/fs/binfmt_misc/WSLInterop", "enabled\n")
    report = probe_gpus(Host(root=root))
    assert report.wsl
    (problem,) = report.problems
    assert problem.code == "wsl_no_windows_driver"
    assert "/usr/lib/wsl/lib" in problem.cause
    assert "Never install a Linux NVIDIA driver inside WSL" in problem.remedy


def test_wsl_with_a_linux_driver_installed_warns_about_the_clash(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    write(root, "/proc/version", "Linux version 5.15.153.1-microsoft-standard-WSL2\n")
    write(root, "/usr/lib/wsl/lib/libnvidia-ml.so.1", b"\x7fELF")
    add_userspace(root, "550.54.15")
    report = probe_gpus(Host(root=root, nvml_backend=RecordedBackend(h200_nvml())))
    assert report.wsl and report.ok
    codes = {p.code: p for p in report.problems}
    assert not codes["wsl_linux_driver"].blocking
    assert "file exists" in codes["wsl_linux_driver"].cause
    assert not codes["wsl"].blocking


def test_inside_a_container_with_a_gpu_warns_that_the_host_is_elsewhere(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    write(root, "/.dockerenv", "")
    report = probe_gpus(Host(root=root, nvml_backend=RecordedBackend(h200_nvml())))
    assert report.in_container and report.ok
    (problem,) = report.problems
    assert problem.code == "in_container" and not problem.blocking
    assert "run gpuwizard on the host" in problem.remedy


def test_inside_a_container_without_a_gpu_is_blocked_plainly(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    write(root, "/proc/1/cgroup", "0::/kubepods/besteffort/pod1/abc\n")
    report = probe_gpus(Host(root=root))
    assert report.in_container
    (problem,) = report.problems
    assert problem.code == "in_container" and problem.blocking
    assert problem.cause.startswith("No NVIDIA GPU was found")
    assert "--gpus all" in problem.remedy


def test_secure_boot_state_comes_from_the_fifth_byte_of_the_efi_variable(tmp_path: Path) -> None:
    from driver_roots import secure_boot

    from gpuwizard.host.gpu import secure_boot as read_secure_boot

    root = make_root(tmp_path)
    host = Host(root=root)
    assert read_secure_boot(host) is None
    secure_boot(root, on=True)
    assert read_secure_boot(host) is True
    secure_boot(root, on=False)
    assert read_secure_boot(host) is False


def test_kernel_module_and_library_versions_that_differ_are_a_mismatch(tmp_path: Path) -> None:
    from driver_roots import add_kernel_module

    root = make_root(tmp_path)
    add_pci_gpu(root, driver="nvidia")
    add_kernel_module(
        root, "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  575.57.08  Release Build\n"
    )
    add_userspace(root, "580.159.04")
    report = probe_gpus(Host(root=root))
    assert report.problems[0].code == "version_mismatch"
    assert "575.57.08" in report.problems[0].cause


def test_wsl_with_the_windows_library_but_failing_nvml_says_update_windows_driver(
    tmp_path: Path,
) -> None:
    root = make_root(tmp_path)
    write(root, "/proc/sys/fs/binfmt_misc/WSLInterop", "enabled\n")
    write(root, "/usr/lib/wsl/lib/libnvidia-ml.so.1", b"\x7fELF")
    report = probe_gpus(Host(root=root, nvml_backend=RecordedBackend.failing("NVMLError_Unknown")))
    problem = report.problems[0]
    assert problem.code == "wsl_nvml_failed" and problem.blocking
    assert "NVMLError_Unknown" in problem.cause and "wsl --update" in problem.remedy
