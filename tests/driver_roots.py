"""Real files in a tmp root that look like a machine's /sys, /proc, /dev and /etc, for the
driver step's tests; and the NVML answers recorded on the project's H200."""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path
from typing import Any, Optional

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "h200"

OS_RELEASE = {
    "ubuntu": 'ID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\nVERSION_CODENAME=noble\n'
    'PRETTY_NAME="Ubuntu 24.04.3 LTS"\n',
    "debian": 'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n'
    'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n',
    "rhel": 'ID="rhel"\nID_LIKE="fedora"\nVERSION_ID="9.4"\n'
    'PRETTY_NAME="Red Hat Enterprise Linux 9.4 (Plow)"\n',
    "suse": 'ID="sles"\nID_LIKE="suse"\nVERSION_ID="15.6"\nPRETTY_NAME="SUSE Linux Enterprise '
    'Server 15 SP6"\n',
}
H200_PROC_VERSION = json.loads((FIXTURES / "host_files.json").read_text())[
    "/proc/driver/nvidia/version"
]
H200_INFORMATION = next(
    iter(
        json.loads((FIXTURES / "host_files.json").read_text())[
            "/proc/driver/nvidia/gpus/*/information"
        ].values()
    )
)
SECURE_BOOT = "sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"


def h200_nvml() -> dict[str, Any]:
    """The NVML answers recorded on the H200, as the RecordedBackend reads them."""
    data = json.loads((FIXTURES / "nvml.json").read_text())
    data.pop("raw", None)
    return copy.deepcopy(data)


def make_root(tmp: Path, distro: str = "ubuntu") -> Path:
    root = tmp / f"root-{distro}"
    for d in ("etc", "proc", "sys/bus/pci/devices", "dev", "usr/bin", "usr/lib/x86_64-linux-gnu"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "etc/os-release").write_text(OS_RELEASE[distro])
    (root / "proc/modules").write_text("")
    return root


def write(root: Path, path: str, text: str | bytes, mode: Optional[int] = None) -> Path:
    f = root / path.lstrip("/")
    f.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        f.write_bytes(text)
    else:
        f.write_text(text)
    if mode is not None:
        os.chmod(f, mode)
    return f


def add_pci_gpu(
    root: Path,
    slot: str = "0000:00:06.0",
    device: str = "0x2335",
    klass: str = "0x030200",
    driver: Optional[str] = None,
) -> None:
    base = f"sys/bus/pci/devices/{slot}"
    write(root, f"{base}/vendor", "0x10de\n")
    write(root, f"{base}/device", f"{device}\n")
    write(root, f"{base}/class", f"{klass}\n")
    if driver:
        (root / "sys/bus/pci/drivers" / driver).mkdir(parents=True, exist_ok=True)
        os.symlink(f"../../../bus/pci/drivers/{driver}", root / base / "driver")


def add_other_pci(root: Path, slot: str = "0000:00:03.0") -> None:
    base = f"sys/bus/pci/devices/{slot}"
    write(root, f"{base}/vendor", "0x1af4\n")
    write(root, f"{base}/device", "0x1041\n")
    write(root, f"{base}/class", "0x020000\n")


def add_kernel_module(root: Path, text: str = H200_PROC_VERSION) -> None:
    write(root, "/proc/driver/nvidia/version", text)
    write(root, "/proc/driver/nvidia/gpus/0000:00:06.0/information", H200_INFORMATION)
    write(
        root,
        "/proc/modules",
        "nvidia_uvm 1830912 0 - Live 0x0 (O)\nnvidia 14299136 1 nvidia_uvm, Live 0x0 (O)\n",
    )


def add_userspace(
    root: Path, version: str = "580.159.04", folder: str = "/usr/lib/x86_64-linux-gnu"
) -> None:
    write(root, f"{folder}/libnvidia-ml.so.{version}", b"\x7fELF")
    os.symlink(f"libnvidia-ml.so.{version}", root / folder.lstrip("/") / "libnvidia-ml.so.1")


def secure_boot(root: Path, on: bool) -> None:
    write(root, SECURE_BOOT, bytes([0x06, 0, 0, 0, 1 if on else 0]))


def busybox_root(root: Path) -> Path:
    """Make a root runnable with chroot: a static busybox as /bin/sh and friends."""
    (root / "bin").mkdir(exist_ok=True)
    shutil.copy("/bin/busybox", root / "bin/busybox")
    for name in ("sh", "cat", "sleep", "echo"):
        link = root / "bin" / name
        if not link.exists():
            os.symlink("busybox", link)
    return root


def fake_program(root: Path, path: str, script: str) -> Path:
    """A shell script standing in for a program inside the root (run there through chroot)."""
    return write(root, path, "#!/bin/sh\n" + script, mode=0o755)
