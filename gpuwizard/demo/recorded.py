"""The recorded H200 host, as data: its files, programs, nvidia-smi, PCI device and device
nodes live in gpuwizard/data/demo_host.json; here they are read once and named.

What is code here is what belongs to demo mode itself, not to the recording: where the demo
machine keeps its key and repository, the bundled demo key's fingerprint, the folder marker.
"""

from __future__ import annotations

import json
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data"
_HOST = json.loads((DATA / "demo_host.json").read_text(encoding="utf-8"))

DEMO_LABEL: str = _HOST["label"]
# Where the demo machine keeps its key and its (answered, never read) repository: system paths
# of the demo machine, so nothing shown names the folder gpuwizard is installed in.
DEMO_KEY_PATH = "/usr/share/gpuwizard-demo/demo-key.asc"
DEMO_REPOSITORY_PATH = "/usr/share/gpuwizard-demo/repository/stable"
ROOT_ENV = "GPUWIZARD_DEMO_ROOT"
MARKER = ".gpuwizard-demo"

# the bundled demo signing key (gpuwizard/data/demo-key.asc), NOT NVIDIA's key
DEMO_FINGERPRINT = "FE139D392EB9839DFEFCEA54F157D15953EFD383"
DRIVER_VERSION: str = _HOST["versions"]["driver"]
CUDA_VERSION: str = _HOST["versions"]["cuda"]
DOCKER_VERSION: str = _HOST["versions"]["docker"]
TOOLKIT_VERSION: str = _HOST["versions"]["toolkit"]

# The files of the recorded host that the steps read. Paths are system paths.
RECORDED_FILES: dict[str, str] = dict(_HOST["files"])
# Executables that exist on the recorded host; DemoRunner answers for them.
RECORDED_PROGRAMS: tuple[str, ...] = tuple(_HOST["programs"])
NVIDIA_SMI: str = _HOST["nvidia_smi"]
# The recorded H200 as sysfs and /dev showed it, so `--demo doctor` finds the GPU the driver
# and NVML report (PCI 0000:00:06.0, 10de:2335, a 3D controller) and the device nodes its
# CDI spec names. The nodes are empty files: stand-ins that only need to exist.
RECORDED_PCI: dict[str, dict[str, str]] = dict(_HOST["pci"])
RECORDED_NODES: tuple[str, ...] = tuple(_HOST["nodes"])
GPU_UUID: str = _HOST["gpu_uuid"]


def demo_key_file() -> Path:
    """The demo signing key bundled in gpuwizard/data."""
    return DATA / "demo-key.asc"


def cdi_spec() -> str:
    """The shape of the spec nvidia-ctk 1.20.0 generated on the recorded H200."""
    edits = "".join(f"    - path: {n}\n" for n in RECORDED_NODES)
    device = "    containerEdits:\n      deviceNodes:\n        - path: /dev/nvidia0\n"
    mounts = "".join(
        f"    - hostPath: {p}\n      containerPath: {p}\n      options: [ro, nosuid, nodev, bind]\n"
        for p in (
            f"/usr/local/nvidia/lib64/libnvidia-ml.so.{DRIVER_VERSION}",
            "/usr/local/nvidia/bin/nvidia-smi",
        )
    )
    return (
        "cdiVersion: 0.5.0\n"
        "kind: nvidia.com/gpu\n"
        "devices:\n"
        f'  - name: "0"\n{device}'
        f"  - name: {GPU_UUID}\n{device}"
        f"  - name: all\n{device}"
        "containerEdits:\n"
        "  env:\n"
        "    - NVIDIA_VISIBLE_DEVICES=void\n"
        f"  deviceNodes:\n{edits}"
        f"  mounts:\n{mounts}"
    )
