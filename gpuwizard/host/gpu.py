"""The GPUs of a host and the state of their driver, as one `GpuReport`.

Sources, best first: NVML (through the backend at `host.nvml_backend`), `nvidia-smi -q -x`,
`/proc/driver/nvidia`, and with no driver at all the PCI bus (sysfs, then `lspci -nn`), so a
user still learns which GPU they have. Every file is read through `host.path()`, so a `--root`
folder holding a fake /sys and /proc is probed exactly like a machine.

The report also says what is wrong, as `Problem`s that carry a cause and a remedy for this
distribution. Installing a driver is not gpuwizard's job: it names the commands.
"""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

from gpuwizard.cuda_images import cuda_version_for_driver, parse_cuda_version
from gpuwizard.errors import WizardError
from gpuwizard.host.gpu_problems import NOT_ASKED, PYNVML_MISSING, Problem, diagnose
from gpuwizard.host.nvml import NvmlBackend, PynvmlBackend, error_name, is_nvml_error
from gpuwizard.host.system import Host

NVIDIA_VENDOR = "0x10de"
SMI_DIRS = ("/usr/local/nvidia/bin", "/usr/lib/wsl/lib", "/opt/nvidia/bin")
SECURE_BOOT_VAR = "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
LIB_DIRS = (
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/nvidia/lib64",
    "/usr/local/nvidia/lib",
)
_PROC_VERSION = re.compile(r"Kernel Module(?:\s+for\s+\S+)?\s+(\d+(?:\.\d+)+)")


@dataclass(frozen=True)
class MigDevice:
    index: int
    name: Optional[str]
    uuid: Optional[str]
    memory_total_mib: Optional[int]


@dataclass(frozen=True)
class GpuDevice:
    """One physical GPU."""

    index: int
    name: str
    uuid: Optional[str] = None
    memory_total_mib: Optional[int] = None
    pci_bus_id: Optional[str] = None
    pci_id: Optional[str] = None  # "10de:2335"
    mig_mode: Optional[str] = None  # "enabled" | "disabled" | None: not supported
    mig_devices: tuple[MigDevice, ...] = ()


@dataclass(frozen=True)
class GpuReport:
    """What the host has: GPUs, driver, CUDA version, where we learnt it, and what is wrong."""

    source: str  # nvml | nvidia-smi | proc | pci | none
    gpus: tuple[GpuDevice, ...] = ()
    driver_version: Optional[str] = None
    cuda_version: Optional[str] = None  # "13.0"
    cuda_driver_version: Optional[int] = None  # NVML's 13000
    cuda_version_from: Optional[str] = None  # nvml | nvidia-smi | driver-table
    kernel_module_version: Optional[str] = None
    nvml_error: Optional[str] = None
    nvidia_smi: Optional[str] = None  # where nvidia-smi is, if anywhere
    secure_boot: Optional[bool] = None
    nouveau_loaded: bool = False
    wsl: bool = False
    in_container: bool = False
    problems: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        """A working driver with at least one GPU and nothing blocking."""
        return (
            self.source in ("nvml", "nvidia-smi")
            and bool(self.gpus)
            and not self.blocking_problems()
        )

    def blocking_problems(self) -> list[Problem]:
        return [p for p in self.problems if p.blocking]

    def summary(self) -> str:
        """One line for a person: what was found."""
        if not self.gpus:
            return "No NVIDIA GPU was found"
        names: dict[str, int] = {}
        for g in self.gpus:
            names[g.name] = names.get(g.name, 0) + 1
        what = ", ".join(f"{n} x{c}" if c > 1 else n for n, c in names.items())
        if self.driver_version and self.source in ("nvml", "nvidia-smi"):
            cuda = f", CUDA {self.cuda_version}" if self.cuda_version else ""
            return f"{what}; driver {self.driver_version}{cuda} (read through {self.source})"
        return f"{what}; no working NVIDIA driver (found through {self.source})"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        data["summary"] = self.summary()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GpuReport:
        gpus = tuple(
            GpuDevice(**{**g, "mig_devices": tuple(MigDevice(**m) for m in g["mig_devices"])})
            for g in data.get("gpus", [])
        )
        problems = tuple(Problem(**p) for p in data.get("problems", []))
        names = {f for f in cls.__dataclass_fields__} - {"gpus", "problems"}
        rest = {k: v for k, v in data.items() if k in names}
        return cls(gpus=gpus, problems=problems, **rest)


