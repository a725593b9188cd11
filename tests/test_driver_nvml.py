"""The driver step reads NVML through one seam; CI feeds it what the real H200 answered, and
every NVML error a user can meet, raised as pynvml's own exception classes."""

from __future__ import annotations

import json
from pathlib import Path

import pynvml
import pytest
from driver_roots import (
    add_kernel_module,
    add_pci_gpu,
    add_userspace,
    h200_nvml,
    make_root,
    secure_boot,
    write,
)

from gpuwizard.host.gpu import GpuReport, probe_gpus
from gpuwizard.host.nvml import RecordedBackend, nvml_error, record, recorded_h200
from gpuwizard.host.system import Host


def host_with(root: Path, backend: RecordedBackend) -> Host:
    return Host(root=root, nvml_backend=backend)


def test_h200_recording_gives_every_gpu_fact(tmp_path: Path) -> None:
    report = probe_gpus(host_with(make_root(tmp_path), RecordedBackend(h200_nvml())))
    assert report.ok and report.source == "nvml"
    assert report.driver_version == "580.159.04"
    assert report.cuda_driver_version == 13000 and report.cuda_version == "13.0"
    assert report.cuda_version_from == "nvml"
    (gpu,) = report.gpus
    assert gpu.name == "NVIDIA H200"
    assert gpu.uuid == "GPU-5e7955ae-2727-75c0-d5b0-5b2ea03fc696"
    assert gpu.memory_total_mib == 143771
    assert gpu.pci_bus_id == "00000000:00:06.0" and gpu.pci_id == "10de:2335"
    assert gpu.mig_mode == "disabled" and gpu.mig_devices == ()
    assert report.problems == ()
    assert report.summary() == "NVIDIA H200; driver 580.159.04, CUDA 13.0 (read through nvml)"


def test_report_round_trips_through_json(tmp_path: Path) -> None:
    report = probe_gpus(host_with(make_root(tmp_path), RecordedBackend(h200_nvml())))
    text = json.dumps(report.to_json())
    assert GpuReport.from_json(json.loads(text)) == report


def test_mig_mode_refused_with_invalid_argument_is_unknown_not_an_error(tmp_path: Path) -> None:
    data = h200_nvml()
    data["devices"][0]["mig_mode"] = {"error": "NVMLError_InvalidArgument"}
    report = probe_gpus(host_with(make_root(tmp_path), RecordedBackend(data)))
    assert report.ok
    assert report.gpus[0].mig_mode is None
    assert report.gpus[0].memory_total_mib == 143771


def test_mig_devices_are_listed_when_mig_is_on(tmp_path: Path) -> None:
    data = h200_nvml()
    dev = data["devices"][0]
    dev["mig_mode"] = [1, 1]
    dev["mig_count"] = 7
    dev["mig_devices"] = [
        {
            "index": 0,
            "name": "NVIDIA H200 MIG 3g.71gb",
            "uuid": "MIG-aaaa",
            "memory": [71 * 1024**3, 0, 71 * 1024**3],
        },
        {
            "index": 1,
            "name": "NVIDIA H200 MIG 3g.71gb",
            "uuid": "MIG-bbbb",
            "memory": [71 * 1024**3, 0, 71 * 1024**3],
        },
    ]
    report = probe_gpus(host_with(make_root(tmp_path), RecordedBackend(data)))
    gpu = report.gpus[0]
    assert gpu.mig_mode == "enabled"
    assert [m.uuid for m in gpu.mig_devices] == ["MIG-aaaa", "MIG-bbbb"]
    assert gpu.mig_devices[0].memory_total_mib == 71 * 1024


def test_recorded_backend_raises_real_pynvml_exception_classes() -> None:
    for name in (
        "NVMLError_DriverNotLoaded",
        "NVMLError_LibRmVersionMismatch",
        "NVMLError_NoPermission",
        "NVMLError_LibraryNotFound",
        "NVMLError_Unknown",
    ):
        backend = RecordedBackend.failing(name)
        with pytest.raises(getattr(pynvml, name)):
            backend.init()
    assert isinstance(nvml_error("NVMLError_DriverNotLoaded"), pynvml.NVMLError)


def test_recording_a_recorded_backend_gives_the_same_answers() -> None:
    data = h200_nvml()
    again = record(RecordedBackend(data))
    for key in ("driver_version", "cuda_driver_version", "nvml_version", "device_count"):
        assert again[key] == data[key]
    assert again["devices"][0]["memory"] == data["devices"][0]["memory"]
    assert again["devices"][0]["mig_mode"] == data["devices"][0]["mig_mode"]


