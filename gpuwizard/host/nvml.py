"""The NVML seam: the one place gpuwizard talks to the NVIDIA driver's management library.

`host.nvml_backend` is None for the real thing (`PynvmlBackend`, pynvml imported lazily) or a
`RecordedBackend` that replays what NVML returned on a real machine (CI tests, demo mode).
Both raise pynvml's own `NVMLError_*` classes, so the code above cannot tell them apart.
`record(backend)` writes exactly the shape `RecordedBackend` reads, so a recording made on a
real GPU is a fixture as it stands.
"""

from __future__ import annotations

import json
import math
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

# NVML constants, copied so that no caller needs pynvml just to name them
TEMPERATURE_GPU = 0
CLOCK_SM = 1
CLOCK_MEM = 2
_NOT_AVAILABLE = (1 << 64) - 1  # NVML_VALUE_NOT_AVAILABLE for unsigned long long

# Errors that mean "this field is not there on this GPU": shown as unavailable, not as a fault.
FIELD_UNAVAILABLE = frozenset(
    {
        "NVMLError_NotSupported",
        "NVMLError_InvalidArgument",
        "NVMLError_NotFound",
        "NVMLError_NoData",
        "NVMLError_FunctionNotFound",
        "NVMLError_NoPermission",
        "NVMLError_NotReady",
    }
)


def error_name(exc: BaseException) -> str:
    """The pynvml class name of an NVML error (e.g. NVMLError_DriverNotLoaded)."""
    name = type(exc).__name__
    if name == "NVMLError":  # a code pynvml has no class for
        return f"NVMLError({getattr(exc, 'value', '?')})"
    return name


def is_nvml_error(exc: BaseException) -> bool:
    return any(c.__name__ == "NVMLError" for c in type(exc).__mro__)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class NvmlBackend(Protocol):
    """What gpuwizard asks of NVML. Handles are opaque; every call may raise an NVMLError."""

    def init(self) -> None: ...
    def shutdown(self) -> None: ...
    def driver_version(self) -> str: ...
    def cuda_driver_version(self) -> int: ...
    def nvml_version(self) -> str: ...
    def device_count(self) -> int: ...
    def handle(self, index: int) -> Any: ...
    def name(self, h: Any) -> str: ...
    def uuid(self, h: Any) -> str: ...
    def memory(self, h: Any) -> tuple[int, int, int]: ...  # total, used, free (bytes)
    def pci(self, h: Any) -> tuple[str, int]: ...  # bus id, pciDeviceId (0x233510DE)
    def mig_mode(self, h: Any) -> tuple[int, int]: ...  # current, pending
    def mig_count(self, h: Any) -> int: ...
    def mig_handle(self, h: Any, index: int) -> Any: ...
    def utilization(self, h: Any) -> tuple[int, int]: ...  # gpu %, memory %
    def temperature(self, h: Any) -> int: ...  # degrees C
    def power_usage(self, h: Any) -> int: ...  # mW
    def power_limit(self, h: Any) -> int: ...  # mW
    def clock(self, h: Any, which: int) -> int: ...  # MHz
    def processes(self, h: Any) -> list[tuple[int, Optional[int]]]: ...  # pid, used bytes
    def process_name(self, pid: int) -> str: ...


