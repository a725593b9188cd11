"""The live GPU panel's numbers: read through the NVML seam, a refused field is None (never an
error for the whole GPU), NVML stays open between samples, and the raw nvidia-smi view is one
long-running process cut into frames."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from driver_roots import FIXTURES, h200_nvml

from gpuwizard.host.gpu_sampler import GpuSampler, SmiStream, split_frames
from gpuwizard.host.nvml import RecordedBackend

REPO = Path(__file__).resolve().parent.parent


class Counting(RecordedBackend):
    """The recorded backend, counting how often each NVML question is asked."""

    def __init__(self, data: dict[str, Any], **kw: Any) -> None:
        super().__init__(data, **kw)
        self.asked: dict[str, int] = {}

    def __getattribute__(self, name: str) -> Any:
        if name in ("init", "power_usage", "mig_mode", "name", "uuid"):
            asked = object.__getattribute__(self, "asked")
            asked[name] = asked.get(name, 0) + 1
        return object.__getattribute__(self, name)


def test_a_sample_of_the_h200_gives_every_field() -> None:
    sample = GpuSampler(RecordedBackend(h200_nvml()), clock=lambda: 42.0).sample()
    assert sample.error is None and sample.time == 42.0
    (g,) = sample.gpus
    assert (g.index, g.name, g.uuid) == (
        0,
        "NVIDIA H200",
        "GPU-5e7955ae-2727-75c0-d5b0-5b2ea03fc696",
    )
    assert (g.utilization_gpu, g.utilization_memory) == (0, 0)
    assert (g.memory_used_mib, g.memory_total_mib) == (615, 143771)
    assert g.temperature_c == 39
    assert g.power_w == 95.147 and g.power_limit_w == 700.0
    assert (g.clock_sm_mhz, g.clock_mem_mhz) == (345, 3201)
    assert g.processes == () and g.error is None
    assert json.loads(json.dumps(sample.to_json()))["gpus"][0]["name"] == "NVIDIA H200"


def test_a_field_the_gpu_refuses_is_none_and_is_not_asked_again() -> None:
    data = h200_nvml()
    data["devices"][0]["power_usage"] = {"error": "NVMLError_NotSupported"}
    data["devices"][0]["temperature"] = {"error": "NVMLError_InvalidArgument"}
    backend = Counting(data)
    sampler = GpuSampler(backend)
    for _ in range(5):
        (g,) = sampler.sample().gpus
        assert g.power_w is None and g.temperature_c is None
        assert g.error is None and g.clock_sm_mhz == 345 and g.power_limit_w == 700.0
    assert backend.asked["power_usage"] == 1


def test_nvml_stays_open_and_static_fields_are_read_once() -> None:
    backend = Counting(h200_nvml())
    with GpuSampler(backend) as sampler:
        for _ in range(10):
            sampler.sample()
    assert backend.asked["init"] == 1
    assert backend.asked["name"] == 1 and backend.asked["uuid"] == 1
    assert "mig_mode" not in backend.asked  # 165 us on the H200: the panel never asks


def test_a_lost_gpu_is_an_error_for_that_gpu_only() -> None:
    data = h200_nvml()
    data["device_count"] = 2
    lost = json.loads(json.dumps(data["devices"][0]))
    lost["utilization"] = {"error": "NVMLError_GpuIsLost"}
    lost["uuid"] = "GPU-lost"
    data["devices"].append(lost)
    a, b = GpuSampler(RecordedBackend(data)).sample().gpus
    assert a.error is None and a.utilization_gpu == 0
    assert b.error == "NVMLError_GpuIsLost" and b.utilization_gpu is None
    assert b.memory_total_mib == 143771


def test_driver_not_loaded_gives_an_empty_sample_with_the_reason() -> None:
    sample = GpuSampler(RecordedBackend.failing("NVMLError_DriverNotLoaded")).sample()
    assert sample.gpus == () and sample.error == "NVMLError_DriverNotLoaded"


def test_processes_carry_names_and_memory() -> None:
    data = h200_nvml()
    data["devices"][0]["processes"] = [[4242, 2 * 1024**3], [4343, None]]
    data["process_names"] = {"4242": "python3", "4343": {"error": "NVMLError_NoPermission"}}
    (g,) = GpuSampler(RecordedBackend(data)).sample().gpus
    assert g.processes is not None
    first, second = g.processes
    assert (first.pid, first.name, first.used_memory_mib) == (4242, "python3", 2048)
    assert second.used_memory_mib is None  # NVML gives no per-process memory here


def test_demo_values_move_a_little_over_time() -> None:
    now = [0.0]
    backend = RecordedBackend(h200_nvml(), moving=True, clock=lambda: now[0])
    sampler = GpuSampler(backend)
    seen = set()
    for t in range(0, 30, 3):
        now[0] = float(t)
        (g,) = sampler.sample().gpus
        assert g.utilization_gpu is not None and 0 <= g.utilization_gpu <= 100
        assert g.power_w is not None and g.power_w <= 700.0
        assert g.memory_used_mib is not None and g.memory_used_mib <= 143771
        seen.add((g.utilization_gpu, g.power_w))
    assert len(seen) > 3


def test_recorded_nvidia_smi_loop_splits_into_frames() -> None:
    frames = split_frames((FIXTURES / "nvidia-smi-loop.txt").read_text())
    assert len(frames) >= 3
    for frame in frames:
        assert "NVIDIA H200" in frame and "Driver Version: 580.159.04" in frame
        assert frame.count("CUDA Version: 13.0") == 1


def test_smi_stream_runs_one_process_and_stops_it(tmp_path: Path) -> None:
    script = tmp_path / "nvidia-smi"
    script.write_text(f"#!/bin/sh\ncat {FIXTURES / 'nvidia-smi-loop.txt'}\nexec sleep 60\n")
    script.chmod(0o755)
    got: list[str] = []
    stream = SmiStream(str(script), interval=1, on_frame=got.append)
    stream.start()
    pid = stream._proc.pid if stream._proc else None
    deadline = time.monotonic() + 10
    expected = len(split_frames((FIXTURES / "nvidia-smi-loop.txt").read_text())) - 1
    while len(got) < expected and time.monotonic() < deadline:
        time.sleep(0.02)
    assert stream.running
    stream.start()  # a second start does not spawn a second nvidia-smi
    assert stream._proc is not None and stream._proc.pid == pid
    stream.stop()
    assert not stream.running and stream.error is None
    assert len(got) == expected and stream.latest == got[-1]
    assert "NVIDIA-SMI 580.159.04" in got[0]
    assert pid is not None
    try:
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive


def test_smi_stream_reports_why_nvidia_smi_stopped(tmp_path: Path) -> None:
    script = tmp_path / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\necho \"NVIDIA-SMI has failed because it couldn't communicate "
        'with the NVIDIA driver."\nexit 9\n'
    )
    script.chmod(0o755)
    stream = SmiStream(str(script))
    stream.start()
    assert stream._thread is not None
    stream._thread.join(timeout=10)
    assert stream.error is not None and "status 9" in stream.error
    assert "couldn't communicate" in stream.error
    stream.stop()


def test_benchmark_prints_the_cost_per_sample_as_json() -> None:
    out = subprocess.run(  # noqa: S603
        [
            sys.executable,
            str(REPO / "benchmarks/sampler_cost.py"),
            "--recorded",
            "--json",
            "--samples",
            "300",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result = json.loads(out.stdout)
    assert result["backend"] == "recorded-h200" and result["gpus"] == 1
    assert 0 < result["cpu_ms_per_sample_per_gpu"] <= result["target_ms_per_gpu"] == 0.2
    text = subprocess.run(  # noqa: S603
        [
            sys.executable,
            str(REPO / "benchmarks/sampler_cost.py"),
            "--recorded",
            "--samples",
            "100",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert text.startswith("sampler: ") and "ms CPU per sample" in text


def test_a_process_nvml_cannot_name_is_named_from_proc(tmp_path: Path) -> None:
    from gpuwizard.host.system import Host

    root = tmp_path / "root"
    (root / "proc/4242").mkdir(parents=True)
    (root / "proc/4242/comm").write_text("trainer\n")
    data = h200_nvml()
    data["devices"][0]["processes"] = [[4242, 1024**3]]
    (g,) = GpuSampler(RecordedBackend(data), host=Host(root=root)).sample().gpus
    assert g.processes is not None and g.processes[0].name == "trainer"


def test_demo_raw_view_replays_the_h200_frame_with_the_current_time() -> None:
    from gpuwizard.host.gpu_sampler import FRAME_START, ReplayedSmiStream

    got: list[str] = []
    with ReplayedSmiStream.recorded_h200(interval=0.01, on_frame=got.append) as stream:
        deadline = time.monotonic() + 5
        while len(got) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert not stream.running and len(got) >= 3
    first_line = got[0].splitlines()[0]
    assert FRAME_START.match(first_line) and time.strftime("%Y") in first_line
    assert "NVIDIA H200" in got[0] and "CUDA Version: 13.0" in got[0]
    assert split_frames("".join(got[:3])) == got[:3]


def test_the_h200_under_load_shows_the_busy_process() -> None:
    data = json.loads((FIXTURES / "load" / "nvml.json").read_text())
    (g,) = GpuSampler(RecordedBackend(data)).sample().gpus
    assert g.utilization_gpu == 100 and g.power_w is not None and g.power_w > 600
    assert g.processes is not None
    (proc,) = g.processes
    assert (proc.pid, proc.name, proc.used_memory_mib) == (429, "python3", 1130)


def test_the_demo_panel_stays_plausible_for_a_minute() -> None:
    from gpuwizard.host.nvml import recorded_h200

    now = [0.0]
    backend = recorded_h200(moving=True)
    backend._now = lambda: now[0]
    backend._start = 0.0
    sampler = GpuSampler(backend)
    utils = set()
    for t in range(60):
        now[0] = float(t)
        (g,) = sampler.sample().gpus
        assert g.utilization_gpu is not None and 60 <= g.utilization_gpu <= 100
        assert g.power_w is not None and 450 <= g.power_w <= 700.0
        assert g.clock_sm_mhz is not None and 1100 <= g.clock_sm_mhz <= 1980
        assert g.processes and g.processes[0].name == "python3"
        utils.add(g.utilization_gpu)
    assert len(utils) > 5
