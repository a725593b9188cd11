"""What stops a GPU set-up, named with its cause and this distribution's remedy.

`diagnose()` turns what the driver sources saw (NVML's error, nvidia-smi's message, /proc, the
PCI bus, the files around them) into `Problem`s, most fundamental first. Installing a driver
is not gpuwizard's job: the remedies name the commands.
"""

from __future__ import annotations

import stat
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Optional

from gpuwizard.host.system import Host

if TYPE_CHECKING:
    from gpuwizard.host.gpu import GpuDevice

NOT_ASKED = "not asked: NVML reads the running machine, not a --root folder"
PYNVML_MISSING = "pynvml is not installed"


@dataclass(frozen=True)
class Problem:
    """Something that stops (blocking) or worries (not blocking) the GPU set-up."""

    code: str
    cause: str
    remedy: str
    blocking: bool = True

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def device_nodes(host: Host) -> list[tuple[str, str]]:
    """/dev/nvidia* and their modes ("crw-rw----"), to explain a permission error."""
    out = []
    dev = host.path("/dev")
    if dev.is_dir():
        for f in sorted(dev.glob("nvidia*")):
            try:
                out.append((f"/dev/{f.name}", stat.filemode(f.stat().st_mode)))
            except OSError:
                continue
    return out


# ---------------------------------------------------------------------------------------------
# Remedies by distribution


def install_driver_remedy(host: Host) -> str:
    """How to install NVIDIA's driver on this distribution (gpuwizard does not do it)."""
    facts = host.facts
    family = facts.family()
    after = " Then reboot and run gpuwizard again."
    if facts.distro_id == "ubuntu" or "ubuntu" in facts.distro_like:
        return (
            "Install the driver: `sudo ubuntu-drivers install --gpgpu` (or pick a branch: "
            "`sudo apt install nvidia-driver-580-server`)." + after
        )
    if family == "debian":
        return (
            "Enable the `contrib non-free non-free-firmware` components in "
            "/etc/apt/sources.list, then `sudo apt update && sudo apt install "
            "linux-headers-$(uname -r) nvidia-driver firmware-misc-nonfree`. For recent "
            "datacenter GPUs use NVIDIA's CUDA repository for Debian (`cuda-drivers`)." + after
        )
    if facts.distro_id == "fedora":
        return (
            "Enable RPM Fusion (nonfree), then `sudo dnf install akmod-nvidia "
            "xorg-x11-drv-nvidia-cuda`." + after
        )
    if family == "rhel":
        major = (facts.distro_version or "9").split(".")[0]
        return (
            f"Add NVIDIA's CUDA repository (`sudo dnf config-manager --add-repo "
            f"https://developer.download.nvidia.com/compute/cuda/repos/rhel{major}/"
            f"{facts.machine or 'x86_64'}/cuda-rhel{major}.repo`), then "
            "`sudo dnf module install nvidia-driver:latest-dkms` (or "
            "`nvidia-driver:open-dkms` for the open kernel modules, needed from Blackwell on)."
            + after
        )
    if family == "suse":
        return (
            "Add NVIDIA's repository (`sudo zypper addrepo --refresh "
            "https://download.nvidia.com/suse/sle15sp6/ NVIDIA`; openSUSE: "
            "https://download.nvidia.com/opensuse/tumbleweed), then `sudo zypper install "
            "nvidia-open-driver-G06-signed-kmp-default nvidia-compute-utils-G06`." + after
        )
    return (
        "Install NVIDIA's driver for your distribution (see NVIDIA's driver installation "
        "guide, docs.nvidia.com/datacenter/tesla/driver-installation-guide)." + after
    )


def _initramfs_command(host: Host) -> str:
    return "sudo update-initramfs -u" if host.facts.family() == "debian" else "sudo dracut --force"


def _module_package_hint(host: Host) -> str:
    if host.facts.family() == "debian":
        return "`dkms status` shows whether the module was built for `uname -r`"
    return "`dkms status` (or `akmods --force`) shows whether the module was built for `uname -r`"


# ---------------------------------------------------------------------------------------------
# Diagnosis


def _smi_says(error: Optional[str], *needles: str) -> bool:
    text = (error or "").lower()
    return any(n.lower() in text for n in needles)


