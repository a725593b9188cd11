"""What the GPU panel draws, and where it gets it: the driver helper's sampler, behind one seam.

The panel only knows `GpuReading`; `GpuFeed` turns the sampler's Samples into readings and
owns the one long-running `nvidia-smi -l` reader for the raw view.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Optional

HISTORY = 60  # seconds of sparkline kept per GPU


@dataclass(frozen=True)
class GpuReading:
    """One GPU at one instant, in the units the panel shows."""

    index: int
    name: str
    util: Optional[float] = None  # percent
    mem_used: Optional[float] = None  # MiB
    mem_total: Optional[float] = None  # MiB
    temp: Optional[float] = None  # °C
    power: Optional[float] = None  # W
    power_limit: Optional[float] = None  # W
    sm_clock: Optional[float] = None  # MHz
    processes: tuple[tuple[int, str, float], ...] = ()  # (pid, name, MiB)

    @property
    def mem_percent(self) -> Optional[float]:
        if self.mem_used is None or not self.mem_total:
            return None
        return 100.0 * self.mem_used / self.mem_total


@dataclass
class GpuHistory:
    """The last minute of utilization and memory per GPU, for the sparklines."""

    util: dict[int, deque[float]] = field(default_factory=dict)
    mem: dict[int, deque[float]] = field(default_factory=dict)

    def add(self, readings: list[GpuReading]) -> None:
        for r in readings:
            self.util.setdefault(r.index, deque(maxlen=HISTORY)).append(r.util or 0.0)
            self.mem.setdefault(r.index, deque(maxlen=HISTORY)).append(r.mem_percent or 0.0)


def _num(obj: Any, *names: str) -> Optional[float]:
    for name in names:
        value = getattr(obj, name, None)
        if isinstance(value, (int, float)):
            return float(value)
    return None


def reading_from_sample(sample: Any) -> GpuReading:
    """Convert one sampler Sample (gpuwizard.host.gpu_sampler) into a reading."""
    procs = []
    for p in getattr(sample, "processes", ()) or ():
        pid = int(getattr(p, "pid", 0) or 0)
        name = str(getattr(p, "name", "") or getattr(p, "command", "") or "?")
        mem = _num(p, "memory_mib", "used_memory_mib", "memory") or 0.0
        procs.append((pid, name, mem))
    return GpuReading(
        index=int(getattr(sample, "index", 0) or 0),
        name=str(getattr(sample, "name", "GPU")),
        util=_num(sample, "utilization", "util", "gpu_util"),
        mem_used=_num(sample, "memory_used_mib", "mem_used_mib", "memory_used"),
        mem_total=_num(sample, "memory_total_mib", "mem_total_mib", "memory_total"),
        temp=_num(sample, "temperature", "temperature_c", "temp"),
        power=_num(sample, "power_w", "power", "power_draw_w"),
        power_limit=_num(sample, "power_limit_w", "power_limit"),
        sm_clock=_num(sample, "sm_clock_mhz", "clock_sm_mhz", "sm_clock"),
        processes=tuple(procs),
    )


class GpuFeed:
    """Samples GPUs through the host's NVML seam; reads raw frames from one nvidia-smi -l."""

    def __init__(self, host: Any) -> None:
        self.host = host
        self._sampler: Any = None
        self._raw: Any = None

    def sample(self) -> list[GpuReading]:
        """One round of readings; raises a WizardError when NVML cannot be used."""
        if self._sampler is None:
            from gpuwizard.host import gpu_sampler  # lazy: pynvml behind it

            self._sampler = gpu_sampler.GpuSampler(self.host)
        return [reading_from_sample(s) for s in self._sampler.sample()]

    def raw_frame(self) -> Optional[list[str]]:
        """The latest complete `nvidia-smi` frame, starting its reader on first use."""
        if self._raw is None:
            from gpuwizard.host import gpu_sampler

            self._raw = gpu_sampler.RawFrameReader(self.host)
            self._raw.start()
        frame = self._raw.latest()
        return None if frame is None else list(frame)

    def stop_raw(self) -> None:
        """Stop the nvidia-smi reader (the panel was hidden or switched view)."""
        if self._raw is not None:
            self._raw.stop()
            self._raw = None

    def close(self) -> None:
        self.stop_raw()
        closer = getattr(self._sampler, "close", None)
        if callable(closer):
            closer()
