"""Does CUDA initialise on the host? `nvidia-smi` passes on hosts where CUDA does not (802
without a matching Fabric Manager on HGX systems, 999 with missing uvm nodes), so the driver's
own libcuda is asked: `cuInit(0)` through ctypes, in a child process (a failed or hanging
initialisation must not take gpuwizard with it), plus the GPUs' persistence mode.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from gpuwizard.host.system import Host

# CUresult names and what to do, for the codes met in the field
CUDA_ERRORS: dict[int, tuple[str, str]] = {
    3: ("CUDA_ERROR_NOT_INITIALIZED", "Check the driver: nvidia-smi, dmesg | grep -i nvrm."),
    100: (
        "CUDA_ERROR_NO_DEVICE",
        "No GPU is visible to CUDA: check CUDA_VISIBLE_DEVICES and /dev/nvidia*.",
    ),
    101: ("CUDA_ERROR_INVALID_DEVICE", "Check CUDA_VISIBLE_DEVICES."),
    304: (
        "CUDA_ERROR_OPERATING_SYSTEM",
        "An OS call failed: check /dev/nvidia* permissions and dmesg.",
    ),
    802: (
        "CUDA_ERROR_SYSTEM_NOT_READY",
        "Start NVIDIA Fabric Manager at the driver's exact version (systemctl enable --now "
        "nvidia-fabricmanager) and wait for the fabric state Completed (nvidia-smi -q).",
    ),
    803: (
        "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH",
        "The user-space driver and the kernel module differ: reboot, or reinstall one driver.",
    ),
    999: (
        "CUDA_ERROR_UNKNOWN",
        "Create the missing device nodes (sudo nvidia-ctk system create-device-nodes "
        "--control-devices --load-kernel-modules) and regenerate the CDI spec.",
    ),
}

_CHILD = r"""
import ctypes, json, sys
out = {}
for name in ("libcuda.so.1", "libcuda.so"):
    try:
        lib = ctypes.CDLL(name)
        out["library"] = name
        break
    except OSError as exc:
        out["load_error"] = str(exc)
else:
    print(json.dumps(out)); sys.exit(0)
rc = lib.cuInit(0)
out["code"] = int(rc)
if rc == 0:
    n = ctypes.c_int(0)
    lib.cuDeviceGetCount(ctypes.byref(n))
    out["devices"] = n.value
    v = ctypes.c_int(0)
    lib.cuDriverGetVersion(ctypes.byref(v))
    out["driver_api"] = v.value
print(json.dumps(out))
"""


@dataclass(frozen=True)
class CudaInit:
    ok: bool
    code: Optional[int] = None
    name: str = ""
    fix: str = ""
    devices: int = 0
    driver_api: Optional[int] = None  # 13000 for CUDA 13.0
    error: str = ""  # libcuda not loadable, or the child failed
    persistence: dict[str, str] = field(default_factory=dict)  # GPU index -> Enabled/Disabled

    def summary(self) -> str:
        if self.ok:
            return f"cuInit: CUDA_SUCCESS ({self.devices} device(s))"
        if self.code is not None:
            return f"cuInit failed: {self.code} {self.name}"
        return f"cuInit not checked: {self.error}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def check(host: Host, nvidia_smi: Optional[str] = None, env: Any = None) -> CudaInit:
    """cuInit(0) in a child, then persistence mode from nvidia-smi (read-only)."""
    persistence: dict[str, str] = {}
    if nvidia_smi and host.is_live:
        res = host.run(
            [nvidia_smi, "--query-gpu=index,persistence_mode", "--format=csv,noheader"],
            check=False,
            timeout=30,
        )
        for line in res.stdout.splitlines():
            idx, _, mode = line.partition(",")
            if mode.strip():
                persistence[idx.strip()] = mode.strip()
    if not host.is_live:
        return CudaInit(False, error="a --root image has no running driver")
    res = host.run([sys.executable, "-I", "-c", _CHILD], check=False, timeout=60, env=env)
    try:
        data = json.loads(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return CudaInit(
            False,
            error=f"the cuInit check did not finish: {res.tail[-200:]}",
            persistence=persistence,
        )
    if "code" not in data:
        return CudaInit(False, error=data.get("load_error", "no libcuda"), persistence=persistence)
    code = int(data["code"])
    if code == 0:
        return CudaInit(
            True,
            0,
            "CUDA_SUCCESS",
            devices=int(data.get("devices", 0)),
            driver_api=data.get("driver_api"),
            persistence=persistence,
        )
    name, fix = CUDA_ERRORS.get(code, (f"CUresult {code}", "See the CUDA driver API's CUresult."))
    return CudaInit(False, code, name, fix, persistence=persistence)
