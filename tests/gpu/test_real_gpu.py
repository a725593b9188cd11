"""On a machine with a real NVIDIA GPU: the report, the step and the sampler against the real
NVML and nvidia-smi. Skipped cleanly everywhere else (CI has no GPU)."""

from __future__ import annotations

import time

import pytest

from gpuwizard.host.gpu import find_nvidia_smi, probe_gpus
from gpuwizard.host.gpu_sampler import GpuSampler, SmiStream
from gpuwizard.host.system import Host
from gpuwizard.options import Options
from gpuwizard.steps.base import DONE, Simulation
from gpuwizard.steps.driver import DriverStep

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def live() -> Host:
    host = Host()
    report = probe_gpus(host)
    if not report.ok:
        pytest.skip(f"no working NVIDIA GPU here: {report.summary()}")
    return host


def test_real_driver_is_found_through_nvml(live: Host) -> None:
    report = probe_gpus(live)
    assert report.source == "nvml"
    assert report.cuda_version and report.driver_version
    assert all(g.uuid and g.memory_total_mib for g in report.gpus)
    assert DriverStep().plan(live, Options(), Simulation()).state == DONE


def test_real_sample_costs_under_the_target(live: Host) -> None:
    with GpuSampler() as sampler:
        first = sampler.sample()
        assert first.error is None and first.gpus
        assert all(g.error is None and g.memory_total_mib for g in first.gpus)
        n = 500
        c0 = time.process_time()
        for _ in range(n):
            sampler.sample()
        per_gpu_ms = (time.process_time() - c0) / n * 1e3 / len(first.gpus)
    assert per_gpu_ms <= 0.2


def test_real_nvidia_smi_stream_gives_frames(live: Host) -> None:
    smi = find_nvidia_smi(live)
    if smi is None:
        pytest.skip("nvidia-smi not found")
    with SmiStream(smi, interval=1) as stream:
        deadline = time.monotonic() + 8
        while stream.frames < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert stream.frames >= 2 and stream.latest and "NVIDIA-SMI" in stream.latest