def test_demo_recording_ships_in_the_package() -> None:
    backend = recorded_h200(moving=False)
    backend.init()
    assert backend.name(backend.handle(0)) == "NVIDIA H200"
    assert backend.cuda_driver_version() == 13000


# --- each NVML error path, with the machine's files around it


def test_driver_not_loaded_with_secure_boot_on_says_enroll_the_key(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    add_pci_gpu(root)
    add_userspace(root)
    secure_boot(root, on=True)
    report = probe_gpus(host_with(root, RecordedBackend.failing("NVMLError_DriverNotLoaded")))
    assert not report.ok and report.secure_boot is True
    (problem,) = report.problems
    assert problem.code == "driver_not_loaded" and problem.blocking
    assert "Secure Boot is on" in problem.cause
    assert "mokutil --import" in problem.remedy


def test_driver_not_loaded_with_secure_boot_off_says_modprobe(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    add_pci_gpu(root)
    add_userspace(root)
    secure_boot(root, on=False)
    report = probe_gpus(host_with(root, RecordedBackend.failing("NVMLError_DriverNotLoaded")))
    (problem,) = report.problems
    assert problem.code == "driver_not_loaded"
    assert "Secure Boot: off" in problem.cause
    assert "modprobe nvidia" in problem.remedy and "mokutil" not in problem.remedy


def test_lib_rm_version_mismatch_says_reboot(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    add_pci_gpu(root, driver="nvidia")
    add_kernel_module(root, "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.95.05  Thu\n")
    add_userspace(root, "580.159.04")
    report = probe_gpus(host_with(root, RecordedBackend.failing("NVMLError_LibRmVersionMismatch")))
    assert report.kernel_module_version == "580.95.05"
    (problem,) = report.problems
    assert problem.code == "version_mismatch"
    assert "580.95.05" in problem.cause and "580.159.04" in problem.cause
    assert problem.remedy.startswith("Reboot")


def test_no_permission_names_the_closed_device_nodes(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    add_pci_gpu(root, driver="nvidia")
    add_kernel_module(root)
    add_userspace(root)
    write(root, "/dev/nvidia0", "", mode=0o660)
    write(root, "/dev/nvidiactl", "", mode=0o666)
    report = probe_gpus(host_with(root, RecordedBackend.failing("NVMLError_NoPermission")))
    (problem,) = report.problems
    assert problem.code == "no_permission"
    assert "/dev/nvidia0 -rw-rw----" in problem.cause and "nvidiactl" not in problem.cause
    assert "usermod -aG video" in problem.remedy


def test_library_not_found_with_module_loaded_says_userspace_missing(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    add_pci_gpu(root, driver="nvidia")
    add_kernel_module(root)
    report = probe_gpus(host_with(root, RecordedBackend.failing("NVMLError_LibraryNotFound")))
    assert report.source == "proc" and report.driver_version == "580.159.04"
    (problem,) = report.problems
    assert problem.code == "driver_userspace_missing"
    assert "libnvidia-ml.so.1" in problem.cause


def test_library_not_found_without_any_driver_says_install_one(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    add_pci_gpu(root, device="0x2330")
    report = probe_gpus(host_with(root, RecordedBackend.failing("NVMLError_LibraryNotFound")))
    assert report.source == "pci"
    assert report.problems[0].code == "no_driver"
    assert "NVIDIA H100 SXM5 80GB (10de:2330)" in report.problems[0].cause


def test_unknown_nvml_error_is_reported_with_its_name(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    add_pci_gpu(root, driver="nvidia")
    add_kernel_module(root)
    add_userspace(root)
    report = probe_gpus(host_with(root, RecordedBackend.failing("NVMLError_Unknown")))
    (problem,) = report.problems
    assert problem.code == "nvml_error"
    assert "NVMLError_Unknown" in problem.cause
    assert report.nvml_error == "NVMLError_Unknown"


def test_driver_without_any_gpu_says_none_reported(tmp_path: Path) -> None:
    data = h200_nvml()
    data["device_count"] = 0
    data["devices"] = []
    report = probe_gpus(host_with(make_root(tmp_path), RecordedBackend(data)))
    assert not report.ok
    assert report.problems[0].code == "no_devices"
