"""hardware -> kernel module -> driver: judged from host.gpu's readings."""

from __future__ import annotations

from typing import Optional

from gpuwizard.doctor.links import BROKEN, OK, SKIPPED, WARN, Link, Walk, from_failure
from gpuwizard.host import gpu


def probe_hardware(walk: Walk) -> Link:
    host = walk.host
    devices = gpu.pci_devices(host)
    gpus = [
        {"address": d.address, "vendor": d.vendor, "device": d.device, "class": d.klass}
        for d in devices
        if d.nvidia_gpu
    ]
    source = "sysfs"
    if not devices and host.is_live and host.which("lspci"):
        gpus = [
            {
                "address": g.pci_bus_id or "",
                "vendor": gpu.NVIDIA_VENDOR,
                "device": "0x" + (g.pci_id or ":").split(":")[1],
                "class": "0x03",
            }
            for g in gpu.read_lspci(host)
        ]
        source = "lspci"
    if gpus:
        walk.gpu = True
        ids = ", ".join(f"10de:{g['device'].removeprefix('0x')} at {g['address']}" for g in gpus)
        return Link(
            "hardware",
            OK,
            f"{len(gpus)} NVIDIA GPU(s): {ids}",
            facts={"gpus": gpus, "source": source},
        )
    if gpu.wsl_gpu(host):
        walk.gpu = True
        return Link(
            "hardware",
            OK,
            "WSL: the GPU is served by the Windows driver (/dev/dxg)",
            facts={"wsl": True},
        )
    walk.gpu = False
    seen = (
        f"{len(devices)} PCI devices, none from NVIDIA (vendor 10de)"
        if devices
        else "no PCI devices visible"
    )
    container = gpu.container_marker(host)
    cause = (
        "Docker can only hand a container a GPU the kernel sees, and this machine shows "
        "none. The rest of the chain has nothing to serve."
    )
    remedy = (
        "Run gpuwizard on the machine that has the GPU. On a cloud VM, choose a GPU "
        "instance type; on a VM, pass the GPU through to it; on bare metal, check the "
        "card is seated, powered and enabled in the firmware."
    )
    if container:
        cause += (
            f" {container} says this may be a container: containers get GPUs from their "
            "host, and nothing inside one can add it."
        )
        remedy = (
            "Run gpuwizard on the host itself, or start this container with the GPU passed "
            "in (docker run --gpus all …) from a host where that works. " + remedy
        )
    return Link(
        "hardware",
        BROKEN,
        f"No NVIDIA GPU on this machine: {seen}",
        cause=cause,
        remedy=remedy,
        next_command="lspci -nn | grep -i nvidia",
        facts={"pci_devices": len(devices), "source": source, "container": container is not None},
    )


def probe_kernel_module(walk: Walk) -> Link:
    host = walk.host
    has_version, version = gpu.kernel_module_version(host)
    modules = gpu.loaded_modules(host)
    if host.path("/dev/dxg").exists() and walk.gpu:
        return Link("kernel-module", SKIPPED, "WSL: no Linux module; the Windows driver serves")
    loaded = bool(modules and "nvidia" in modules) or has_version
    nouveau = bool(modules and "nouveau" in modules)
    if loaded:
        return Link(
            "kernel-module",
            OK,
            f"nvidia loaded{f' ({version})' if version else ''}",
            facts={"version": version, "nouveau": nouveau},
        )
    if nouveau:
        return from_failure(
            "kernel-module",
            "driver-not-loaded",
            "nouveau is loaded and holds the GPU; the nvidia module is not",
            walk,
            next_command="lsmod | grep -e nvidia -e nouveau",
            facts={"nouveau": True},
            cause=(
                "The open-source nouveau driver holds the GPU, so NVIDIA's module cannot "
                "load. Install NVIDIA's driver (it blacklists nouveau) and reboot."
            ),
        )
    if walk.gpu is False:
        what = "cannot list modules here" if modules is None else "nvidia not loaded"
        return Link("kernel-module", SKIPPED, f"{what} (no NVIDIA GPU)")
    if modules is None:
        return Link(
            "kernel-module",
            WARN,
            "cannot list kernel modules (/proc/modules missing)",
            next_command="lsmod | grep nvidia",
        )
    return from_failure(
        "kernel-module",
        "driver-not-loaded",
        "the nvidia module is not loaded",
        walk,
        next_command="sudo modprobe nvidia && dmesg | grep -i nvrm",
    )


# The driver helper's problem codes -> the failures table's codes, and a command to run next.
_DRIVER_PROBLEMS: dict[str, tuple[Optional[str], str]] = {
    "version_mismatch": ("driver-library-mismatch", "cat /proc/driver/nvidia/version"),
    "driver_not_loaded": ("driver-not-loaded", "sudo modprobe nvidia && dmesg | grep -i nvrm"),
    "nouveau_loaded": ("driver-not-loaded", "lsmod | grep -e nvidia -e nouveau"),
    "no_driver": ("nvidia-smi-missing-on-host", "lspci -nn | grep -i nvidia"),
    "driver_userspace_missing": ("libnvidia-ml-missing", "ldconfig -p | grep libnvidia-ml"),
    "wsl_linux_driver": ("wsl-driver-clash", "ls /usr/lib/wsl/lib"),
    "no_permission": (None, "ls -l /dev/nvidia*"),
    "nvml_error": (None, "nvidia-smi"),
    "no_devices": (None, "nvidia-smi -L"),
}


def probe_driver(walk: Walk) -> Link:
    """The driver helper's GpuReport (NVML, nvidia-smi, /proc), judged as one link."""
    report = gpu.probe_gpus(walk.host)
    facts = {"report": report.to_json()}
    blocking = [p for p in report.problems if p.blocking and p.code != "no_nvidia_hardware"]
    worries = [p for p in report.problems if not p.blocking]
    if report.ok:
        if worries:
            worry = worries[0]
            return Link(
                "driver",
                WARN,
                f"{report.summary()}; {worry.cause}",
                remedy=worry.remedy,
                facts=facts,
            )
        return Link("driver", OK, report.summary(), facts=facts)
    if walk.gpu is False:
        why = next(
            (p.cause for p in blocking if p.code in ("in_container", "wsl_no_windows_driver")), ""
        )
        return Link(
            "driver", SKIPPED, why or "no NVIDIA driver to check (no NVIDIA GPU)", facts=facts
        )
    if not blocking:
        return Link("driver", BROKEN, report.summary(), next_command="nvidia-smi", facts=facts)
    problem = blocking[0]
    code, command = _DRIVER_PROBLEMS.get(problem.code, (None, "nvidia-smi"))
    if report.nvidia_smi and command == "nvidia-smi":
        command = report.nvidia_smi
    others = "; ".join(p.cause for p in blocking[1:])
    summary = problem.cause + (f". Also: {others}" if others else "")
    return Link(
        "driver",
        BROKEN,
        summary,
        remedy=problem.remedy,
        next_command=command,
        code=code,
        facts={**facts, "problem": problem.code},
    )