# ---------------------------------------------------------------------------------------------
# What the driver sources say


@dataclass
class _Reading:
    """What one source saw (mutable while probing; the report is frozen)."""

    gpus: list[GpuDevice] = field(default_factory=list)
    driver_version: Optional[str] = None
    cuda_version: Optional[str] = None
    cuda_driver_version: Optional[int] = None
    userspace_version: Optional[str] = None
    error: Optional[str] = None  # NVML error class name, or nvidia-smi's message


def _mib(value: Optional[int]) -> Optional[int]:
    return None if value is None else int(value) // (1024 * 1024)


def _pci_id(device_id: int) -> str:
    """NVML's pciDeviceId (0x233510DE: device in the high half) to "10de:2335"."""
    return f"{device_id & 0xFFFF:04x}:{(device_id >> 16) & 0xFFFF:04x}"


def read_nvml(backend: NvmlBackend) -> _Reading:
    """Ask NVML. Fields a GPU refuses (MIG mode on an H200: InvalidArgument) become None."""
    out = _Reading()
    try:
        backend.init()
    except ImportError:
        out.error = PYNVML_MISSING
        return out
    except Exception as exc:  # only NVML errors are expected; others re-raised
        if not is_nvml_error(exc):
            raise
        out.error = error_name(exc)
        return out
    try:
        out.driver_version = backend.driver_version()
        out.cuda_driver_version = _optional(lambda: backend.cuda_driver_version())
        if out.cuda_driver_version:
            out.cuda_version = parse_cuda_version(out.cuda_driver_version)
        nvml_version = _optional(lambda: backend.nvml_version())
        if nvml_version and nvml_version.count(".") >= 2:
            out.userspace_version = nvml_version.split(".", 1)[1]  # "13.580.159.04"
        for i in range(backend.device_count()):
            out.gpus.append(_nvml_device(backend, i))
    except Exception as exc:
        if not is_nvml_error(exc):
            raise
        out.error = error_name(exc)
    finally:
        _optional(backend.shutdown)
    return out


def _optional(fn: Any) -> Any:
    """Call an NVML getter; None when NVML refuses it (unsupported, not permitted...)."""
    try:
        return fn()
    except Exception as exc:
        if is_nvml_error(exc):
            return None
        raise


def _nvml_device(backend: NvmlBackend, index: int) -> GpuDevice:
    h = backend.handle(index)
    memory = _optional(lambda: backend.memory(h))
    pci = _optional(lambda: backend.pci(h))
    mode = _optional(lambda: backend.mig_mode(h))
    migs: list[MigDevice] = []
    if mode and mode[0] == 1:
        for j in range(_optional(lambda: backend.mig_count(h)) or 0):
            mh = _optional(lambda j=j: backend.mig_handle(h, j))
            if mh is None:
                continue
            mem = _optional(lambda mh=mh: backend.memory(mh))
            migs.append(
                MigDevice(
                    j,
                    _optional(lambda mh=mh: backend.name(mh)),
                    _optional(lambda mh=mh: backend.uuid(mh)),
                    _mib(mem[0]) if mem else None,
                )
            )
    return GpuDevice(
        index=index,
        name=_optional(lambda: backend.name(h)) or "NVIDIA GPU",
        uuid=_optional(lambda: backend.uuid(h)),
        memory_total_mib=_mib(memory[0]) if memory else None,
        pci_bus_id=pci[0] if pci else None,
        pci_id=_pci_id(pci[1]) if pci else None,
        mig_mode=None if mode is None else ("enabled" if mode[0] == 1 else "disabled"),
        mig_devices=tuple(migs),
    )


def _xml_text(node: Optional[ET.Element], path: str) -> Optional[str]:
    if node is None:
        return None
    found = node.find(path)
    if found is None or found.text is None:
        return None
    text = found.text.strip()
    return None if text in ("", "N/A", "[N/A]", "Not Supported", "[Not Supported]") else text


def _mib_text(text: Optional[str]) -> Optional[int]:
    m = re.match(r"(\d+)\s*MiB", text or "")
    return int(m.group(1)) if m else None


