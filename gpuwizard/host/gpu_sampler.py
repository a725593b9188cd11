"""Live GPU readings for the GPU panel, and a raw `nvidia-smi -l` view.

`GpuSampler` keeps NVML initialised and the device handles open between samples, reads the
static fields (name, UUID, memory total) once, and remembers which fields a GPU refuses so
it stops asking: one sample of one GPU is a dozen cheap NVML calls. A field NVML refuses is
None in the sample, never an error for the whole GPU.

`SmiStream` runs ONE `nvidia-smi -l N` for as long as the view is open and splits its output
into frames; starting nvidia-smi costs about 0.1 s, so it is never started per refresh.
Nothing here knows how the numbers are drawn.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from gpuwizard import clock
from gpuwizard.host.nvml import (
    CLOCK_MEM,
    CLOCK_SM,
    FIELD_UNAVAILABLE,
    NvmlBackend,
    PynvmlBackend,
    error_name,
    is_nvml_error,
)
from gpuwizard.host.runner import base_env

_MIB = 1024 * 1024
# errors that mean the whole GPU (or NVML) is gone, not one field: the GPU row shows the error
_WHOLE_GPU = frozenset(
    {
        "NVMLError_GpuIsLost",
        "NVMLError_ResetRequired",
        "NVMLError_Uninitialized",
        "NVMLError_DriverNotLoaded",
        "NVMLError_LibRmVersionMismatch",
    }
)


@dataclass(frozen=True)
class GpuProcess:
    pid: int
    name: Optional[str]
    used_memory_mib: Optional[int]


@dataclass(frozen=True)
class GpuReading:
    """One GPU at one moment. None: NVML does not offer that field on this GPU."""

    index: int
    name: str
    uuid: Optional[str]
    utilization_gpu: Optional[int]  # %
    utilization_memory: Optional[int]  # %
    memory_used_mib: Optional[int]
    memory_total_mib: Optional[int]
    temperature_c: Optional[int]
    power_w: Optional[float]
    power_limit_w: Optional[float]
    clock_sm_mhz: Optional[int]
    clock_mem_mhz: Optional[int]
    processes: Optional[tuple[GpuProcess, ...]]
    error: Optional[str] = None  # the GPU as a whole could not be read (fell off the bus)


@dataclass(frozen=True)
class Sample:
    """Every GPU at one moment."""

    time: float
    gpus: tuple[GpuReading, ...]
    error: Optional[str] = None  # NVML itself is unavailable (e.g. NVMLError_DriverNotLoaded)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Device:
    index: int
    handle: Any
    name: str
    uuid: Optional[str]
    memory_total_mib: Optional[int]
    refused: set[str]  # fields this GPU refused once: not asked again
    power_limit_w: Optional[float] = None
    power_limit_at: float = -1e9


class GpuSampler:
    """Reads every GPU through an NVML backend; cheap enough to call every second or faster."""

    POWER_LIMIT_TTL = 30.0  # s: the limit changes only when someone sets it

    def __init__(
        self,
        backend: Optional[NvmlBackend] = None,
        clock: Callable[[], float] = time.time,
        host: Any = None,
    ) -> None:
        self.backend: NvmlBackend = backend if backend is not None else PynvmlBackend()
        self.host = host  # for /proc/PID/comm under a --root; None: this machine
        self.clock = clock
        self._devices: Optional[list[_Device]] = None
        self._names: dict[int, Optional[str]] = {}
        self.open_error: Optional[str] = None

    # -- life cycle
    def open(self) -> None:
        """Initialise NVML and read what does not change. Safe to call again after close()."""
        if self._devices is not None:
            return
        try:
            self.backend.init()
            devices = []
            for i in range(self.backend.device_count()):
                h = self.backend.handle(i)
                refused: set[str] = set()
                name = self._get(refused, "name", partial(self.backend.name, h))
                memory = self._get(refused, "memory_total", partial(self.backend.memory, h))
                devices.append(
                    _Device(
                        index=i,
                        handle=h,
                        name=name or f"GPU {i}",
                        uuid=self._get(refused, "uuid", partial(self.backend.uuid, h)),
                        memory_total_mib=memory[0] // _MIB if memory else None,
                        refused=refused - {"memory_total"},
                    )
                )
        except ImportError:
            self.open_error = "pynvml is not installed"
            return
        except Exception as exc:
            if not is_nvml_error(exc):
                raise
            self.open_error = error_name(exc)
            return
        self._devices = devices
        self.open_error = None

    def close(self) -> None:
        if self._devices is not None:
            self._devices = None
            try:
                self.backend.shutdown()
            except Exception as exc:
                if not is_nvml_error(exc):
                    raise

    def __enter__(self) -> GpuSampler:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading
    @staticmethod
    def _get(refused: set[str], key: str, fn: Callable[[], Any]) -> Any:
        if key in refused:
            return None
        try:
            return fn()
        except Exception as exc:
            if not is_nvml_error(exc) or error_name(exc) in _WHOLE_GPU:
                raise
            if error_name(exc) in FIELD_UNAVAILABLE:
                refused.add(key)
            return None  # a passing refusal (timeout...): asked again next time

    def sample(self) -> Sample:
        """Read every GPU now."""
        if self._devices is None:
            self.open()
        now = self.clock()
        if self._devices is None:
            return Sample(now, (), self.open_error)
        return Sample(now, tuple(self._read(d, now) for d in self._devices))

    def _read(self, d: _Device, now: float) -> GpuReading:
        b, h, r = self.backend, d.handle, d.refused
        try:
            util = self._get(r, "utilization", lambda: b.utilization(h))
            mem = self._get(r, "memory", lambda: b.memory(h))
            temp = self._get(r, "temperature", lambda: b.temperature(h))
            power = self._get(r, "power", lambda: b.power_usage(h))
            if now - d.power_limit_at > self.POWER_LIMIT_TTL:
                limit = self._get(r, "power_limit", lambda: b.power_limit(h))
                d.power_limit_w = limit / 1000.0 if limit is not None else None
                d.power_limit_at = now
            sm = self._get(r, "clock_sm", lambda: b.clock(h, CLOCK_SM))
            memclk = self._get(r, "clock_mem", lambda: b.clock(h, CLOCK_MEM))
            procs = self._get(r, "processes", lambda: b.processes(h))
        except Exception as exc:  # e.g. NVMLError_GpuIsLost for this GPU only
            if not is_nvml_error(exc):
                raise
            return GpuReading(
                d.index,
                d.name,
                d.uuid,
                None,
                None,
                None,
                d.memory_total_mib,
                None,
                None,
                None,
                None,
                None,
                None,
                error=error_name(exc),
            )
        return GpuReading(
            index=d.index,
            name=d.name,
            uuid=d.uuid,
            utilization_gpu=util[0] if util else None,
            utilization_memory=util[1] if util else None,
            memory_used_mib=mem[1] // _MIB if mem else None,
            memory_total_mib=mem[0] // _MIB if mem else d.memory_total_mib,
            temperature_c=temp,
            power_w=power / 1000.0 if power is not None else None,
            power_limit_w=d.power_limit_w,
            clock_sm_mhz=sm,
            clock_mem_mhz=memclk,
            processes=None
            if procs is None
            else tuple(
                GpuProcess(pid, self._process_name(pid), used // _MIB if used is not None else None)
                for pid, used in procs
            ),
        )

    def _process_name(self, pid: int) -> Optional[str]:
        """NVML's name for a process, else /proc/PID/comm; cached per pid."""
        if pid in self._names:
            return self._names[pid]
        name: Optional[str] = None
        try:
            name = self.backend.process_name(pid)
        except Exception as exc:
            if not is_nvml_error(exc):
                raise
        if not name:
            comm = f"/proc/{pid}/comm"
            path = self.host.path(comm) if self.host is not None else Path(comm)
            try:
                name = path.read_text(encoding="utf-8").strip() or None
            except OSError:
                name = None
        if len(self._names) > 4096:
            self._names.clear()
        self._names[pid] = name
        return name


