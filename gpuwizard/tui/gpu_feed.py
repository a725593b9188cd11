"""What the GPU panel draws, and where it gets it: the driver helper's sampler, behind one seam.

The panel only knows `GpuReading`; `GpuFeed` turns the sampler's Samples into readings and
owns the one long-running `nvidia-smi -l` reader for the raw view.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Optional

from gpuwizard.errors import WizardError

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


def reading_from_sample(g: Any) -> GpuReading:
    """Convert one `gpu_sampler.GpuReading` into what the panel draws."""
    procs = tuple(
        (int(p.pid), str(p.name or "?"), float(p.used_memory_mib or 0)) for p in (g.processes or ())
    )
    return GpuReading(
        index=int(g.index),
        name=str(g.name),
        util=_f(g.utilization_gpu),
        mem_used=_f(g.memory_used_mib),
        mem_total=_f(g.memory_total_mib),
        temp=_f(g.temperature_c),
        power=_f(g.power_w),
        power_limit=_f(g.power_limit_w),
        sm_clock=_f(g.clock_sm_mhz),
        processes=procs,
    )


def _f(value: Any) -> Optional[float]:
    return None if value is None else float(value)


class GpuFeed:
    """Samples GPUs through the host's NVML seam; reads raw frames from one nvidia-smi -l."""

    def __init__(self, host: Any) -> None:
        self.host = host
        self._sampler: Any = None
        self._raw: Any = None

    def sample(self) -> list[GpuReading]:
        """One round of readings; raises a WizardError when NVML cannot be used."""
        if self._sampler is None:
            from gpuwizard.host import gpu_sampler, nvml  # lazy: pynvml behind them

            self._sampler = gpu_sampler.GpuSampler(nvml.backend_for(self.host), host=self.host)
        sample = self._sampler.sample()
        if sample.error:
            raise WizardError(
                f"NVML cannot be read: {sample.error}",
                "Check the driver (`nvidia-smi`); `gpuwizard doctor` explains.",
            )
        return [reading_from_sample(g) for g in sample.gpus]

    def raw_frame(self) -> Optional[list[str]]:
        """The latest complete `nvidia-smi` frame, starting its one reader on first use."""
        if self._raw is None:
            self._raw = self._raw_stream()
            self._raw.start()
        if self._raw.error:
            return [self._raw.error]
        frame = self._raw.latest
        return None if frame is None else frame.splitlines()

    def _raw_stream(self) -> Any:
        from gpuwizard.host import gpu_sampler

        if getattr(self.host, "demo", False):
            return gpu_sampler.ReplayedSmiStream.recorded_h200()
        smi = self.host.which("nvidia-smi", extra_dirs=("/usr/local/nvidia/bin",))
        if smi is None:
            raise WizardError(
                "nvidia-smi is not installed on this host",
                "The gauges still work through NVML; press v to go back.",
            )
        return gpu_sampler.SmiStream(smi, chroot=None if self.host.is_live else str(self.host.root))

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


class FrozenGpuHistory(GpuHistory):
    """A last minute that never moves: screenshot mode's sparklines (see ScreenshotGpuFeed)."""

    def add(self, readings: list[GpuReading]) -> None:
        pass


class ScreenshotGpuFeed(GpuFeed):
    """Screenshot mode only (scripts/screenshots.py): the recorded H200 frozen at one frame.

    The demo's live feed drifts with the wall clock, so no two screenshots of the panel
    agree. This one replays the recorded backend at the seconds 0..59 of a clock it steps
    itself, once, for a full minute of history; every later sample is the last of those
    frames. With the frozen clock (gpuwizard.clock) the raw view's stamp is fixed too.
    """

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        from gpuwizard.host import gpu_sampler, nvml

        instant = [0.0]
        data = nvml.recorded_h200(moving=False).data
        backend = nvml.RecordedBackend(data, moving=True, clock=lambda: instant[0])
        sampler = gpu_sampler.GpuSampler(backend, host=host)
        self.history = FrozenGpuHistory()
        frame: list[GpuReading] = []
        for second in range(HISTORY):
            instant[0] = float(second)
            frame = [reading_from_sample(g) for g in sampler.sample().gpus]
            GpuHistory.add(self.history, frame)
        self.frame = frame

    def sample(self) -> list[GpuReading]:
        return list(self.frame)