def diagnose(
    host: Host,
    *,
    nvml_error: Optional[str],
    smi_error: Optional[str],
    smi_ran: bool,
    working: bool,
    gpus: list[GpuDevice],
    pci_gpus: list[GpuDevice],
    pci_drivers: list[str],
    kernel_version: Optional[str],
    userspace: list[str],
    wsl: bool,
    container: bool,
    nouveau: bool,
    sb: Optional[bool],
) -> list[Problem]:
    """Name what is wrong, most fundamental first, each with the next thing to do."""
    problems: list[Problem] = []

    if wsl:
        wsl_lib = host.path("/usr/lib/wsl/lib/libnvidia-ml.so.1").exists()
        if not working and not wsl_lib:
            problems.append(
                Problem(
                    "wsl_no_windows_driver",
                    "This is WSL2 and /usr/lib/wsl/lib has no NVIDIA library: the NVIDIA driver "
                    "for "
                    "Windows is missing or too old",
                    "Install the current NVIDIA driver on Windows (it brings the GPU into WSL2), "
                    "then "
                    "`wsl --shutdown` from Windows and open WSL again. Never install a Linux "
                    "NVIDIA "
                    "driver inside WSL.",
                )
            )
        linux_libs = [v for v in userspace if v]
        if linux_libs:
            problems.append(
                Problem(
                    "wsl_linux_driver",
                    f"A Linux NVIDIA driver library (libnvidia-ml.so.{linux_libs[0]}) is installed "
                    "inside WSL, where only the Windows driver's /usr/lib/wsl/lib belongs; "
                    "containers "
                    "then fail with `mount error: file creation failed: ... file exists`",
                    "Remove the Linux driver packages inside WSL (e.g. `sudo apt remove --purge "
                    "'^nvidia-.*' '^libnvidia-.*'`) and keep only the Windows driver.",
                    blocking=False,
                )
            )
        if not working and wsl_lib:
            problems.insert(
                0,
                Problem(
                    "wsl_nvml_failed",
                    "This is WSL2 and the Windows driver's library is in /usr/lib/wsl/lib, but "
                    "NVML "
                    f"failed: {nvml_error or smi_error or 'no answer'}",
                    "Update the NVIDIA driver on Windows and WSL itself (`wsl --update` from "
                    "Windows), "
                    "then `wsl --shutdown` and try `/usr/lib/wsl/lib/nvidia-smi`.",
                ),
            )
        if working:
            problems.append(
                Problem(
                    "wsl",
                    "This is WSL2: the GPU comes from the Windows driver",
                    "Use Docker Engine inside WSL with systemd enabled (or Docker Desktop's WSL "
                    "backend); never install a Linux NVIDIA driver here.",
                    blocking=False,
                )
            )
        return problems

    if container:
        if working:
            problems.append(
                Problem(
                    "in_container",
                    "gpuwizard is running inside a container: it sees and changes this container, "
                    "not the host's Docker",
                    "To set up Docker for GPUs on the machine itself, run gpuwizard on the host.",
                    blocking=False,
                )
            )
        elif not gpus and not pci_gpus:
            problems.append(
                Problem(
                    "in_container",
                    "No NVIDIA GPU was found: gpuwizard is running inside a container that was "
                    "given "
                    "none",
                    "Run gpuwizard on the host itself (the toolkit and daemon.json belong "
                    "there), or "
                    "start this container with `--gpus all` on a host that is already set up.",
                )
            )
            return problems

    mismatch_versions = (
        kernel_version is not None and bool(userspace) and kernel_version not in userspace
    )
    if (
        nvml_error == "NVMLError_LibRmVersionMismatch"
        or _smi_says(smi_error, "version mismatch")
        or mismatch_versions
    ):
        lib = f" the user-space library is {userspace[0]}" if userspace else ""
        kern = f"the loaded kernel module is {kernel_version}" if kernel_version else ""
        detail = f" ({kern},{lib})" if kern and lib else ""
        problems.append(
            Problem(
                "version_mismatch",
                "NVIDIA driver/library version mismatch: the driver was upgraded but the old "
                "kernel "
                f"module is still loaded{detail}",
                "Reboot. Without a reboot: stop everything that uses the GPU (nvidia-persistenced, "
                "DCGM, GPU containers), then `sudo rmmod nvidia_uvm nvidia_drm nvidia_modeset "
                "nvidia "
                "&& sudo modprobe nvidia`.",
            )
        )

    if working:
        if not gpus:
            problems.append(
                Problem(
                    "no_devices",
                    "The NVIDIA driver is loaded but reports no GPU",
                    "Check `nvidia-smi -L` and `sudo dmesg | grep -i nvrm`; a GPU may have fallen "
                    "off the bus (Xid 79) and need a reset or a reboot.",
                )
            )
        return problems

    if nvml_error == "NVMLError_NoPermission" or _smi_says(smi_error, "insufficient permissions"):
        nodes = device_nodes(host)
        closed = [f"{p} {m}" for p, m in nodes if m[7:9] != "rw"]
        shown = f" ({', '.join(closed)})" if closed else ""
        problems.append(
            Problem(
                "no_permission",
                f"NVML refused access: this user may not open the /dev/nvidia* devices{shown}",
                "Run gpuwizard with sudo, or add this user to the group that owns /dev/nvidia* "
                "(`sudo usermod -aG video $USER`, then log in again). On RHEL with SELinux, "
                "containers need `--security-opt=label=disable` or CDI.",
            )
        )
        return problems

    if any(p.code == "version_mismatch" for p in problems):
        return problems

    not_loaded = (
        nvml_error == "NVMLError_DriverNotLoaded"
        or _smi_says(smi_error, "couldn't communicate with the nvidia driver")
        or (kernel_version is None and bool(userspace))
    )
    has_hw = bool(pci_gpus or gpus)

    if nouveau or "nouveau" in pci_drivers:
        problems.append(
            Problem(
                "nouveau_loaded",
                "The open-source `nouveau` driver is loaded and holds the GPU, so NVIDIA's driver "
                "cannot take it",
                "Blacklist it: `printf 'blacklist nouveau\\noptions nouveau modeset=0\\n' | sudo "
                "tee "
                f"/etc/modprobe.d/blacklist-nouveau.conf && {_initramfs_command(host)}`, then "
                f"reboot "
                "(NVIDIA's driver packages usually do this for you).",
            )
        )

    if not_loaded and (has_hw or userspace):
        if sb:
            cause = (
                "The NVIDIA kernel module is not loaded, and Secure Boot is on: the kernel "
                "refuses a module that is not signed with an enrolled key"
            )
            remedy = (
                "Enroll the key the module was signed with: `sudo mokutil --import "
                "/var/lib/dkms/mok.pub` (Ubuntu: /var/lib/shim-signed/mok/MOK.der), reboot "
                "and choose 'Enroll MOK' at the blue screen. Or use your distribution's "
                "signed driver modules, or turn Secure Boot off in the firmware."
            )
        else:
            state = "off" if sb is False else "unknown (no EFI variables)"
            cause = f"The NVIDIA kernel module is not loaded (Secure Boot: {state})"
            remedy = (
                f"Run `sudo modprobe nvidia` and read `sudo dmesg | grep -i -e nvidia -e "
                f"nvrm`; {_module_package_hint(host)}. Reinstall the driver if the module "
                "is missing."
            )
        problems.append(Problem("driver_not_loaded", cause, remedy))
        return problems

    no_library = nvml_error in ("NVMLError_LibraryNotFound", NOT_ASKED, PYNVML_MISSING)
    if no_library and kernel_version and not userspace:
        problems.append(
            Problem(
                "driver_userspace_missing",
                f"The NVIDIA kernel module {kernel_version} is loaded but its user-space libraries "
                "(libnvidia-ml.so.1) are missing; containers fail with `load library failed: "
                "libnvidia-ml.so.1`",
                f"Install the user-space part of the same driver version {kernel_version} (Ubuntu: "
                "`nvidia-utils-<branch>-server` and `libnvidia-compute-<branch>-server`), or "
                "reinstall the driver.",
            )
        )
        return problems

    if has_hw and kernel_version is None and not userspace:
        hw = pci_gpus or gpus
        names = ", ".join(f"{g.name} ({g.pci_id})" if g.pci_id else g.name for g in hw)
        problems.insert(
            0,
            Problem(
                "no_driver",
                f"You have an {names} but no NVIDIA driver is installed",
                install_driver_remedy(host),
            ),
        )
        return problems

    if has_hw and nvml_error == NOT_ASKED and not smi_ran:
        problems.append(
            Problem(
                "driver_unverified",
                f"An NVIDIA driver ({kernel_version or ', '.join(userspace)}) is installed under "
                f"{host.root}, but without nvidia-smi there gpuwizard cannot ask it anything",
                "Run gpuwizard on the machine itself to check the driver.",
            )
        )
        return problems

    if has_hw:
        reason = smi_error or nvml_error or "no source could read it"
        problems.append(
            Problem(
                "nvml_error",
                f"The NVIDIA driver is present but NVML failed: {reason}",
                "Run `nvidia-smi` to see the driver's own error and `sudo dmesg | grep -i nvrm`; "
                "a reboot often clears `Unknown Error`.",
            )
        )
        return problems

    vm = (
        " If this is a virtual machine, the GPU must be passed through to it."
        if host.is_live
        else ""
    )
    problems.append(
        Problem(
            "no_nvidia_hardware",
            "No NVIDIA GPU was found on this machine (none on the PCI bus, no NVIDIA driver)",
            "Run gpuwizard on the machine that has the GPU; `lspci -nn | grep -i nvidia` lists "
            "NVIDIA devices." + vm,
        )
    )
    return problems
