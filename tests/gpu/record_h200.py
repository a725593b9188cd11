"""Record what NVML and nvidia-smi say on a real GPU machine, for CI fixtures and demo mode.

Run on the GPU machine: `PYTHONPATH=. python3 tests/gpu/record_h200.py OUTDIR`. Writes
nvml.json (gpuwizard's recording format, plus every raw pynvml call with its return value or
exception, and its cost), nvidia-smi-q.xml, nvidia-smi.txt, nvidia-smi-L.txt,
nvidia-smi-loop.txt (3.5 s of `nvidia-smi -l 1`) and host_files.json. Exits 0 and says SKIP
on a machine without an NVIDIA driver.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

SMI_DIRS = ("/usr/local/nvidia/bin", "/usr/lib/wsl/lib", "/opt/nvidia/bin")


def find_smi() -> str | None:
    found = shutil.which("nvidia-smi")
    if found:
        return found
    for d in SMI_DIRS:
        if os.access(f"{d}/nvidia-smi", os.X_OK):
            return f"{d}/nvidia-smi"
    return None


def run(argv: list[str], timeout: float = 60) -> dict:
    t0 = time.monotonic()
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)  # noqa: S603
        return {
            "argv": argv,
            "rc": p.returncode,
            "stdout": p.stdout,
            "stderr": p.stderr,
            "seconds": round(time.monotonic() - t0, 4),
        }
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"argv": argv, "error": repr(exc)}


def raw_calls(nv) -> dict:
    """Every pynvml function gpuwizard uses, called directly: repr of the value or the error,
    and its cost (CPU and wall, microseconds, mean of 200 calls)."""
    out: dict = {}

    def call(label, fn, *args, repeat=200):
        try:
            value = fn(*args)
            res = {"value": repr(value)}
            if hasattr(value, "_fields_"):
                res["fields"] = {f[0]: repr(getattr(value, f[0])) for f in value._fields_}
            if isinstance(value, list) and value and hasattr(value[0], "_fields_"):
                res["items"] = [{f[0]: repr(getattr(v, f[0])) for f in v._fields_} for v in value]
        except Exception as exc:  # noqa: BLE001
            res = {
                "error": type(exc).__name__,
                "value": getattr(exc, "value", None),
                "message": str(exc),
            }
        c0, w0 = time.process_time(), time.perf_counter()
        for _ in range(repeat):
            with contextlib.suppress(Exception):
                fn(*args)
        res["cpu_us"] = round((time.process_time() - c0) / repeat * 1e6, 2)
        res["wall_us"] = round((time.perf_counter() - w0) / repeat * 1e6, 2)
        out[label] = res
        return res

    t0 = time.perf_counter()
    nv.nvmlInit()
    out["nvmlInit_seconds"] = round(time.perf_counter() - t0, 4)
    call("nvmlSystemGetDriverVersion", nv.nvmlSystemGetDriverVersion)
    call("nvmlSystemGetCudaDriverVersion_v2", nv.nvmlSystemGetCudaDriverVersion_v2)
    call("nvmlSystemGetCudaDriverVersion", nv.nvmlSystemGetCudaDriverVersion)
    call("nvmlSystemGetNVMLVersion", nv.nvmlSystemGetNVMLVersion)
    call("nvmlDeviceGetCount", nv.nvmlDeviceGetCount)
    for i in range(nv.nvmlDeviceGetCount()):
        h = nv.nvmlDeviceGetHandleByIndex(i)
        p = f"gpu{i}."
        call(p + "nvmlDeviceGetHandleByIndex", nv.nvmlDeviceGetHandleByIndex, i)
        call(p + "nvmlDeviceGetName", nv.nvmlDeviceGetName, h)
        call(p + "nvmlDeviceGetUUID", nv.nvmlDeviceGetUUID, h)
        call(p + "nvmlDeviceGetMemoryInfo", nv.nvmlDeviceGetMemoryInfo, h)
        call(p + "nvmlDeviceGetPciInfo", nv.nvmlDeviceGetPciInfo, h)
        call(p + "nvmlDeviceGetMigMode", nv.nvmlDeviceGetMigMode, h)
        call(p + "nvmlDeviceGetMaxMigDeviceCount", nv.nvmlDeviceGetMaxMigDeviceCount, h)
        call(
            p + "nvmlDeviceGetMigDeviceHandleByIndex",
            nv.nvmlDeviceGetMigDeviceHandleByIndex,
            h,
            0,
            repeat=5,
        )
        call(p + "nvmlDeviceGetUtilizationRates", nv.nvmlDeviceGetUtilizationRates, h)
        call(p + "nvmlDeviceGetTemperature", nv.nvmlDeviceGetTemperature, h, 0)
        call(p + "nvmlDeviceGetPowerUsage", nv.nvmlDeviceGetPowerUsage, h)
        call(p + "nvmlDeviceGetEnforcedPowerLimit", nv.nvmlDeviceGetEnforcedPowerLimit, h)
        call(p + "nvmlDeviceGetClockInfo.SM", nv.nvmlDeviceGetClockInfo, h, 1)
        call(p + "nvmlDeviceGetClockInfo.MEM", nv.nvmlDeviceGetClockInfo, h, 2)
        call(p + "nvmlDeviceGetComputeRunningProcesses", nv.nvmlDeviceGetComputeRunningProcesses, h)
        call(
            p + "nvmlDeviceGetGraphicsRunningProcesses", nv.nvmlDeviceGetGraphicsRunningProcesses, h
        )
        call(p + "nvmlDeviceGetFanSpeed", nv.nvmlDeviceGetFanSpeed, h, repeat=5)
        call(p + "nvmlDeviceGetPersistenceMode", nv.nvmlDeviceGetPersistenceMode, h, repeat=5)
    call("nvmlSystemGetProcessName(1)", nv.nvmlSystemGetProcessName, 1, repeat=5)
    nv.nvmlShutdown()
    return out


def host_files() -> dict:
    def read(p):
        try:
            return Path(p).read_text(errors="replace")
        except OSError as exc:
            return f"<{type(exc).__name__}: {exc.strerror}>"

    data = {
        p: read(p)
        for p in (
            "/proc/driver/nvidia/version",
            "/proc/version",
            "/etc/os-release",
            "/proc/1/cgroup",
            "/sys/module/nvidia/version",
        )
    }
    data["/proc/driver/nvidia/gpus/*/information"] = {
        p: read(p) for p in glob.glob("/proc/driver/nvidia/gpus/*/information")
    }
    data["/proc/modules (nvidia|nouveau)"] = "".join(
        line
        for line in read("/proc/modules").splitlines(True)
        if line.startswith(("nvidia", "nouveau"))
    )
    pci = {}
    for d in glob.glob("/sys/bus/pci/devices/*"):
        if read(f"{d}/vendor").strip() == "0x10de":
            link = f"{d}/driver"
            pci[d] = {
                "device": read(f"{d}/device").strip(),
                "class": read(f"{d}/class").strip(),
                "driver": os.readlink(link) if os.path.islink(link) else None,
            }
    data["pci_nvidia"] = pci
    data["pci_device_count"] = len(glob.glob("/sys/bus/pci/devices/*"))
    dev = {}
    for f in sorted(glob.glob("/dev/nvidia*")):
        try:
            st = os.stat(f)
            dev[f] = f"{stat.filemode(st.st_mode)} {st.st_uid}:{st.st_gid}"
        except OSError as exc:
            dev[f] = repr(exc)
    data["/dev/nvidia*"] = dev
    sb = glob.glob("/sys/firmware/efi/efivars/SecureBoot-*")
    data["secureboot_efivar"] = {p: Path(p).read_bytes().hex() for p in sb}
    data["/.dockerenv"] = os.path.exists("/.dockerenv")
    data["/run/.containerenv"] = os.path.exists("/run/.containerenv")
    data["env.container"] = os.environ.get("container")  # noqa: SIM112 - systemd's name
    data["WSLInterop"] = os.path.exists("/proc/sys/fs/binfmt_misc/WSLInterop")
    data["libnvidia-ml"] = sorted(
        glob.glob("/usr/lib/x86_64-linux-gnu/libnvidia-ml.so*")
        + glob.glob("/usr/local/nvidia/lib64/libnvidia-ml.so*")
        + glob.glob("/usr/lib64/libnvidia-ml.so*")
    )
    data["lspci -nn"] = run(["lspci", "-nn"])
    data["ldconfig -p | nvidia-ml"] = [
        line
        for line in run(["ldconfig", "-p"]).get("stdout", "").splitlines()
        if "nvidia-ml" in line
    ]
    data["PATH"] = os.environ.get("PATH")
    data["which nvidia-smi"] = shutil.which("nvidia-smi")
    data["uname -a"] = run(["uname", "-a"]).get("stdout")
    data["python"] = sys.version
    try:
        from importlib.metadata import version

        data["nvidia-ml-py"] = version("nvidia-ml-py")
    except Exception as exc:  # noqa: BLE001
        data["nvidia-ml-py"] = repr(exc)
    return data


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "h200-recording")
    out.mkdir(parents=True, exist_ok=True)
    smi = find_smi()
    (out / "host_files.json").write_text(json.dumps(host_files(), indent=1))
    try:
        import pynvml
    except ImportError:
        print("SKIP: pynvml is not importable here")
        return 0
    from gpuwizard.host.nvml import PynvmlBackend, record

    recording = record(PynvmlBackend(), note="recorded by tests/gpu/record_h200.py")
    if "error" in (recording.get("init") or {}):
        print(f"SKIP: NVML does not start here ({recording['init']['error']})")
        (out / "nvml.json").write_text(json.dumps(recording, indent=1))
        return 0
    recording["raw"] = raw_calls(pynvml)
    (out / "nvml.json").write_text(json.dumps(recording, indent=1))
    print(
        f"nvml: {recording['device_count']} GPU(s), driver {recording['driver_version']}, "
        f"CUDA {recording['cuda_driver_version']}"
    )
    if smi:
        starts = []
        for _ in range(3):
            starts.append(run([smi, "-L"])["seconds"])
        print(f"nvidia-smi -L start+run: {starts} s")
        (out / "nvidia-smi-q.xml").write_text(run([smi, "-q", "-x"])["stdout"])
        r = run([smi])
        (out / "nvidia-smi.txt").write_text(r["stdout"] + r["stderr"])
        r = run([smi, "-L"])
        (out / "nvidia-smi-L.txt").write_text(r["stdout"] + r["stderr"])
        p = subprocess.Popen(
            [smi, "-l", "1"],
            stdout=subprocess.PIPE,  # noqa: S603
            stderr=subprocess.STDOUT,
        )
        time.sleep(3.5)
        p.terminate()
        text = p.communicate(timeout=10)[0].decode("utf-8", "replace")
        (out / "nvidia-smi-loop.txt").write_text(text)
    else:
        print("nvidia-smi: not found")
    print("recorded into", out, sorted(f.name for f in out.iterdir()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