class PynvmlBackend:
    """The real NVML, through nvidia-ml-py's pynvml (imported on first use)."""

    def __init__(self) -> None:
        self._nv: Any = None

    @property
    def nv(self) -> Any:
        if self._nv is None:
            import pynvml  # lazy: heavy, and absent NVML must not break start-up

            self._nv = pynvml
        return self._nv

    def init(self) -> None:
        self.nv.nvmlInit()

    def shutdown(self) -> None:
        self.nv.nvmlShutdown()

    def driver_version(self) -> str:
        return _text(self.nv.nvmlSystemGetDriverVersion())

    def cuda_driver_version(self) -> int:
        return int(self.nv.nvmlSystemGetCudaDriverVersion_v2())

    def nvml_version(self) -> str:
        return _text(self.nv.nvmlSystemGetNVMLVersion())

    def device_count(self) -> int:
        return int(self.nv.nvmlDeviceGetCount())

    def handle(self, index: int) -> Any:
        return self.nv.nvmlDeviceGetHandleByIndex(index)

    def name(self, h: Any) -> str:
        return _text(self.nv.nvmlDeviceGetName(h))

    def uuid(self, h: Any) -> str:
        return _text(self.nv.nvmlDeviceGetUUID(h))

    def memory(self, h: Any) -> tuple[int, int, int]:
        m = self.nv.nvmlDeviceGetMemoryInfo(h)
        return int(m.total), int(m.used), int(m.free)

    def pci(self, h: Any) -> tuple[str, int]:
        p = self.nv.nvmlDeviceGetPciInfo(h)
        return _text(p.busId), int(p.pciDeviceId)

    def mig_mode(self, h: Any) -> tuple[int, int]:
        cur, pending = self.nv.nvmlDeviceGetMigMode(h)
        return int(cur), int(pending)

    def mig_count(self, h: Any) -> int:
        return int(self.nv.nvmlDeviceGetMaxMigDeviceCount(h))

    def mig_handle(self, h: Any, index: int) -> Any:
        return self.nv.nvmlDeviceGetMigDeviceHandleByIndex(h, index)

    def utilization(self, h: Any) -> tuple[int, int]:
        u = self.nv.nvmlDeviceGetUtilizationRates(h)
        return int(u.gpu), int(u.memory)

    def temperature(self, h: Any) -> int:
        return int(self.nv.nvmlDeviceGetTemperature(h, TEMPERATURE_GPU))

    def power_usage(self, h: Any) -> int:
        return int(self.nv.nvmlDeviceGetPowerUsage(h))

    def power_limit(self, h: Any) -> int:
        return int(self.nv.nvmlDeviceGetEnforcedPowerLimit(h))

    def clock(self, h: Any, which: int) -> int:
        return int(self.nv.nvmlDeviceGetClockInfo(h, which))

    def processes(self, h: Any) -> list[tuple[int, Optional[int]]]:
        seen: dict[int, Optional[int]] = {}
        for getter in (
            self.nv.nvmlDeviceGetComputeRunningProcesses,
            self.nv.nvmlDeviceGetGraphicsRunningProcesses,
        ):
            for p in getter(h):
                used = getattr(p, "usedGpuMemory", None)
                if used is None or used == _NOT_AVAILABLE:
                    used = None
                seen[int(p.pid)] = int(used) if used is not None else seen.get(int(p.pid))
        return list(seen.items())

    def process_name(self, pid: int) -> str:
        return _text(self.nv.nvmlSystemGetProcessName(pid))


def nvml_error(name: str, value: Optional[int] = None) -> BaseException:
    """Build the real pynvml exception named `name` (e.g. 'NVMLError_DriverNotLoaded')."""
    import pynvml  # lazy

    cls = getattr(pynvml, name, None)
    if cls is None and name.startswith("NVMLError(") and name.endswith(")"):
        error: BaseException = pynvml.NVMLError(int(name[len("NVMLError(") : -1]))
        return error
    if cls is None:
        error = pynvml.NVMLError(pynvml.NVML_ERROR_UNKNOWN if value is None else value)
        return error
    # pynvml's subclasses are created by NVMLError.__new__ from a code; find it
    for code, sub in pynvml.NVMLError._valClassMapping.items():
        if sub is cls:
            error = pynvml.NVMLError(code)
            return error
    error = pynvml.NVMLError(pynvml.NVML_ERROR_UNKNOWN)
    return error


# ---------------------------------------------------------------------------------------------
# Recording and replay


def _attempt(fn: Callable[[], Any]) -> Any:
    """A value as recorded: the plain value, or {"error": "NVMLError_…"} when NVML refused."""
    try:
        value = fn()
    except Exception as exc:  # recorded, never swallowed silently
        if is_nvml_error(exc):
            return {"error": error_name(exc)}
        return {"error": type(exc).__name__, "message": str(exc)}
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, list):
        return [list(v) if isinstance(v, tuple) else v for v in value]
    return value


def _record_device(backend: NvmlBackend, h: Any) -> dict[str, Any]:
    return {
        "name": _attempt(lambda: backend.name(h)),
        "uuid": _attempt(lambda: backend.uuid(h)),
        "memory": _attempt(lambda: backend.memory(h)),
        "pci": _attempt(lambda: backend.pci(h)),
        "mig_mode": _attempt(lambda: backend.mig_mode(h)),
        "utilization": _attempt(lambda: backend.utilization(h)),
        "temperature": _attempt(lambda: backend.temperature(h)),
        "power_usage": _attempt(lambda: backend.power_usage(h)),
        "power_limit": _attempt(lambda: backend.power_limit(h)),
        "clock_sm": _attempt(lambda: backend.clock(h, CLOCK_SM)),
        "clock_mem": _attempt(lambda: backend.clock(h, CLOCK_MEM)),
        "processes": _attempt(lambda: backend.processes(h)),
    }