def parse_smi_xml(text: str) -> _Reading:
    """Parse `nvidia-smi -q -x`."""
    out = _Reading()
    root = ET.fromstring(text)  # output of a local program, no entities expanded
    out.driver_version = _xml_text(root, "driver_version")
    out.cuda_version = _xml_text(root, "cuda_version")
    for i, gpu in enumerate(root.findall("gpu")):
        device_id = _xml_text(gpu, "pci/pci_device_id")
        current = _xml_text(gpu, "mig_mode/current_mig")
        migs = tuple(
            MigDevice(
                int(_xml_text(m, "index") or j),
                None,
                None,
                _mib_text(_xml_text(m, "fb_memory_usage/total")),
            )
            for j, m in enumerate(gpu.findall("mig_devices/mig_device"))
        )
        out.gpus.append(
            GpuDevice(
                index=i,
                name=_xml_text(gpu, "product_name") or "NVIDIA GPU",
                uuid=_xml_text(gpu, "uuid"),
                memory_total_mib=_mib_text(_xml_text(gpu, "fb_memory_usage/total")),
                pci_bus_id=_xml_text(gpu, "pci/pci_bus_id") or gpu.get("id"),
                pci_id=_pci_id(int(device_id, 16)) if device_id else None,
                mig_mode=None if current is None else current.lower(),
                mig_devices=migs,
            )
        )
    return out


def find_nvidia_smi(host: Host) -> Optional[str]:
    """nvidia-smi on PATH, or in the driver roots that are on no PATH (containers, WSL)."""
    return host.which("nvidia-smi") or host.which("nvidia-smi", extra_dirs=SMI_DIRS)


def read_nvidia_smi(host: Host, smi: str) -> _Reading:
    result = host.run([smi, "-q", "-x"], check=False, timeout=60)
    if result.returncode != 0 or "<nvidia_smi_log" not in result.stdout:
        out = _Reading()
        out.error = (result.stdout + result.stderr).strip() or f"exit status {result.returncode}"
        return out
    try:
        return parse_smi_xml(result.stdout)
    except ET.ParseError as exc:
        out = _Reading()
        out.error = f"unreadable nvidia-smi XML: {exc}"
        return out


def read_proc(host: Host) -> _Reading:
    """The kernel module's own view: /proc/driver/nvidia/version and gpus/*/information."""
    out = _Reading()
    text = host.read_text("/proc/driver/nvidia/version")
    if text:
        m = _PROC_VERSION.search(text)
        out.driver_version = m.group(1) if m else None
    gpus_dir = host.path("/proc/driver/nvidia/gpus")
    if gpus_dir.is_dir():
        for i, d in enumerate(sorted(gpus_dir.iterdir())):
            info = {}
            for line in (
                host.read_text(f"/proc/driver/nvidia/gpus/{d.name}/information") or ""
            ).splitlines():
                key, _, value = line.partition(":")
                info[key.strip()] = value.strip()
            out.gpus.append(
                GpuDevice(
                    index=i,
                    name=info.get("Model") or "NVIDIA GPU",
                    uuid=info.get("GPU UUID") or None,
                    pci_bus_id=info.get("Bus Location") or d.name,
                )
            )
    return out


@lru_cache(maxsize=1)
def pci_names() -> dict[str, str]:
    data = json.loads(
        (Path(__file__).resolve().parent.parent / "data" / "pci_ids.json").read_text(
            encoding="utf-8"
        )
    )
    return dict(data["devices"])


def gpu_name_for(pci_id: str, fallback: str = "") -> str:
    device = pci_id.split(":")[-1].lower()
    return pci_names().get(device) or fallback or f"NVIDIA GPU ({pci_id})"


def read_pci(host: Host) -> tuple[list[GpuDevice], list[str]]:
    """NVIDIA display/3D controllers on the PCI bus, and the kernel drivers bound to them."""
    gpus: list[GpuDevice] = []
    drivers: list[str] = []
    root = host.path("/sys/bus/pci/devices")
    if not root.is_dir():
        return read_lspci(host), drivers
    for dev in sorted(root.iterdir()):
        base = f"/sys/bus/pci/devices/{dev.name}"
        vendor = (host.read_text(f"{base}/vendor") or "").strip().lower()
        klass = (host.read_text(f"{base}/class") or "").strip().lower()
        if vendor != NVIDIA_VENDOR or not klass.startswith("0x03"):
            continue
        device = (host.read_text(f"{base}/device") or "").strip().lower().replace("0x", "")
        pci_id = f"10de:{device}"
        gpus.append(
            GpuDevice(
                index=len(gpus), name=gpu_name_for(pci_id), pci_bus_id=dev.name, pci_id=pci_id
            )
        )
        link = host.lpath(f"{base}/driver")
        if link.is_symlink():
            drivers.append(os.path.basename(os.readlink(link)))
    if any(g.pci_id and device_unknown(g.pci_id) for g in gpus):
        # an id our table lacks: lspci's pci.ids knows the marketing name
        names = {g.pci_bus_id: g.name for g in read_lspci(host)}
        gpus = [replace(g, name=names.get(g.pci_bus_id) or g.name) for g in gpus]
    return gpus, drivers


