"""The driver step changes nothing: `done` with the GPU facts when the driver works, `blocked`
with the cause and the commands otherwise, and later steps wait."""

from __future__ import annotations

from pathlib import Path

from driver_roots import add_pci_gpu, h200_nvml, make_root

from gpuwizard.host.gpu import probe_gpus
from gpuwizard.host.nvml import RecordedBackend
from gpuwizard.host.system import Host
from gpuwizard.options import Options
from gpuwizard.steps.base import BLOCKED, DONE, Simulation
from gpuwizard.steps.driver import DriverStep


def test_on_this_machine_without_a_gpu_the_step_says_so_and_what_to_do() -> None:
    plan = DriverStep().plan(Host(), Options(), Simulation())
    assert plan.step == "driver" and plan.title == "NVIDIA driver"
    assert plan.state == BLOCKED
    assert plan.reason.startswith("No NVIDIA GPU was found")
    assert "gpuwizard" in plan.remedy and len(plan.remedy) > 40
    assert plan.actions == [] and plan.diffs == []
    assert plan.facts["ok"] is False


def test_working_h200_driver_is_done_with_the_report_as_facts(tmp_path: Path) -> None:
    host = Host(root=make_root(tmp_path), nvml_backend=RecordedBackend(h200_nvml()))
    sim = Simulation()
    plan = DriverStep().plan(host, Options(), sim)
    assert plan.state == DONE
    assert plan.actions == []
    assert plan.reason == "NVIDIA H200; driver 580.159.04, CUDA 13.0 (read through nvml)"
    assert plan.facts == probe_gpus(host).to_json()
    assert sim.facts["cuda_version"] == "13.0"
    assert sim.facts["test_images"]["cuda"] == "nvidia/cuda:13.0.2-base-ubuntu24.04"
    assert sim.facts["test_images"]["smoke"] == "ubuntu:24.04"


def test_the_chosen_images_follow_the_options(tmp_path: Path) -> None:
    host = Host(root=make_root(tmp_path), nvml_backend=RecordedBackend(h200_nvml()))
    sim = Simulation()
    DriverStep().plan(host, Options(cuda_repository="nvcr.io/nvidia/cuda"), sim)
    assert sim.facts["test_images"]["cuda"] == "nvcr.io/nvidia/cuda:13.0.2-base-ubuntu24.04"


def test_missing_driver_blocks_with_the_install_commands_and_installs_nothing(
    tmp_path: Path,
) -> None:
    root = make_root(tmp_path, "ubuntu")
    add_pci_gpu(root, device="0x2330")
    plan = DriverStep().plan(Host(root=root), Options(), Simulation())
    assert plan.state == BLOCKED
    assert plan.reason == (
        "You have an NVIDIA H100 SXM5 80GB (10de:2330) but no NVIDIA driver is installed"
    )
    assert "sudo ubuntu-drivers install --gpgpu" in plan.remedy
    assert plan.actions == []


def test_non_blocking_problems_become_warnings(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    (root / ".dockerenv").write_text("")
    plan = DriverStep().plan(
        Host(root=root, nvml_backend=RecordedBackend(h200_nvml())), Options(), Simulation()
    )
    assert plan.state == DONE
    assert any("inside a container" in w for w in plan.warnings)