def record(backend: NvmlBackend, note: str = "") -> dict[str, Any]:
    """Ask NVML everything gpuwizard asks, and keep the answers (and refusals) as JSON."""
    data: dict[str, Any] = {"format": 1, "note": note, "recorded_at": time.time()}
    data["init"] = _attempt(backend.init)
    if isinstance(data["init"], dict) and "error" in data["init"]:
        return data
    data["driver_version"] = _attempt(backend.driver_version)
    data["cuda_driver_version"] = _attempt(backend.cuda_driver_version)
    data["nvml_version"] = _attempt(backend.nvml_version)
    data["device_count"] = _attempt(backend.device_count)
    devices = []
    pids: set[int] = set()
    count = data["device_count"] if isinstance(data["device_count"], int) else 0
    for i in range(count):
        try:
            h = backend.handle(i)
        except Exception as exc:
            devices.append({"handle": {"error": error_name(exc)}})
            continue
        dev = _record_device(backend, h)
        if isinstance(dev["processes"], list):
            pids.update(int(p[0]) for p in dev["processes"])
        mig_count = _attempt(partial(backend.mig_count, h))
        dev["mig_count"] = mig_count
        migs = []
        mode = dev["mig_mode"]
        if isinstance(mode, list) and mode[0] == 1 and isinstance(mig_count, int):
            for j in range(mig_count):
                try:
                    mh = backend.mig_handle(h, j)
                except Exception as exc:
                    if is_nvml_error(exc):
                        continue  # an empty MIG slot
                    raise
                migs.append(
                    {
                        "index": j,
                        "name": _attempt(partial(backend.name, mh)),
                        "uuid": _attempt(partial(backend.uuid, mh)),
                        "memory": _attempt(partial(backend.memory, mh)),
                    }
                )
        dev["mig_devices"] = migs
        devices.append(dev)
    data["devices"] = devices
    data["process_names"] = {
        str(pid): _attempt(partial(backend.process_name, pid)) for pid in sorted(pids)
    }
    _attempt(backend.shutdown)
    return data