def device_unknown(pci_id: str) -> bool:
    return pci_id.split(":")[-1].lower() not in pci_names()


def read_lspci(host: Host) -> list[GpuDevice]:
    """NVIDIA display/3D controllers as `lspci -D -nn` lists them (no sysfs: old containers)."""
    lspci = host.which("lspci")
    if not lspci:
        return []
    try:
        result = host.run([lspci, "-D", "-nn"], check=False, timeout=30)
    except WizardError:
        return []
    gpus: list[GpuDevice] = []
    for line in result.stdout.splitlines():
        m = re.match(r"^(\S+)\s.*\[03[0-9a-f]{2}\]:\s*(.*?)\s*\[10de:([0-9a-f]{4})\]", line)
        if m:
            pci_id = f"10de:{m.group(3)}"
            described = m.group(2).replace("NVIDIA Corporation", "NVIDIA").strip()
            name = described if device_unknown(pci_id) and described else gpu_name_for(pci_id)
            gpus.append(GpuDevice(index=len(gpus), name=name, pci_bus_id=m.group(1), pci_id=pci_id))
    return gpus


# ---------------------------------------------------------------------------------------------
# The machine around the driver


def secure_boot(host: Host) -> Optional[bool]:
    """Secure Boot from efivars (5th byte: 1 = on); None on a machine without EFI variables."""
    try:
        data = host.path(SECURE_BOOT_VAR).read_bytes()
    except OSError:
        return None
    return len(data) >= 5 and data[4] == 1


def nouveau_loaded(host: Host) -> bool:
    modules = host.read_text("/proc/modules") or ""
    return any(line.split(" ", 1)[0] == "nouveau" for line in modules.splitlines())


def is_wsl(host: Host) -> bool:
    if host.is_live and host.facts.wsl:
        return True
    return (
        host.path("/proc/sys/fs/binfmt_misc/WSLInterop").exists()
        or "microsoft" in (host.read_text("/proc/version") or "").lower()
    )


def in_container(host: Host) -> bool:
    if host.is_live and host.facts.in_container:
        return True
    if host.path("/.dockerenv").exists() or host.path("/run/.containerenv").exists():
        return True
    cgroup = host.read_text("/proc/1/cgroup") or ""
    return any(w in cgroup for w in ("/docker/", "/kubepods", "/containerd/", "/lxc/"))


def userspace_versions(host: Host) -> list[str]:
    """Versions of libnvidia-ml.so.X.Y.Z installed (the user-space half of the driver)."""
    found = []
    for d in LIB_DIRS:
        folder = host.path(d)
        if not folder.is_dir():
            continue
        for f in folder.glob("libnvidia-ml.so.*.*"):
            version = f.name[len("libnvidia-ml.so.") :]
            if re.match(r"^\d+\.\d+(\.\d+)?$", version) and version not in found:
                found.append(version)
    return found


# ---------------------------------------------------------------------------------------------
# The probe


