"""doctor on a real NVIDIA GPU: hardware, kernel module and driver must read as they are.

On the project's H200 (Ubuntu 24.04, driver 580.159.04, in a container, no Docker) it printed:
  ✓ hardware        1 NVIDIA GPU(s): 10de:2335 at 0000:00:06.0
  ✓ kernel-module   nvidia loaded (580.159.04)
  ! driver          NVIDIA H200; driver 580.159.04, CUDA 13.0 (read through nvml); gpuwizard is
                    running inside a container: it sees and changes this container, not the
                    host's Docker
  ✗ repository      NVIDIA's repository is not configured
  ✗ packages        the NVIDIA Container Toolkit is not installed
  ✗ engine          Docker Engine is not installed
and took 0.035 s (0.24 s the first time, NVML's initialisation included).

CI never runs this (no GPU there); it skips cleanly without one. On the GPU machine run it
as `python3 -m pytest tests/gpu/test_doctor_gpu.py -q` or as a script, which also prints the
report.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gpuwizard.doctor import OK, WARN, render_report, run_doctor  # noqa: E402
from gpuwizard.failures import classify  # noqa: E402
from gpuwizard.host.system import Host  # noqa: E402
from gpuwizard.options import Options  # noqa: E402


def _has_gpu() -> bool:
    base = Path("/sys/bus/pci/devices")
    return base.is_dir() and any(
        (d / "vendor").read_text().strip() == "0x10de"
        for d in base.iterdir()
        if (d / "vendor").is_file()
    )


pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not _has_gpu(), reason="no NVIDIA GPU")]


def test_doctor_reads_the_gpu_its_module_and_its_driver_on_real_hardware() -> None:
    report = run_doctor(Host(), Options())
    print(render_report(report, color=False))
    assert report.link("hardware").verdict == OK
    assert report.link("kernel-module").verdict == OK
    driver = report.link("driver")
    # WARN is right inside a container (the project's GPU machine is one): the driver works,
    # but the Docker set up there is the container's, not the host's
    assert driver.verdict in (OK, WARN), driver
    report_json = driver.facts["report"]
    assert report_json["source"] in ("nvml", "nvidia-smi")
    assert report_json["driver_version"] in report.link("kernel-module").summary


def test_a_real_driver_error_from_this_machine_is_classified() -> None:
    import subprocess

    # NVML refuses an index that does not exist; the message is real, and not a failure we
    # know, so it must not be misread as one.
    smi = (
        "/usr/local/nvidia/bin/nvidia-smi"
        if Path("/usr/local/nvidia/bin/nvidia-smi").exists()
        else "nvidia-smi"
    )
    out = subprocess.run([smi, "-i", "99"], capture_output=True, text=True)
    assert classify(out.stdout + out.stderr) is None, out.stdout + out.stderr


if __name__ == "__main__":
    report = run_doctor(Host(), Options())
    print(render_report(report, color=False))
    sys.exit(report.exit_code)