class RecordedBackend:
    """Replays a recording made by `record()` on a real machine.

    With `moving=True` the live fields (utilization, power, temperature, memory used, clocks)
    drift a little around the recorded values as time passes, so a demo panel looks alive.
    Every refusal recorded (e.g. NVMLError_InvalidArgument for the H200's MIG mode) is
    raised again as the real pynvml exception.
    """

    def __init__(
        self,
        data: dict[str, Any],
        moving: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.data = data
        self.moving = moving
        self._now = clock
        self._start = clock()
        self.initialised = False
        self.calls = 0

    @classmethod
    def from_file(cls, path: str | Path, moving: bool = False) -> RecordedBackend:
        return cls(json.loads(Path(path).read_text(encoding="utf-8")), moving=moving)

    @classmethod
    def failing(cls, error: str) -> RecordedBackend:
        """A backend whose nvmlInit raises `error` (e.g. 'NVMLError_DriverNotLoaded')."""
        return cls({"format": 1, "init": {"error": error}})

    # -- replay helpers
    def _value(self, value: Any) -> Any:
        self.calls += 1
        if isinstance(value, dict) and "error" in value:
            raise nvml_error(value["error"])
        return value

    def _dev(self, h: Any) -> dict[str, Any]:
        if not self.initialised:
            raise nvml_error("NVMLError_Uninitialized")
        if isinstance(h, tuple):  # a MIG device: (parent, index)
            parent = self.data["devices"][h[0]]
            return next(m for m in parent.get("mig_devices", []) if m["index"] == h[1])
        dev: dict[str, Any] = self.data["devices"][h]
        return dev

    def _field(self, h: Any, key: str) -> Any:
        dev = self._dev(h)
        if key not in dev:
            raise nvml_error("NVMLError_NotSupported")
        return self._value(dev[key])

    def _wobble(
        self, h: Any, base: float, amplitude: float, period: float, lo: float, hi: float
    ) -> int:
        if not self.moving:
            return int(base)
        t = self._now() - self._start
        phase = (h if isinstance(h, int) else 0) * 1.7
        value = base + amplitude * math.sin(2 * math.pi * t / period + phase)
        return int(round(min(hi, max(lo, value))))

    # -- the NvmlBackend protocol
    def init(self) -> None:
        self._value(self.data.get("init"))
        self.initialised = True

    def shutdown(self) -> None:
        self.initialised = False

    def driver_version(self) -> str:
        return str(self._value(self.data["driver_version"]))

    def cuda_driver_version(self) -> int:
        return int(self._value(self.data["cuda_driver_version"]))

    def nvml_version(self) -> str:
        return str(self._value(self.data.get("nvml_version", {"error": "NVMLError_NotSupported"})))

    def device_count(self) -> int:
        if not self.initialised:
            raise nvml_error("NVMLError_Uninitialized")
        return int(self._value(self.data["device_count"]))

    def handle(self, index: int) -> Any:
        dev = self._dev(index) if index < len(self.data.get("devices", [])) else None
        if dev is None:
            raise nvml_error("NVMLError_InvalidArgument")
        if "handle" in dev:
            self._value(dev["handle"])
        return index

    def name(self, h: Any) -> str:
        return str(self._field(h, "name"))

    def uuid(self, h: Any) -> str:
        return str(self._field(h, "uuid"))

    def memory(self, h: Any) -> tuple[int, int, int]:
        total, used, _free = self._field(h, "memory")
        if self.moving and not isinstance(h, tuple):
            used = self._wobble(h, used + total * 0.02, total * 0.02, 47.0, 0, total)
        return int(total), int(used), int(total) - int(used)

    def pci(self, h: Any) -> tuple[str, int]:
        bus, dev_id = self._field(h, "pci")
        return str(bus), int(dev_id)

    def mig_mode(self, h: Any) -> tuple[int, int]:
        cur, pending = self._field(h, "mig_mode")
        return int(cur), int(pending)

    def mig_count(self, h: Any) -> int:
        return int(self._field(h, "mig_count"))

    def mig_handle(self, h: Any, index: int) -> Any:
        dev = self._dev(h)
        if not any(m["index"] == index for m in dev.get("mig_devices", [])):
            raise nvml_error("NVMLError_NotFound")
        return (h, index)

    def utilization(self, h: Any) -> tuple[int, int]:
        gpu, mem = self._field(h, "utilization")
        if self.moving:
            busy = gpu >= 80  # recorded under load: stay busy; recorded idle: wake up
            gpu = self._wobble(
                h, gpu - 8 if busy else max(gpu, 35), 10 if busy else 30, 13.0, 0, 100
            )
            mem = self._wobble(h, max(mem, 12), 8, 17.0, 0, 100)
        return int(gpu), int(mem)

    def temperature(self, h: Any) -> int:
        t = self._field(h, "temperature")
        return self._wobble(h, t + 2, 3, 31.0, 0, 120) if self.moving else int(t)

    def power_usage(self, h: Any) -> int:
        p = self._field(h, "power_usage")
        if not self.moving:
            return int(p)
        limit = self.data["devices"][h]["power_limit"]
        hi = limit if isinstance(limit, int) else p * 4
        if p > hi * 0.5:  # recorded under load
            return self._wobble(h, p * 0.95, p * 0.05, 13.0, p * 0.7, hi)
        return self._wobble(h, min(p * 2.2, hi * 0.8), p * 0.5, 13.0, p * 0.9, hi)

    def power_limit(self, h: Any) -> int:
        return int(self._field(h, "power_limit"))

    def clock(self, h: Any, which: int) -> int:
        key = "clock_sm" if which == CLOCK_SM else "clock_mem"
        value = self._field(h, key)
        if self.moving and which == CLOCK_SM:
            if value >= 1000:  # recorded under load
                return self._wobble(h, value - 40, 60, 19.0, value - 300, value + 100)
            return self._wobble(h, value + 600, 500, 19.0, value, value + 1200)
        return int(value)

    def processes(self, h: Any) -> list[tuple[int, Optional[int]]]:
        return [
            (int(pid), None if used is None else int(used))
            for pid, used in self._field(h, "processes")
        ]

    def process_name(self, pid: int) -> str:
        names = self.data.get("process_names", {})
        if str(pid) not in names:
            raise nvml_error("NVMLError_NotFound")
        return str(self._value(names[str(pid)]))


def backend_for(host: Any) -> NvmlBackend:
    """The NVML backend for a host: its stand-in when one is set, else the real pynvml."""
    return host.nvml_backend if host.nvml_backend is not None else PynvmlBackend()


def recorded_h200(moving: bool = True) -> RecordedBackend:
    """The NVML answers recorded on the project's H200 machine (demo mode, tests)."""
    path = Path(__file__).resolve().parent.parent / "data" / "h200_recorded.json"
    return RecordedBackend.from_file(path, moving=moving)