# ---------------------------------------------------------------------------------------------
# The raw view: one long-running `nvidia-smi -l N`

# nvidia-smi starts each frame with a timestamp line such as "Sun Nov 29 09:36:02 2026"
FRAME_START = re.compile(r"^[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}\s*$")


class SmiFrames:
    """Splits the text of `nvidia-smi -l` into frames, line by line."""

    def __init__(self) -> None:
        self._lines: list[str] = []

    def feed(self, line: str) -> Optional[str]:
        """Add one line; returns the previous frame when this line starts a new one."""
        done = None
        if FRAME_START.match(line) and any(s.strip() for s in self._lines):
            done = "\n".join(self._lines).rstrip() + "\n"
            self._lines = []
        self._lines.append(line.rstrip("\n"))
        return done

    def flush(self) -> Optional[str]:
        text = "\n".join(self._lines).rstrip()
        self._lines = []
        return text + "\n" if text else None


def split_frames(text: str) -> list[str]:
    """All complete frames of a recorded `nvidia-smi -l` output."""
    frames, splitter = [], SmiFrames()
    for line in text.splitlines():
        frame = splitter.feed(line)
        if frame:
            frames.append(frame)
    last = splitter.flush()
    if last:
        frames.append(last)
    return frames


class SmiStream:
    """ONE `nvidia-smi -l N` process, its output cut into frames as they come.

    `on_frame(text)` is called from the reader thread for each complete frame (a face hands
    it to its own loop); `latest` holds the newest. `argv` may name another program that
    prints the same format (tests, demo mode).
    """

    def __init__(
        self,
        nvidia_smi: str = "nvidia-smi",
        interval: int = 1,
        on_frame: Optional[Callable[[str], None]] = None,
        argv: Optional[Sequence[str]] = None,
        chroot: Optional[str] = None,
    ) -> None:
        self.argv = list(argv) if argv else [nvidia_smi, "-l", str(max(1, int(interval)))]
        if chroot:
            self.argv = ["chroot", chroot, *self.argv]
        self.on_frame = on_frame
        self.latest: Optional[str] = None
        self.frames = 0
        self.error: Optional[str] = None
        self._proc: Optional[subprocess.Popen[bytes]] = None
        self._thread: Optional[threading.Thread] = None
        self._tail: list[str] = []

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if self.running:
            return
        self.error = None
        self._proc = subprocess.Popen(  # argv list, never a shell
            self.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=base_env(),
            start_new_session=True,
        )
        self._thread = threading.Thread(target=self._read, name="nvidia-smi-stream", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        splitter = SmiFrames()
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self._tail = (self._tail + [line])[-20:]
            frame = splitter.feed(line)
            if frame:
                self._emit(frame)
        last = splitter.flush()
        code = proc.wait()
        if last and code == 0:
            self._emit(last)
        elif code not in (0, -signal.SIGTERM, -signal.SIGKILL):
            self.error = f"nvidia-smi exited with status {code}: " + " ".join(self._tail[-3:])

    def _emit(self, frame: str) -> None:
        self.latest = frame
        self.frames += 1
        if self.on_frame is not None:
            self.on_frame(frame)

    def stop(self, timeout: float = 3.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            except ProcessLookupError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None

    def __enter__(self) -> SmiStream:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ReplayedSmiStream:
    """Demo mode's raw view: a recorded `nvidia-smi` frame, shown again every interval with
    the current time in its header, through the same interface as `SmiStream`."""

    def __init__(
        self, frame: str, interval: float = 1.0, on_frame: Optional[Callable[[str], None]] = None
    ) -> None:
        self.frame = frame
        self.interval = interval
        self.on_frame = on_frame
        self.latest: Optional[str] = None
        self.frames = 0
        self.error: Optional[str] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    @classmethod
    def recorded_h200(
        cls, interval: float = 1.0, on_frame: Optional[Callable[[str], None]] = None
    ) -> ReplayedSmiStream:
        from gpuwizard.host.nvml import recorded_h200

        return cls(recorded_h200(moving=False).data["nvidia_smi_text"], interval, on_frame)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _stamped(self) -> str:
        t = time.localtime(clock.now())  # frozen in screenshot mode
        stamp = f"{time.strftime('%a %b', t)} {t.tm_mday:2d} {time.strftime('%H:%M:%S %Y', t)}"
        lines = self.frame.splitlines()
        if lines and FRAME_START.match(lines[0]):
            lines[0] = stamp
        else:
            lines.insert(0, stamp)
        return "\n".join(lines).rstrip() + "\n"

    def _loop(self) -> None:
        while not self._stop.is_set():
            frame = self._stamped()
            self.latest = frame
            self.frames += 1
            if self.on_frame is not None:
                self.on_frame(frame)
            self._stop.wait(self.interval)

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="nvidia-smi-replay", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 3.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None

    def __enter__(self) -> ReplayedSmiStream:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
