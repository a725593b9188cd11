"""When NVML cannot answer, the report comes from nvidia-smi's XML, from /proc, or from the PCI
bus, so a user still learns what they have. Real files in a tmp root; the stand-in programs
print what the real ones printed on the H200."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from driver_roots import (
    FIXTURES,
    add_kernel_module,
    add_other_pci,
    add_pci_gpu,
    add_userspace,
    busybox_root,
    fake_program,
    make_root,
)

from gpuwizard.host.gpu import parse_smi_xml, probe_gpus, read_pci
from gpuwizard.host.system import Host

needs_chroot = pytest.mark.skipif(
    not Path("/bin/busybox").exists() or shutil.which("chroot") is None,
    reason="needs busybox-static and chroot",
)

H200_XML = (FIXTURES / "nvidia-smi-q.xml").read_text()


def test_nvidia_smi_xml_from_the_h200_gives_the_same_facts_as_nvml() -> None:
    reading = parse_smi_xml(H200_XML)
    assert reading.driver_version == "580.159.04"
    assert reading.cuda_version == "13.0"
    (gpu,) = reading.gpus
    assert gpu.name == "NVIDIA H200"
    assert gpu.uuid == "GPU-5e7955ae-2727-75c0-d5b0-5b2ea03fc696"
    assert gpu.memory_total_mib == 143771
    assert gpu.pci_bus_id == "00000000:00:06.0" and gpu.pci_id == "10de:2335"
    assert gpu.mig_mode == "disabled" and gpu.mig_devices == ()


def smi_root(tmp_path: Path, where: str = "/usr/local/nvidia/bin/nvidia-smi") -> Path:
    root = busybox_root(make_root(tmp_path))
    (root / "smi.xml").write_text(H200_XML)
    fake_program(root, where, '[ "$1 $2" = "-q -x" ] && exec cat /smi.xml\nexit 2\n')
    return root


@needs_chroot
def test_nvidia_smi_only_under_usr_local_nvidia_bin_is_found_and_read(tmp_path: Path) -> None:
    root = smi_root(tmp_path)
    report = probe_gpus(Host(root=root))  # no NVML backend under a --root: nvidia-smi answers
    assert report.source == "nvidia-smi"
    assert report.nvidia_smi == "/usr/local/nvidia/bin/nvidia-smi"
    assert report.ok and report.cuda_version == "13.0" and report.cuda_version_from == "nvidia-smi"
    assert report.gpus[0].name == "NVIDIA H200"


@needs_chroot
def test_nvidia_smi_version_mismatch_message_is_diagnosed(tmp_path: Path) -> None:
    root = busybox_root(make_root(tmp_path))
    add_pci_gpu(root, driver="nvidia")
    add_kernel_module(root)
    add_userspace(root)
    fake_program(
        root,
        "/usr/bin/nvidia-smi",
        "echo 'Failed to initialize NVML: Driver/library version mismatch'\n"
        "echo 'NVML library version: 580.159'\nexit 18\n",
    )
    report = probe_gpus(Host(root=root))
    assert report.source == "proc"
    assert [p.code for p in report.problems] == ["version_mismatch"]


@needs_chroot
def test_nvidia_smi_that_cannot_reach_the_driver_means_not_loaded(tmp_path: Path) -> None:
    root = busybox_root(make_root(tmp_path))
    add_pci_gpu(root)
    add_userspace(root)
    fake_program(
        root,
        "/usr/bin/nvidia-smi",
        "echo \"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA "
        'driver. Make sure that the latest NVIDIA driver is installed and running."\n'
        "exit 9\n",
    )
    report = probe_gpus(Host(root=root))
    assert report.source == "pci"
    assert report.problems[0].code == "driver_not_loaded"


def test_proc_fallback_reads_the_open_kernel_module_version(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    add_kernel_module(root)  # the text recorded on the H200: "Open Kernel Module for x86_64"
    report = probe_gpus(Host(root=root))
    assert report.source == "proc"
    assert report.driver_version == "580.159.04" == report.kernel_module_version
    assert report.cuda_version == "13.0" and report.cuda_version_from == "driver-table"
    assert report.gpus[0].name == "NVIDIA H200"
    assert report.gpus[0].uuid == "GPU-5e7955ae-2727-75c0-d5b0-5b2ea03fc696"
    assert report.gpus[0].pci_bus_id == "0000:00:06.0"
    assert not report.ok  # the kernel module alone is no working driver
    assert report.problems[0].code == "driver_userspace_missing"


def test_proc_and_libraries_without_nvidia_smi_under_root_cannot_be_verified(
    tmp_path: Path,
) -> None:
    root = make_root(tmp_path)
    add_kernel_module(root)
    add_userspace(root)
    report = probe_gpus(Host(root=root))
    assert report.problems[0].code == "driver_unverified"


def test_pci_bus_names_the_gpu_that_has_no_driver(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    add_other_pci(root)
    add_pci_gpu(root, slot="0000:18:00.0", device="0x2330", klass="0x030200")
    add_pci_gpu(root, slot="0000:3b:00.0", device="0x27b8", klass="0x030000")
    add_pci_gpu(root, slot="0000:3c:00.1", device="0x22ba", klass="0x040300")  # HDMI audio
    gpus, drivers = read_pci(Host(root=root))
    assert [(g.pci_bus_id, g.name, g.pci_id) for g in gpus] == [
        ("0000:18:00.0", "NVIDIA H100 SXM5 80GB", "10de:2330"),
        ("0000:3b:00.0", "NVIDIA L4", "10de:27b8"),
    ]
    assert drivers == []


def test_an_unknown_pci_id_is_still_shown(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    add_pci_gpu(root, device="0x9999")
    report = probe_gpus(Host(root=root))
    assert report.gpus[0].name == "NVIDIA GPU (10de:9999)"


@needs_chroot
def test_lspci_is_asked_when_sysfs_has_no_pci_bus(tmp_path: Path) -> None:
    root = busybox_root(make_root(tmp_path))
    shutil.rmtree(root / "sys")
    fake_program(
        root,
        "/usr/bin/lspci",
        "echo '00:03.0 Ethernet controller [0200]: Red Hat, Inc. Virtio [1af4:1041]'\n"
        "echo '00:06.0 3D controller [0302]: NVIDIA Corporation GH100 [H200 SXM 141GB]"
        " [10de:2335] (rev a1)'\n",
    )
    report = probe_gpus(Host(root=root))
    assert report.source == "pci"
    assert [(g.name, g.pci_id, g.pci_bus_id) for g in report.gpus] == [
        ("NVIDIA H200", "10de:2335", "00:06.0")
    ]
    assert report.problems[0].code == "no_driver"


@needs_chroot
def test_an_id_missing_from_our_table_takes_its_name_from_lspci(tmp_path: Path) -> None:
    root = busybox_root(make_root(tmp_path))
    add_pci_gpu(root, slot="0000:41:00.0", device="0x2bb1")
    fake_program(
        root,
        "/usr/bin/lspci",
        '[ "$1 $2" = "-D -nn" ] || exit 2\n'
        "echo '0000:41:00.0 VGA compatible controller [0300]: NVIDIA Corporation "
        "GB202GL [RTX PRO 6000 Blackwell Workstation Edition] [10de:2bb1] (rev a1)'\n",
    )
    report = probe_gpus(Host(root=root))
    assert report.gpus[0].name == "NVIDIA GB202GL [RTX PRO 6000 Blackwell Workstation Edition]"
    assert report.problems[0].cause.startswith(
        "You have an NVIDIA GB202GL [RTX PRO 6000 Blackwell Workstation Edition] (10de:2bb1)"
    )
