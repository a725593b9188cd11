"""Run gpuwizard's driver detection and GPU sampler against a real GPU and print what it sees.

`PYTHONPATH=. python3 tests/gpu/check_gpu.py`. Prints the GpuReport, the driver step's plan,
the test-image choice, ten sampler readings, the cost of a sample and the raw nvidia-smi
stream. Says SKIP and exits 0 on a machine without a working NVIDIA GPU.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from gpuwizard.cuda_images import choose_test_images  # noqa: E402
from gpuwizard.host.gpu import find_nvidia_smi, probe_gpus  # noqa: E402
from gpuwizard.host.gpu_sampler import GpuSampler, SmiStream  # noqa: E402
from gpuwizard.host.system import Host  # noqa: E402
from gpuwizard.options import Options  # noqa: E402
from gpuwizard.steps.base import Simulation  # noqa: E402
from gpuwizard.steps.driver import DriverStep  # noqa: E402


def fmt(v: object, unit: str = "") -> str:
    return "n/a" if v is None else f"{v}{unit}"


def main() -> int:
    host = Host()
    t0 = time.perf_counter()
    report = probe_gpus(host)
    probe_s = time.perf_counter() - t0
    print(f"== GpuReport (probe took {probe_s:.3f} s)")
    print(json.dumps(report.to_json(), indent=1))
    if not report.gpus or report.source not in ("nvml", "nvidia-smi"):
        print(f"SKIP: no working NVIDIA GPU here ({report.summary()})")
        return 0
    plan = DriverStep().plan(host, Options(), Simulation())
    print(f"== DriverStep: {plan.state}: {plan.reason}")
    for w in plan.warnings:
        print(f"   warning: {w}")
    images = choose_test_images(report.cuda_version, Options())
    print(
        f"== test images: smoke {images.smoke} {' '.join(images.smoke_command)}; "
        f"cuda {images.cuda} ({images.reason})"
    )

    print("== ten sampler readings")
    with GpuSampler() as sampler:
        for _ in range(10):
            s = sampler.sample()
            for g in s.gpus:
                procs = "n/a" if g.processes is None else len(g.processes)
                print(
                    f"  gpu{g.index} {g.name}: util {fmt(g.utilization_gpu, '%')} "
                    f"memutil {fmt(g.utilization_memory, '%')} "
                    f"mem {fmt(g.memory_used_mib)}/{fmt(g.memory_total_mib)} MiB "
                    f"temp {fmt(g.temperature_c, 'C')} power {fmt(g.power_w, 'W')}/"
                    f"{fmt(g.power_limit_w, 'W')} sm {fmt(g.clock_sm_mhz, 'MHz')} "
                    f"mem {fmt(g.clock_mem_mhz, 'MHz')} procs {procs}"
                    + (f" error {g.error}" if g.error else "")
                )
            time.sleep(0.1)
        n = 1000
        c0, w0 = time.process_time(), time.perf_counter()
        for _ in range(n):
            sampler.sample()
        cpu_ms = (time.process_time() - c0) / n * 1e3
        wall_ms = (time.perf_counter() - w0) / n * 1e3
    print(
        f"== sample cost: {cpu_ms:.4f} ms CPU, {wall_ms:.4f} ms wall per sample "
        f"({len(report.gpus)} GPU, {n} samples)"
    )

    smi = find_nvidia_smi(host)
    if smi:
        frames: list[float] = []
        t0 = time.perf_counter()
        stream = SmiStream(smi, interval=1, on_frame=lambda f: frames.append(time.perf_counter()))
        stream.start()
        deadline = time.monotonic() + 6
        while len(frames) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        stream.stop()
        print(
            f"== nvidia-smi -l 1 stream ({smi}): {stream.frames} frames; first after "
            f"{(frames[0] - t0) if frames else float('nan'):.3f} s; error {stream.error}"
        )
        print(stream.latest or "(no frame)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