def probe_gpus(host: Host, backend: Optional[NvmlBackend] = None) -> GpuReport:
    """Find the GPUs and the driver's state, from the best source that answers."""
    wsl = is_wsl(host)
    container = in_container(host)
    nouveau = nouveau_loaded(host)
    sb = secure_boot(host)
    proc = read_proc(host)
    userspace = userspace_versions(host)
    smi_path = find_nvidia_smi(host)

    backend = backend or host.nvml_backend
    if backend is None and host.is_live:
        backend = PynvmlBackend()
    nvml = read_nvml(backend) if backend is not None else _Reading(error=NOT_ASKED)
    if nvml.userspace_version and nvml.userspace_version not in userspace:
        userspace.insert(0, nvml.userspace_version)

    smi: Optional[_Reading] = None
    source, reading = "none", _Reading()
    if nvml.error is None and nvml.driver_version:
        source, reading = "nvml", nvml
    else:
        if smi_path:
            try:
                smi = read_nvidia_smi(host, smi_path)
            except WizardError as exc:
                smi = _Reading(error=exc.cause)
            if smi.error is None:
                source, reading = "nvidia-smi", smi
        if source == "none" and (proc.driver_version or proc.gpus):
            source, reading = "proc", proc

    pci_gpus: list[GpuDevice] = []
    pci_drivers: list[str] = []
    if source in ("none", "proc") or not reading.gpus:
        pci_gpus, pci_drivers = read_pci(host)
        if source == "none" and pci_gpus:
            source = "pci"
    gpus = reading.gpus or (pci_gpus if source in ("pci", "proc") else [])
    working = source in ("nvml", "nvidia-smi")

    cuda_version, cuda_from = reading.cuda_version, source if reading.cuda_version else None
    driver_version = reading.driver_version or proc.driver_version
    if not cuda_version and driver_version:
        cuda_version, cuda_from = cuda_version_for_driver(driver_version), "driver-table"

    problems = diagnose(
        host,
        nvml_error=nvml.error,
        smi_error=smi.error if smi else None,
        smi_ran=smi is not None,
        working=working,
        gpus=gpus,
        pci_gpus=pci_gpus,
        pci_drivers=pci_drivers,
        kernel_version=proc.driver_version,
        userspace=userspace,
        wsl=wsl,
        container=container,
        nouveau=nouveau,
        sb=sb,
    )
    return GpuReport(
        source=source,
        gpus=tuple(gpus),
        driver_version=driver_version,
        cuda_version=cuda_version,
        cuda_driver_version=reading.cuda_driver_version,
        cuda_version_from=cuda_from if cuda_version else None,
        kernel_module_version=proc.driver_version,
        nvml_error=nvml.error,
        nvidia_smi=smi_path,
        secure_boot=sb,
        nouveau_loaded=nouveau,
        wsl=wsl,
        in_container=container,
        problems=tuple(problems),
    )


@dataclass(frozen=True)
class PciDevice:
    """One device in sysfs, as its attribute files say (lower-case hex)."""

    address: str
    vendor: str
    device: str
    klass: str

    @property
    def nvidia_gpu(self) -> bool:
        return self.vendor == NVIDIA_VENDOR and self.klass.startswith("0x03")


def pci_devices(host: Host) -> list[PciDevice]:
    """Every PCI device in sysfs (empty where sysfs shows none: old containers, a bare root)."""
    base = host.path("/sys/bus/pci/devices")
    try:
        entries = sorted(base.iterdir())
    except OSError:
        return []

    def attr(dev: Path, name: str) -> str:
        try:
            return (dev / name).read_text().strip().lower()
        except OSError:
            return ""

    return [
        PciDevice(dev.name, attr(dev, "vendor"), attr(dev, "device"), attr(dev, "class"))
        for dev in entries
    ]


def loaded_modules(host: Host) -> Optional[set[str]]:
    """The kernel modules loaded (/proc/modules, else /sys/module); None: cannot tell."""
    text = host.read_text("/proc/modules")
    if text is not None:
        return {line.split()[0] for line in text.splitlines() if line.strip()}
    sysmod = host.path("/sys/module")
    if sysmod.is_dir():
        return {p.name for p in sysmod.iterdir() if (p / "initstate").exists()}
    return None


def kernel_module_version(host: Host) -> tuple[bool, Optional[str]]:
    """Whether /proc/driver/nvidia/version exists (the module is loaded), and its version."""
    text = host.read_text("/proc/driver/nvidia/version")
    if text is None:
        return False, None
    m = _PROC_VERSION.search(text)
    return True, m.group(1) if m else None


def wsl_gpu(host: Host) -> bool:
    """WSL serves the GPU from the Windows driver: /dev/dxg and the libraries it maps in."""
    return (
        host.path("/usr/lib/wsl/lib/libnvidia-ml.so.1").exists() or host.path("/dev/dxg").exists()
    )


def container_marker(host: Host) -> Optional[str]:
    """The file that says this may be a container (/.dockerenv, /run/.containerenv)."""
    return next((m for m in ("/.dockerenv", "/run/.containerenv") if host.path(m).exists()), None)
