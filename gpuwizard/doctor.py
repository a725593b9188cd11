"""`gpuwizard doctor`: walk the chain from the GPU to a container, read-only, link by link.

hardware -> kernel module -> driver -> repository and key -> packages -> the toolkit's
config.toml -> daemon.json -> the engine running with that file -> GPU support registered in
it -> a smoke container (only when asked: it starts a container).
Each link gets a verdict (ok | warn | broken | skipped) and, where broken, the cause and the
next command to run. Probes are cheap and independent: one that fails (or crashes) never
stops the walk. Every file is read through `host.path()`, so a `--root` sandbox holding a
broken state is diagnosed exactly like a machine.
"""

from __future__ import annotations

import configparser
import dataclasses
import json
import os
import re
import shlex
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional

from gpuwizard import failures
from gpuwizard.errors import WizardError
from gpuwizard.events import EventSink, StepState
from gpuwizard.host.system import Host
from gpuwizard.options import Options

OK, WARN, BROKEN, SKIPPED = "ok", "warn", "broken", "skipped"
VERDICTS = (OK, WARN, BROKEN, SKIPPED)

NVIDIA_VENDOR = "0x10de"
TOOLKIT_PACKAGES = (
    "nvidia-container-toolkit",
    "nvidia-container-toolkit-base",
    "libnvidia-container-tools",
    "libnvidia-container1",
)
LEGACY_PACKAGES = ("nvidia-docker2", "nvidia-container-runtime")
CVE_FLOOR = (1, 17, 8)  # below: known CVEs (CVE-2025-23266/23267 and older)
EXACT_MATCH_SINCE = (1, 18, 0)  # the four packages must be at one version since 1.18
HOOK = "nvidia-container-runtime-hook"
DEFAULT_DAEMON_JSON = "/etc/docker/daemon.json"
DOCKER_UNITS = (
    "/etc/systemd/system/docker.service",
    "/lib/systemd/system/docker.service",
    "/usr/lib/systemd/system/docker.service",
)
BUILTIN_RUNTIMES = ("runc", "io.containerd.runc.v2", "io.containerd.runtime.v1.linux")


@dataclass(frozen=True)
class Link:
    """One link of the chain and what doctor found there."""

    name: str
    verdict: str  # ok | warn | broken | skipped
    summary: str
    cause: str = ""
    next_command: str = ""
    fix: str = ""  # what to do, in words, when one command is not the whole answer
    title: str = ""
    code: Optional[str] = None  # the failures table's code, when this is a known failure
    facts: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "verdict": self.verdict,
            "summary": self.summary,
            "cause": self.cause,
            "fix": self.fix,
            "next_command": self.next_command,
            "code": self.code,
            "facts": dict(self.facts),
        }


@dataclass(frozen=True)
class DoctorReport:
    """Every link's verdict, in chain order."""

    links: tuple[Link, ...]
    host: str
    system: str
    family: str
    seconds: float
    unknown: tuple[str, ...] = ()  # facts unreadable without root (permission denied)

    @property
    def ok(self) -> bool:
        """True unless a link is broken (warnings do not fail the check)."""
        return not any(link.verdict == BROKEN for link in self.links)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    @property
    def first_broken(self) -> Optional[Link]:
        return next((link for link in self.links if link.verdict == BROKEN), None)

    def link(self, name: str) -> Link:
        for link in self.links:
            if link.name == name:
                return link
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        broken = self.first_broken
        return {
            "ok": self.ok,
            "exit_code": self.exit_code,
            "host": self.host,
            "system": self.system,
            "family": self.family,
            "seconds": round(self.seconds, 3),
            "first_broken": broken.name if broken else None,
            "links": [link.to_json() for link in self.links],
            "unknown_without_permission": list(self.unknown),
        }


# ---------------------------------------------------------------------------------------------
# The walk


@dataclass
class _Walk:
    """What the probes share: the host, the options, and what earlier links learnt."""

    host: Host
    options: Options
    family: str
    init_system: str
    package_manager: Optional[str]
    gpu: Optional[bool] = None  # None: could not tell
    hook: Optional[str] = None  # where nvidia-container-runtime-hook is
    daemon_config: Optional[dict[str, Any]] = None
    daemon_json: str = DEFAULT_DAEMON_JSON
    engine: Optional[dict[str, Any]] = None  # the engine's info, when reachable
    client: Any = None

    def absent(self, name: str, title: str, summary: str, **kw: Any) -> Link:
        """Something is not set up: broken where a GPU needs it, skipped where there is none."""
        facts = {**kw.pop("facts", {}), "absent": True}
        if self.gpu is False:
            return Link(
                name,
                SKIPPED,
                f"{summary} (not needed without an NVIDIA GPU)",
                title=title,
                facts=facts,
            )
        return Link(name, BROKEN, summary, title=title, facts=facts, **kw)

    def restart_command(self, reload: bool = False) -> str:
        if self.options.restart_command:
            return shlex.join(self.options.restart_command)
        verb = "reload" if reload else "restart"
        if (
            self.host.path("/snap/bin/docker").exists()
            and not self.host.path("/usr/bin/dockerd").exists()
        ):
            return "sudo snap restart docker"
        if self.init_system == "systemd":
            return f"sudo systemctl {verb} docker"
        return f"sudo service docker {verb}"


Probe = Callable[[_Walk], Link]


def run_doctor(
    host: Host, options: Options, run_test: bool = False, emit: Optional[EventSink] = None
) -> DoctorReport:
    """Check every link of the chain on `host`; never changes anything."""
    started = time.monotonic()
    try:
        facts = host.facts
        family, init, pm = facts.family(), facts.init_system, facts.package_manager
        system = facts.pretty_name
    except (OSError, ImportError, WizardError) as exc:  # no os-release, no `distro`: walk on
        family, init, pm, system = "other", "none", None, f"unknown ({exc})"
    walk = _Walk(host=host, options=options, family=family, init_system=init, package_manager=pm)
    probes: list[tuple[str, str, Probe]] = [
        ("hardware", "NVIDIA GPU on the PCI bus", probe_hardware),
        ("kernel-module", "NVIDIA kernel module", probe_kernel_module),
        ("driver", "Driver userspace (NVML, nvidia-smi)", probe_driver),
        ("repository", "Toolkit repository and signing key", probe_repository),
        ("packages", "Toolkit packages", probe_packages),
        ("toolkit-config", "The toolkit's config.toml", probe_toolkit_config),
        ("daemon-config", "Docker's daemon.json", probe_daemon_config),
        ("engine", "Docker engine running with that file", probe_engine),
        ("gpu-runtime", "GPU support registered in the engine", probe_gpu_runtime),
        ("smoke-test", "A GPU container", probe_smoke_test if run_test else _no_smoke_test),
    ]
    links = []
    for name, title, probe in probes:
        if emit:
            emit(StepState(step=f"doctor:{name}", state="running"))
        try:
            link = probe(walk)
        except PermissionError as exc:
            what = f"{name}: cannot read {exc.filename or 'a file'} (permission denied)"
            host.note_unknown(what)
            link = Link(
                name,
                WARN,
                f"unknown without root: {exc.filename or 'a file'} is not readable",
                cause="a normal user cannot read it; the other links are still checked.",
                fix="Run `sudo gpuwizard doctor` to check this link.",
            )
        except Exception as exc:  # noqa: BLE001 - a probe's bug must not hide the other links
            link = Link(
                name,
                WARN,
                f"could not be checked: {type(exc).__name__}: {exc}",
                cause="doctor's own probe failed; the other links are still checked.",
            )
        if not link.title:
            link = _retitle(link, title)
        links.append(link)
        if emit:
            emit(StepState(step=f"doctor:{name}", state=link.verdict, reason=link.summary))
    if walk.client is not None:
        _close(walk.client)
    links = _settle(links)
    return DoctorReport(
        links=tuple(links),
        host=host.label or str(host.root),
        system=system,
        family=family,
        seconds=time.monotonic() - started,
        unknown=tuple(getattr(host, "unknown", ())),
    )


def _settle(links: list[Link]) -> list[Link]:
    """Verdicts one link can only give knowing another's: a toolkit installed from a vendor's
    repository (Lambda Stack, a cloud image) needs no NVIDIA repository to work."""
    by_name = {link.name: link for link in links}
    repo, packages = by_name.get("repository"), by_name.get("packages")
    if (
        repo
        and packages
        and repo.verdict == BROKEN
        and repo.facts.get("absent")
        and packages.verdict in (OK, WARN)
    ):
        settled = Link(
            "repository",
            WARN,
            f"{repo.summary}: the toolkit came from elsewhere",
            fix="Upgrades will come from wherever it came from; add NVIDIA's "
            "repository to get 1.20.x.",
            next_command="apt-cache policy nvidia-container-toolkit",
            title=repo.title,
            facts=repo.facts,
        )
        links = [settled if link is repo else link for link in links]
    return links


def _retitle(link: Link, title: str) -> Link:
    return dataclasses.replace(link, title=title)


def _from_failure(
    name: str,
    code: str,
    summary: str,
    walk: _Walk,
    next_command: str = "",
    verdict: str = BROKEN,
    details: Optional[Mapping[str, str]] = None,
    facts: Optional[Mapping[str, Any]] = None,
    cause: str = "",
) -> Link:
    """A link whose problem is a row of the failures table: its cause and fix, in one place."""
    failure = failures.get(code, details or {}, walk.family)
    return Link(
        name,
        verdict,
        summary,
        cause=cause or failure.cause,
        fix=failure.fix,
        next_command=next_command,
        code=code,
        facts=facts or {},
    )


# ---------------------------------------------------------------------------------------------
# hardware, kernel module, driver


def pci_devices(host: Host) -> list[dict[str, str]]:
    """Every PCI device in sysfs: address, vendor, device, class."""
    base = host.path("/sys/bus/pci/devices")
    out: list[dict[str, str]] = []
    try:
        entries = sorted(base.iterdir())
    except OSError:
        return out
    for dev in entries:
        row = {"address": dev.name}
        for attr in ("vendor", "device", "class"):
            try:
                row[attr] = (dev / attr).read_text().strip().lower()
            except OSError:
                row[attr] = ""
        out.append(row)
    return out


def probe_hardware(walk: _Walk) -> Link:
    host = walk.host
    devices = pci_devices(host)
    nvidia = [d for d in devices if d["vendor"] == NVIDIA_VENDOR]
    gpus = [d for d in nvidia if d["class"].startswith("0x03")]
    source = "sysfs"
    if not devices and host.is_live and host.which("lspci"):
        result = host.run(["lspci", "-n", "-d", "10de:"], check=False, timeout=10)
        lines = [ln for ln in result.stdout.splitlines() if ln.strip()]
        gpus = [
            {
                "address": ln.split()[0],
                "vendor": NVIDIA_VENDOR,
                "device": ln.split()[2].split(":")[1] if len(ln.split()) > 2 else "",
                "class": "0x" + ln.split()[1].rstrip(":"),
            }
            for ln in lines
            if len(ln.split()) > 1 and ln.split()[1].startswith("03")
        ]
        source = "lspci"
    wsl = host.path("/usr/lib/wsl/lib/libnvidia-ml.so.1").exists() or host.path("/dev/dxg").exists()
    if gpus:
        walk.gpu = True
        ids = ", ".join(f"10de:{g['device'].removeprefix('0x')} at {g['address']}" for g in gpus)
        return Link(
            "hardware",
            OK,
            f"{len(gpus)} NVIDIA GPU(s): {ids}",
            facts={"gpus": gpus, "source": source},
        )
    if wsl:
        walk.gpu = True
        return Link(
            "hardware",
            OK,
            "WSL: the GPU is served by the Windows driver (/dev/dxg)",
            facts={"wsl": True},
        )
    walk.gpu = False
    seen = (
        f"{len(devices)} PCI devices, none from NVIDIA (vendor 10de)"
        if devices
        else "no PCI devices visible"
    )
    container = next(
        (m for m in ("/.dockerenv", "/run/.containerenv") if host.path(m).exists()), None
    )
    cause = (
        "Docker can only hand a container a GPU the kernel sees, and this machine shows "
        "none. The rest of the chain has nothing to serve."
    )
    fix = (
        "Run gpuwizard on the machine that has the GPU. On a cloud VM, choose a GPU "
        "instance type; on a VM, pass the GPU through to it; on bare metal, check the "
        "card is seated, powered and enabled in the firmware."
    )
    if container:
        cause += (
            f" {container} says this may be a container: containers get GPUs from their "
            "host, and nothing inside one can add it."
        )
        fix = (
            "Run gpuwizard on the host itself, or start this container with the GPU passed "
            "in (docker run --gpus all …) from a host where that works. " + fix
        )
    return Link(
        "hardware",
        BROKEN,
        f"No NVIDIA GPU on this machine: {seen}",
        cause=cause,
        fix=fix,
        next_command="lspci -nn | grep -i nvidia",
        facts={"pci_devices": len(devices), "source": source, "container": container is not None},
    )


def _modules(host: Host) -> Optional[set[str]]:
    text = host.read_text("/proc/modules")
    if text is not None:
        return {line.split()[0] for line in text.splitlines() if line.strip()}
    sysmod = host.path("/sys/module")
    if sysmod.is_dir():
        return {p.name for p in sysmod.iterdir() if (p / "initstate").exists()}
    return None


def probe_kernel_module(walk: _Walk) -> Link:
    host = walk.host
    version_file = host.read_text("/proc/driver/nvidia/version")
    modules = _modules(host)
    if host.path("/dev/dxg").exists() and walk.gpu:
        return Link("kernel-module", SKIPPED, "WSL: no Linux module; the Windows driver serves")
    loaded = bool(modules and "nvidia" in modules) or version_file is not None
    nouveau = bool(modules and "nouveau" in modules)
    if loaded:
        m = re.search(r"Kernel Module(?: for \S+)?\s+([0-9][0-9.]+)", version_file or "")
        version = m.group(1) if m else None
        return Link(
            "kernel-module",
            OK,
            f"nvidia loaded{f' ({version})' if version else ''}",
            facts={"version": version, "nouveau": nouveau},
        )
    if nouveau:
        return _from_failure(
            "kernel-module",
            "driver-not-loaded",
            "nouveau is loaded and holds the GPU; the nvidia module is not",
            walk,
            next_command="lsmod | grep -e nvidia -e nouveau",
            facts={"nouveau": True},
            cause=(
                "The open-source nouveau driver holds the GPU, so NVIDIA's module cannot "
                "load. Install NVIDIA's driver (it blacklists nouveau) and reboot."
            ),
        )
    if walk.gpu is False:
        what = "cannot list modules here" if modules is None else "nvidia not loaded"
        return Link("kernel-module", SKIPPED, f"{what} (no NVIDIA GPU)")
    if modules is None:
        return Link(
            "kernel-module",
            WARN,
            "cannot list kernel modules (/proc/modules missing)",
            next_command="lsmod | grep nvidia",
        )
    return _from_failure(
        "kernel-module",
        "driver-not-loaded",
        "the nvidia module is not loaded",
        walk,
        next_command="sudo modprobe nvidia && dmesg | grep -i nvrm",
    )


# The driver helper's problem codes -> the failures table's codes, and a command to run next.
_DRIVER_PROBLEMS: dict[str, tuple[Optional[str], str]] = {
    "version_mismatch": ("driver-library-mismatch", "cat /proc/driver/nvidia/version"),
    "driver_not_loaded": ("driver-not-loaded", "sudo modprobe nvidia && dmesg | grep -i nvrm"),
    "nouveau_loaded": ("driver-not-loaded", "lsmod | grep -e nvidia -e nouveau"),
    "no_driver": ("nvidia-smi-missing-on-host", "lspci -nn | grep -i nvidia"),
    "driver_userspace_missing": ("libnvidia-ml-missing", "ldconfig -p | grep libnvidia-ml"),
    "wsl_linux_driver": ("wsl-driver-clash", "ls /usr/lib/wsl/lib"),
    "no_permission": (None, "ls -l /dev/nvidia*"),
    "nvml_error": (None, "nvidia-smi"),
    "no_devices": (None, "nvidia-smi -L"),
}


def probe_driver(walk: _Walk) -> Link:
    """The driver helper's GpuReport (NVML, nvidia-smi, /proc), read as one link."""
    from gpuwizard.host.gpu import probe_gpus  # lazy: pulls in the NVML bindings

    report = probe_gpus(walk.host)
    facts = {"report": report.to_json()}
    blocking = [p for p in report.problems if p.blocking and p.code != "no_nvidia_hardware"]
    worries = [p for p in report.problems if not p.blocking]
    if report.ok:
        if worries:
            worry = worries[0]
            return Link(
                "driver", WARN, f"{report.summary()}; {worry.cause}", fix=worry.remedy, facts=facts
            )
        return Link("driver", OK, report.summary(), facts=facts)
    if walk.gpu is False:
        why = next(
            (p.cause for p in blocking if p.code in ("in_container", "wsl_no_windows_driver")), ""
        )
        return Link(
            "driver", SKIPPED, why or "no NVIDIA driver to check (no NVIDIA GPU)", facts=facts
        )
    if not blocking:
        return Link("driver", BROKEN, report.summary(), next_command="nvidia-smi", facts=facts)
    problem = blocking[0]
    code, command = _DRIVER_PROBLEMS.get(problem.code, (None, "nvidia-smi"))
    if report.nvidia_smi and command == "nvidia-smi":
        command = report.nvidia_smi
    others = "; ".join(p.cause for p in blocking[1:])
    summary = problem.cause + (f". Also: {others}" if others else "")
    return Link(
        "driver",
        BROKEN,
        summary,
        fix=problem.remedy,
        next_command=command,
        code=code,
        facts={**facts, "problem": problem.code},
    )


# ---------------------------------------------------------------------------------------------
# repository and key


@dataclass(frozen=True)
class AptSource:
    """One `deb` entry that names NVIDIA's repositories."""

    file: str
    line: int
    uri: str
    suite: str
    signed_by: Optional[str]

    def key(self) -> tuple[str, str]:
        uri = self.uri.replace("$(ARCH)", "ARCH").rstrip("/")
        return uri, self.suite


def _apt_files(host: Host) -> list[str]:
    files = ["/etc/apt/sources.list"]
    folder = host.path("/etc/apt/sources.list.d")
    if folder.is_dir():
        files += sorted(
            f"/etc/apt/sources.list.d/{p.name}"
            for p in folder.iterdir()
            if p.name.endswith((".list", ".sources"))
        )
    return files


_DEB = re.compile(r"^\s*deb\s+(?:\[(?P<opts>[^\]]*)\]\s+)?(?P<uri>\S+)\s+(?P<suite>\S+)")


def apt_sources(host: Host, needle: str = "nvidia.github.io") -> tuple[list[AptSource], list[str]]:
    """NVIDIA's apt entries (one-line and deb822), and files saying `Unsupported distribution`."""
    entries: list[AptSource] = []
    unsupported: list[str] = []
    for name in _apt_files(host):
        text = host.read_text(name)
        if text is None:
            continue
        if "unsupported distribution" in text.lower():
            unsupported.append(name)
        if name.endswith(".sources"):
            entries += _deb822(name, text, needle)
            continue
        for number, line in enumerate(text.splitlines(), 1):
            m = _DEB.match(line)
            if not m or needle not in m.group("uri"):
                continue
            opts = dict(o.split("=", 1) for o in (m.group("opts") or "").split() if "=" in o)
            entries.append(
                AptSource(name, number, m.group("uri"), m.group("suite"), opts.get("signed-by"))
            )
    return entries, unsupported


def _deb822(name: str, text: str, needle: str) -> list[AptSource]:
    out = []
    for number, stanza in enumerate(re.split(r"\n\s*\n", text), 1):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if ":" in line and not line.startswith((" ", "#")):
                k, _, v = line.partition(":")
                fields[k.strip().lower()] = v.strip()
        if fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            if needle in uri:
                for suite in fields.get("suites", "/").split():
                    out.append(AptSource(name, number, uri, suite, fields.get("signed-by")))
    return out


def keyring_fingerprints(host: Host, path: str) -> Optional[list[str]]:
    """Fingerprints in a keyring file (gpg on this machine reads it); None without gpg."""
    gpg = "gpg" if _local_which("gpg") else None
    if gpg is None:
        return None
    with tempfile.TemporaryDirectory(prefix="gpuwizard-gpg-") as home:
        result = host.run(
            [
                gpg,
                "--homedir",
                home,
                "--batch",
                "--with-colons",
                "--show-keys",
                str(host.path(path)),
            ],
            inside=False,
            check=False,
            timeout=20,
        )
    return [ln.split(":")[9] for ln in result.stdout.splitlines() if ln.startswith("fpr:")]


def _local_which(name: str) -> Optional[str]:
    for d in os.environ.get("PATH", "").split(":") + ["/usr/bin", "/bin"]:
        p = Path(d) / name
        if d and p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return None


def probe_repository(walk: _Walk) -> Link:
    if walk.package_manager in ("dnf", "yum", "zypper"):
        return _probe_rpm_repository(walk)
    if walk.package_manager != "apt" and not walk.host.path("/etc/apt").is_dir():
        return Link("repository", SKIPPED, "no apt, dnf, yum or zypper on this system")
    return _worst_first(list(_apt_repository(walk)))


_SEVERITY = {BROKEN: 0, WARN: 1, OK: 2, SKIPPED: 3}


def _worst_first(found: list[Link]) -> Link:
    """One link from several findings: the worst leads, the other problems follow it."""
    found = sorted(found, key=lambda link: _SEVERITY.get(link.verdict, 9))
    primary, others = found[0], [f for f in found[1:] if f.verdict in (BROKEN, WARN)]
    if not others:
        return primary
    also = "; ".join(o.summary for o in others)
    return dataclasses.replace(
        primary,
        summary=f"{primary.summary}. Also: {also}",
        facts={**primary.facts, "also": [o.to_json() for o in others]},
    )


def _apt_repository(walk: _Walk) -> Iterator[Link]:
    """Every finding about NVIDIA's apt lists and key, most basic first."""
    host, options = walk.host, walk.options
    entries, unsupported = apt_sources(host)
    base = options.repo_url.rstrip("/")
    current = [e for e in entries if e.uri.startswith(base + "/deb")]
    legacy = [e for e in entries if e not in current]
    facts: dict[str, Any] = {
        "current": [f"{e.file}:{e.line}" for e in current],
        "legacy": [f"{e.file}:{e.line}" for e in legacy],
    }
    if unsupported:
        yield _from_failure(
            "repository",
            "unsupported-distribution",
            f"{', '.join(unsupported)} says '# Unsupported distribution!'",
            walk,
            next_command=f"cat {unsupported[0]}",
            facts=facts,
        )
    by_source: dict[tuple[str, str], set[Optional[str]]] = {}
    for e in entries:
        by_source.setdefault(e.key(), set()).add(e.signed_by)
    clashes = [k for k, keys in by_source.items() if len(keys) > 1]
    if clashes:
        files = sorted({e.file for e in entries if e.key() in clashes})
        others = [f for f in files if not f.endswith("/nvidia-container-toolkit.list")] or files
        shown = next(e.uri for e in entries if e.key() == clashes[0])
        yield _from_failure(
            "repository",
            "signed-by-conflict",
            f"{len(files)} lists name {shown} with different keys: {', '.join(files)}",
            walk,
            details={"source": shown},
            next_command=f"sudo mkdir -p /root/apt-lists-backup && sudo mv {' '.join(others)} "
            "/root/apt-lists-backup/ && sudo apt-get update",
            facts=facts,
        )
    if not current:
        if legacy:
            yield _from_failure(
                "repository",
                "unsupported-distribution",
                f"only old NVIDIA lists ({', '.join(sorted({e.file for e in legacy}))}): "
                "frozen at toolkit 1.13.5",
                walk,
                verdict=WARN if walk.gpu is False else BROKEN,
                next_command="gpuwizard plan",
                facts=facts,
            )
            return
        yield walk.absent(
            "repository",
            "",
            "NVIDIA's repository is not configured",
            cause="apt does not know where to get the NVIDIA Container Toolkit.",
            fix="Let gpuwizard add the list and the verified key.",
            next_command="gpuwizard plan",
            facts=facts,
        )
        return
    # the key the current list trusts
    signed = sorted({e.signed_by for e in current if e.signed_by})
    if not signed:
        yield Link(
            "repository",
            WARN,
            f"{current[0].file} has no signed-by: any key in apt's global keyrings can sign it",
            fix="Use signed-by with NVIDIA's keyring (gpuwizard does).",
            next_command=f"cat {current[0].file}",
            facts=facts,
        )
        return
    # the keyring of our own list first: the one apt should keep
    ours = [
        e.signed_by
        for e in current
        if e.file.endswith("/nvidia-container-toolkit.list") and e.signed_by
    ]
    keyrings = list(dict.fromkeys([*ours, *signed]))
    keyring = keyrings[0]
    facts["keyring"] = keyring
    want = options.key_fingerprint.replace(" ", "").upper()
    fingerprints: Optional[list[str]] = None
    bad_key = False
    for ring in keyrings:
        path = host.path(ring)
        if not path.exists() or path.stat().st_size == 0:
            state = "missing" if not path.exists() else "empty (0 bytes)"
            yield _from_failure(
                "repository",
                "nvidia-key-missing",
                f"the keyring {ring} is {state}: apt will say NO_PUBKEY",
                walk,
                details={"key_id": want[-16:]},
                next_command=f"ls -l {ring}",
                facts=facts,
            )
            bad_key = True
            continue
        found = keyring_fingerprints(host, ring)
        if ring == keyring:
            fingerprints = found
            facts["fingerprints"] = found
        if found is not None and want not in [f.upper() for f in found]:
            what = "no readable key" if not found else f"{', '.join(found)}"
            yield _from_failure(
                "repository",
                "nvidia-key-missing",
                f"{ring} holds {what}, not NVIDIA's key {want}",
                walk,
                details={"key_id": want[-16:]},
                next_command=f"gpg --show-keys {ring}",
                facts=facts,
            )
            bad_key = True
    if bad_key:
        return
    key_note = (
        "key verified" if fingerprints is not None else "key present (no gpg here to check it)"
    )
    if legacy and not clashes:
        files = sorted({e.file for e in legacy})
        yield Link(
            "repository",
            WARN,
            f"{current[0].file} ({key_note}); old lists beside it: {', '.join(files)}",
            cause="The old lists point at trees frozen at toolkit 1.13.5.",
            fix="Back them up and remove them (gpuwizard's repository step does).",
            next_command=f"cat {' '.join(files)}",
            code="unsupported-distribution",
            facts=facts,
        )
    yield Link("repository", OK, f"{current[0].file} with {keyring} ({key_note})", facts=facts)


def _probe_rpm_repository(walk: _Walk) -> Link:
    host = walk.host
    folder = "/etc/zypp/repos.d" if walk.package_manager == "zypper" else "/etc/yum.repos.d"
    found: list[tuple[str, str, str]] = []  # file, section, baseurl
    unsupported = []
    root = host.path(folder)
    for p in sorted(root.glob("*.repo")) if root.is_dir() else []:
        text = p.read_text(errors="replace")
        if "unsupported distribution" in text.lower():
            unsupported.append(f"{folder}/{p.name}")
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            parser.read_string(text)
        except configparser.Error:
            continue
        for section in parser.sections():
            url = parser.get(section, "baseurl", fallback="")
            if "nvidia.github.io" in url and parser.get(
                section, "enabled", fallback="1"
            ).strip() in ("1", "yes"):
                found.append((f"{folder}/{p.name}", section, url))
    if unsupported:
        return _from_failure(
            "repository",
            "unsupported-distribution",
            f"{', '.join(unsupported)} says '# Unsupported distribution!'",
            walk,
            next_command=f"cat {unsupported[0]}",
        )
    current = [f for f in found if "/stable/rpm/" in f[2] or "/experimental/rpm/" in f[2]]
    legacy = [f for f in found if f not in current]
    facts = {
        "current": [f"{f[0]} [{f[1]}]" for f in current],
        "legacy": [f"{f[0]} [{f[1]}]" for f in legacy],
    }
    if not current:
        return walk.absent(
            "repository",
            "",
            "NVIDIA's repository is not configured",
            fix="Let gpuwizard add the .repo file and import the verified key.",
            next_command="gpuwizard plan",
            facts=facts,
        )
    if legacy:
        return Link(
            "repository",
            WARN,
            f"{current[0][0]}; old repos beside it: {', '.join(sorted({f[0] for f in legacy}))}",
            fix="Remove the old per-distribution repos (frozen at 1.13.5).",
            next_command=f"cat {legacy[0][0]}",
            facts=facts,
        )
    return Link("repository", OK, f"{current[0][0]} [{current[0][1]}]", facts=facts)


# ---------------------------------------------------------------------------------------------
# packages


def version_tuple(version: str) -> tuple[int, ...]:
    """1.17.8-1 -> (1, 17, 8); 1.18.0~rc.1-1 -> (1, 18, 0)."""
    upstream = re.split(r"[-~+]", version.split(":")[-1], maxsplit=1)[0]
    return tuple(int(x) for x in re.findall(r"\d+", upstream)[:3])


def installed_packages(walk: _Walk, names: tuple[str, ...]) -> Optional[dict[str, str]]:
    """name -> version of those installed; None when no package database can be read."""
    host = walk.host
    if walk.package_manager == "apt" or host.path("/var/lib/dpkg/status").exists():
        fmt = "${Package}\\t${Version}\\t${db:Status-Abbrev}\\n"
        if host.is_live or host.path("/usr/bin/dpkg-query").exists():
            argv, inside = ["dpkg-query", "-W", f"-f={fmt}", *names], True
        elif _local_which("dpkg-query") and host.path("/var/lib/dpkg/status").exists():
            argv = [
                "dpkg-query",
                f"--admindir={host.path('/var/lib/dpkg')}",
                "-W",
                f"-f={fmt}",
                *names,
            ]
            inside = False
        else:
            return None
        result = host.run(argv, inside=inside, check=False, timeout=30)
        out = {}
        for line in result.stdout.splitlines():
            parts = line.split("\t")
            if len(parts) >= 3 and parts[2].startswith("ii"):
                out[parts[0]] = parts[1]
        return out
    if walk.package_manager in ("dnf", "yum", "zypper") or host.path("/var/lib/rpm").exists():
        if not _local_which("rpm"):
            return None
        argv = ["rpm", "-q", "--qf", "%{NAME}\\t%{VERSION}-%{RELEASE}\\n", *names]
        if not host.is_live:
            argv[1:1] = ["--root", str(host.root)]
        result = host.run(argv, inside=False, check=False, timeout=30)
        return {
            p[0]: p[1] for p in (ln.split("\t") for ln in result.stdout.splitlines()) if len(p) == 2
        }
    return None


def probe_packages(walk: _Walk) -> Link:
    host = walk.host
    walk.hook = host.which(HOOK)
    found = installed_packages(walk, TOOLKIT_PACKAGES + LEGACY_PACKAGES)
    if found is None:
        return Link(
            "packages",
            SKIPPED,
            "no package database to read (dpkg or rpm)",
            facts={"hook": walk.hook},
        )
    toolkit = {n: v for n, v in found.items() if n in TOOLKIT_PACKAGES}
    legacy = {n: v for n, v in found.items() if n in LEGACY_PACKAGES}
    facts = {"installed": found, "hook": walk.hook}
    install = {
        "debian": "sudo apt-get install",
        "rhel": "sudo dnf install",
        "suse": "sudo zypper install",
    }.get(walk.family, "install")
    if not toolkit:
        summary = "the NVIDIA Container Toolkit is not installed"
        if legacy:
            summary += f" (only legacy {', '.join(sorted(legacy))})"
        return walk.absent(
            "packages",
            "",
            summary,
            cause="Nothing gives dockerd the NVIDIA hook or runtime.",
            fix="Install the four toolkit packages at one version (gpuwizard pins them).",
            next_command=f"{install} {' '.join(TOOLKIT_PACKAGES)}",
            facts=facts,
        )
    missing = [n for n in TOOLKIT_PACKAGES if n not in toolkit]
    versions = {version_tuple(v) for v in toolkit.values()}
    listing = ", ".join(f"{n} {v}" for n, v in toolkit.items())
    if missing:
        return Link(
            "packages",
            BROKEN,
            f"missing {', '.join(missing)} (have {listing})",
            cause="The toolkit is four packages; one missing leaves it half installed.",
            next_command=f"{install} {' '.join(missing)}",
            facts=facts,
        )
    if len(versions) > 1:
        newest = max(versions)
        strict = newest >= EXACT_MATCH_SINCE
        return Link(
            "packages",
            BROKEN if strict else WARN,
            f"versions differ: {listing}",
            cause=(
                "Since 1.18 the libnvidia-container libraries must match the "
                "toolkit version exactly."
                if strict
                else "The four packages should be at one version."
            ),
            fix="Pin all four to one version (gpuwizard does).",
            next_command=f"{install} "
            + " ".join(f"{n}={toolkit['nvidia-container-toolkit']}" for n in TOOLKIT_PACKAGES)
            if walk.family == "debian"
            else install + " " + " ".join(TOOLKIT_PACKAGES),
            facts=facts,
        )
    version = toolkit["nvidia-container-toolkit"]
    if host.path("/snap/bin/docker").exists():
        return _from_failure(
            "packages",
            "snap-docker",
            f"toolkit {version} installed beside snap Docker, which bundles its own",
            walk,
            verdict=BROKEN if walk.gpu else WARN,
            next_command="snap list docker",
            facts=facts,
        )
    warnings = []
    if version_tuple(version) < CVE_FLOOR:
        warnings.append(
            f"{version} is older than 1.17.8 and has known CVEs "
            "(CVE-2025-23266 among them): upgrade"
        )
    if not re.fullmatch(r"\d+\.\d+\.\d+(~rc\.\d+)?(-\d+)?", version):
        warnings.append(f"{version} is not an NVIDIA build (a vendor or distribution package)")
    if legacy:
        warnings.append(
            f"legacy {', '.join(sorted(legacy))} installed: remove it (never purge: "
            "nvidia-docker2 <= 2.13 owns /etc/docker/daemon.json)"
        )
    if walk.hook is None:
        return Link(
            "packages",
            BROKEN,
            f"toolkit {version} installed but {HOOK} is not on PATH",
            cause="The package is there but its hook binary is not.",
            next_command=f"{install} --reinstall nvidia-container-toolkit"
            if walk.family == "debian"
            else f"{install} nvidia-container-toolkit",
            facts=facts,
        )
    if warnings:
        return Link(
            "packages",
            WARN,
            f"toolkit {version}; " + "; ".join(warnings),
            fix="Upgrade to the current 1.20.x and remove legacy packages (gpuwizard).",
            next_command="gpuwizard plan",
            facts=facts,
        )
    return Link("packages", OK, f"toolkit {version}, all four packages at one version", facts=facts)


# ---------------------------------------------------------------------------------------------
# the toolkit's own configuration

TOOLKIT_CONFIG = "/etc/nvidia-container-runtime/config.toml"
CDI_SPECS = (
    "/etc/cdi/nvidia.yaml",
    "/var/run/cdi/nvidia.yaml",
    "/etc/cdi/nvidia.json",
    "/var/run/cdi/nvidia.json",
)


def toml_value(text: str, section: str, key: str) -> Optional[str]:
    """One string value of a small TOML file (Python 3.9 has no tomllib)."""
    current = ""
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("[") and line.endswith("]"):
            current = line.strip("[]").strip()
            continue
        m = re.match(r'([\w.-]+)\s*=\s*"([^"]*)"', line)
        if m and current == section and m.group(1) == key:
            return m.group(2)
    return None


def probe_toolkit_config(walk: _Walk) -> Link:
    host = walk.host
    text = host.read_text(TOOLKIT_CONFIG)
    if text is None:
        if walk.hook is None:
            return Link("toolkit-config", SKIPPED, f"no {TOOLKIT_CONFIG} (toolkit not installed)")
        return Link(
            "toolkit-config",
            WARN,
            f"no {TOOLKIT_CONFIG}: the toolkit runs on defaults",
            next_command=f"sudo nvidia-ctk config --config-file={TOOLKIT_CONFIG} --in-place",
        )
    facts: dict[str, Any] = {}
    ldconfig = toml_value(text, "nvidia-container-cli", "ldconfig")
    facts["ldconfig"] = ldconfig
    if ldconfig:
        binary = ldconfig.lstrip("@")
        if not host.path(binary).exists():
            return _from_failure(
                "toolkit-config",
                "ldcache-error",
                f'ldconfig = "{ldconfig}" but {binary} does not exist here',
                walk,
                details={"path": binary},
                next_command=f"grep -n ldconfig {TOOLKIT_CONFIG}",
                facts=facts,
            )
    mode = toml_value(text, "nvidia-container-runtime", "mode") or "auto"
    facts["mode"] = mode
    specs = [p for p in CDI_SPECS if host.path(p).exists()]
    facts["cdi_specs"] = specs
    if mode == "cdi":
        return _from_failure(
            "toolkit-config",
            "cdi-mode-gpus-flag",
            "runtime mode is cdi: `docker run --gpus` fails; use --runtime nvidia",
            walk,
            verdict=WARN,
            next_command=f"grep -n mode {TOOLKIT_CONFIG}",
            facts=facts,
        )
    parts = [f"mode {mode}"]
    if ldconfig:
        parts.append(f"ldconfig {ldconfig}")
    parts.append(f"CDI spec: {', '.join(specs)}" if specs else "no CDI spec")
    return Link("toolkit-config", OK, "; ".join(parts), facts=facts)


# ---------------------------------------------------------------------------------------------
# daemon.json


def _dockerd(walk: _Walk) -> Any:
    """The running dockerd that serves our socket (the docker helper's DockerdProcess), or
    the one named by --docker-pidfile. Live processes only: a root folder has none."""
    from gpuwizard.host import docker as engine

    if walk.options.docker_pidfile:
        pid = dockerd_pid(walk)
        if pid is None:
            return None
        return engine.DockerdProcess(pid=pid, argv=tuple(_cmdline(pid)), exe="", log_file=None)
    if not walk.host.is_live:
        return None
    return engine.find_dockerd(walk.options.docker_host)


def daemon_json_path(walk: _Walk) -> tuple[str, str]:
    """The daemon.json the running daemon reads, and why we think so."""
    from gpuwizard.host import docker as engine

    return engine.daemon_json_path(walk.host, _dockerd(walk), False, walk.options.daemon_json)


def unit_exec_start(host: Host) -> Optional[str]:
    """The docker unit's effective ExecStart (drop-ins override the unit)."""
    value = None
    for unit in DOCKER_UNITS:
        text = host.read_text(unit)
        if text:
            value = _last_exec_start(text, value)
            break
    dropins = host.path("/etc/systemd/system/docker.service.d")
    if dropins.is_dir():
        for conf in sorted(dropins.glob("*.conf")):
            value = _last_exec_start(conf.read_text(errors="replace"), value)
    return value


def _last_exec_start(text: str, value: Optional[str]) -> Optional[str]:
    for line in text.replace("\\\n", " ").splitlines():
        if line.strip().startswith("ExecStart="):
            value = line.split("=", 1)[1].strip() or None
    return value


def probe_daemon_config(walk: _Walk) -> Link:
    host = walk.host
    path, why = daemon_json_path(walk)
    walk.daemon_json = path
    raw = host.path(path)
    if not raw.exists():
        walk.daemon_config = {}
        return Link(
            "daemon-config",
            OK,
            f"{path} absent: fine for --gpus; --runtime nvidia would need runtimes.nvidia",
            facts={"path": path, "exists": False, "chosen_because": why},
        )
    text = raw.read_text(encoding="utf-8", errors="replace")
    facts: dict[str, Any] = {"path": path, "exists": True, "chosen_because": why}
    if not text.strip():
        return _from_failure(
            "daemon-config",
            "daemon-json-invalid",
            f"{path} is empty: dockerd refuses to start with it",
            walk,
            details={"file": path},
            next_command=f"ls -l {path}",
            facts=facts,
        )
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        facts.update(line=exc.lineno, column=exc.colno, error=exc.msg)
        return _from_failure(
            "daemon-config",
            "daemon-json-invalid",
            f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
            walk,
            details={"file": path},
            next_command=f"python3 -m json.tool {path}",
            facts=facts,
        )
    if not isinstance(config, dict):
        return _from_failure(
            "daemon-config",
            "daemon-json-invalid",
            f"{path} holds a JSON {type(config).__name__}, not an object",
            walk,
            details={"file": path},
            next_command=f"cat {path}",
            facts=facts,
        )
    walk.daemon_config = config
    runtimes = config.get("runtimes", {})
    if not isinstance(runtimes, dict):
        return _from_failure(
            "daemon-config",
            "daemon-json-invalid",
            f'{path}: "runtimes" is not an object',
            walk,
            details={"file": path},
            next_command=f"cat {path}",
            facts=facts,
        )
    default = config.get("default-runtime")
    facts.update(runtimes=sorted(runtimes), default_runtime=default)
    if default and default not in runtimes and default not in BUILTIN_RUNTIMES:
        return _from_failure(
            "daemon-config",
            "default-runtime-undefined",
            f"default-runtime is {default!r} but runtimes has no {default!r}: dockerd will not "
            "start",
            walk,
            details={"runtime": str(default)},
            next_command=f"grep -n -e default-runtime -e runtimes {path}",
            facts=facts,
        )
    exec_start = unit_exec_start(host)
    if "hosts" in config and exec_start and re.search(r"(^|\s)(-H|--host)[\s=]", exec_start):
        return _from_failure(
            "daemon-config",
            "daemon-flag-conflict",
            f"{path} sets hosts and the docker unit passes -H: dockerd will not start",
            walk,
            details={"keys": "hosts"},
            next_command="systemctl cat docker | grep ExecStart",
            facts=facts,
        )
    nvidia = runtimes.get("nvidia")
    if nvidia is not None:
        rpath = nvidia.get("path", "") if isinstance(nvidia, dict) else ""
        exists = (
            (host.path(rpath).exists() if rpath.startswith("/") else host.which(rpath) is not None)
            if rpath
            else False
        )
        facts["nvidia_runtime_path"] = rpath
        if not exists:
            return _from_failure(
                "daemon-config",
                "nvidia-runtime-binary-missing",
                f"runtimes.nvidia points at {rpath or '(no path)'}, which is not installed"
                + (
                    ": every container fails (it is the default runtime)"
                    if default == "nvidia"
                    else ""
                ),
                walk,
                verdict=BROKEN if default == "nvidia" or walk.gpu else WARN,
                details={"binary": rpath or "nvidia-container-runtime"},
                next_command=f"command -v {rpath or 'nvidia-container-runtime'}",
                facts=facts,
            )
    parts = [f"runtimes: {', '.join(sorted(runtimes)) or 'none'}"]
    if default:
        parts.append(f"default-runtime: {default}")
    features = config.get("features")
    if isinstance(features, dict) and "cdi" in features:
        parts.append(f"features.cdi: {str(features['cdi']).lower()}")
        if features["cdi"] is True and not any(host.path(p).exists() for p in CDI_SPECS):
            return _from_failure(
                "daemon-config",
                "cdi-unresolvable",
                f"{path} turns CDI on but no NVIDIA CDI spec exists: --device "
                "nvidia.com/gpu=all will fail",
                walk,
                verdict=WARN,
                next_command="sudo nvidia-ctk cdi generate --output=/var/run/cdi/nvidia.yaml",
                facts=facts,
            )
    return Link("daemon-config", OK, f"{path}: " + "; ".join(parts), facts=facts)


# ---------------------------------------------------------------------------------------------
# the engine, and GPU support in it


def _connect(walk: _Walk) -> Any:
    host, docker_host = walk.host, walk.options.docker_host
    if host.engine_factory is not None:
        return host.engine_factory(docker_host)
    import docker  # lazy: heavy, and only the engine links need it

    url = docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    return docker.DockerClient(base_url=url, timeout=10)


def _close(client: Any) -> None:
    close = getattr(client, "close", None)
    if callable(close):
        close()


def probe_engine(walk: _Walk) -> Link:
    host, options = walk.host, walk.options
    url = options.docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if not host.is_live and not options.docker_host and host.engine_factory is None:
        return Link(
            "engine",
            SKIPPED,
            f"checking a root folder ({host.root}): no engine to ask "
            "(pass --docker-host to check one)",
        )
    installed = host.which("dockerd") or host.which("docker") or host.engine_factory
    try:
        client = _connect(walk)
        info = client.info()
    except Exception as exc:  # noqa: BLE001 - the SDK raises many kinds; all mean "unreachable"
        message = str(exc)
        if not installed:
            from gpuwizard.host.docker import install_remedy

            install = {
                "debian": "sudo apt-get install -y docker.io",
                "suse": "sudo zypper install -y docker",
            }.get(walk.family, "docker version")
            return walk.absent(
                "engine",
                "",
                "Docker Engine is not installed",
                fix=install_remedy(host) + " Docker Desktop cannot use this host's GPU.",
                next_command=install,
            )
        if "permission denied" in message.lower():
            return Link(
                "engine",
                BROKEN,
                f"no permission to use {url}",
                cause="Only root and the docker group may talk to the engine.",
                next_command="sudo gpuwizard doctor",
            )
        return walk.absent(
            "engine",
            "",
            f"Docker engine not reachable at {url}",
            cause=f"The engine did not answer: {_short(message)}",
            next_command=walk.restart_command().replace("restart", "start"),
            facts={"docker_host": url},
        )
    walk.client = client
    walk.engine = info
    runtimes = sorted((info.get("Runtimes") or {}).keys())
    default = info.get("DefaultRuntime", "")
    facts = {
        "docker_host": url,
        "version": info.get("ServerVersion", ""),
        "runtimes": runtimes,
        "default_runtime": default,
    }
    if any("name=rootless" in str(o) for o in info.get("SecurityOptions") or ()):
        rootless = _rootless_link(walk, facts)
        if rootless is not None:
            return rootless
    file_runtimes = sorted((walk.daemon_config or {}).get("runtimes", {}) or {})
    unloaded = [r for r in file_runtimes if r not in runtimes]
    if unloaded:
        return _from_failure(
            "engine",
            "runtime-nvidia-unknown" if "nvidia" in unloaded else "docker-start-failed",
            f"{walk.daemon_json} defines {', '.join(unloaded)} but the running daemon does not "
            "have it: it was not reloaded, or it reads another file",
            walk,
            details={"runtime": unloaded[0]},
            next_command=walk.restart_command(reload=True),
            facts=facts,
        )
    desktop = desktop_context(walk.host)
    if desktop:
        return _from_failure(
            "engine",
            "docker-desktop",
            f"the docker command uses Docker Desktop ({desktop}), not this engine",
            walk,
            verdict=BROKEN if walk.gpu else WARN,
            next_command="docker context use default",
            facts={**facts, "context_file": desktop},
        )
    file_default = (walk.daemon_config or {}).get("default-runtime")
    if file_default and file_default != default:
        return Link(
            "engine",
            WARN,
            f"{walk.daemon_json} sets default-runtime {file_default} but "
            f"the daemon runs with {default}",
            next_command=walk.restart_command(True),
            facts=facts,
        )
    return Link(
        "engine",
        OK,
        f"Docker {facts['version']} at {url}; runtimes: {', '.join(runtimes)}; default {default}",
        facts=facts,
    )


def _rootless_link(walk: _Walk, facts: dict[str, Any]) -> Optional[Link]:
    """A rootless engine: its own daemon.json, and no device cgroups for the toolkit."""
    facts["rootless"] = True
    config = walk.host.read_text(TOOLKIT_CONFIG) or ""
    if walk.hook and not re.search(r"^\s*no-cgroups\s*=\s*true", config, re.M):
        return _from_failure(
            "engine",
            "rootless-cgroups",
            "the engine is rootless but the toolkit still manages device cgroups: GPU "
            "containers fail with `devices.allow: permission denied`",
            walk,
            next_command="sudo nvidia-ctk config --set nvidia-container-cli.no-cgroups --in-place",
            facts=facts,
        )
    if not walk.options.daemon_json and walk.daemon_json == DEFAULT_DAEMON_JSON:
        return Link(
            "engine",
            WARN,
            f"the engine is rootless: it reads "
            f"~/.config/docker/daemon.json, not the {DEFAULT_DAEMON_JSON} checked above",
            next_command="gpuwizard doctor --daemon-json ~/.config/docker/daemon.json",
            facts=facts,
        )
    return None


def desktop_context(host: Host) -> Optional[str]:
    """The docker CLI config that selects Docker Desktop's context, if any user's does."""
    homes = ["/root"]
    home = host.path("/home")
    if home.is_dir():
        homes += sorted(f"/home/{p.name}" for p in home.iterdir())
    for h in homes:
        text = host.read_text(f"{h}/.docker/config.json")
        if not text:
            continue
        try:
            context = json.loads(text).get("currentContext", "")
        except (json.JSONDecodeError, AttributeError):
            continue
        if context == "desktop-linux":
            return f"{h}/.docker/config.json: currentContext desktop-linux"
    return None


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]


def dockerd_pid(walk: _Walk) -> Optional[int]:
    """The pid of the dockerd that serves our socket: the pidfile option, else /proc.

    The engine is a process of the running kernel even when we look at a root folder, so
    its pid and start time come from this machine's /proc, never from under the root.
    """
    pidfile = walk.options.docker_pidfile
    if pidfile:
        try:
            text = Path(pidfile).read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() and Path(f"/proc/{text}").exists() else None
    proc = _dockerd(walk)
    return proc.pid if proc is not None else None


def process_start_time(pid: int, proc: Path = Path("/proc")) -> Optional[float]:
    """When a process started, in seconds since the epoch (from /proc/PID/stat and btime)."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
        boot = (proc / "stat").read_text()
    except OSError:
        return None
    m = re.search(r"^btime (\d+)", boot, re.M)
    fields = stat.rsplit(")", 1)[-1].split()
    if not m or len(fields) < 20:
        return None
    return int(m.group(1)) + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def daemon_needs_restart(daemon_started: float, hook_mtime: float, slack: float = 1.0) -> bool:
    """dockerd looks for the hook only at start: a hook newer than the daemon is unseen."""
    return hook_mtime > daemon_started + slack


def process_path(pid: int, proc: Path = Path("/proc")) -> Optional[list[str]]:
    """The PATH a process runs with (dockerd looks for the hook there)."""
    try:
        raw = (proc / str(pid) / "environ").read_bytes()
    except OSError:
        return None
    for item in raw.split(b"\0"):
        if item.startswith(b"PATH="):
            return item[5:].decode(errors="replace").split(":")
    return None


def gpu_runtime_link(
    walk: _Walk,
    hook: Optional[str],
    hook_mtime: Optional[float],
    started: Optional[float],
    daemon_path: Optional[list[str]],
) -> Link:
    """The verdict on GPU support in the engine, from recorded facts (testable without one)."""
    info = walk.engine or {}
    runtimes = sorted((info.get("Runtimes") or {}).keys())
    cdi = [
        d.get("ID", "")
        for d in (info.get("DiscoveredDevices") or [])
        if isinstance(d, dict) and str(d.get("ID", "")).startswith("nvidia.com/")
    ]
    facts: dict[str, Any] = {
        "hook": hook,
        "hook_mtime": hook_mtime,
        "daemon_started": started,
        "runtimes": runtimes,
        "cdi_devices": cdi,
    }
    if hook is None:
        if cdi:
            return Link(
                "gpu-runtime", OK, f"CDI devices: {', '.join(cdi)} (no legacy hook)", facts=facts
            )
        return walk.absent(
            "gpu-runtime",
            "",
            f"{HOOK} is not installed: `--gpus` has no NVIDIA driver",
            code="gpu-device-driver-missing",
            cause=failures.get("gpu-device-driver-missing").cause,
            next_command="gpuwizard plan",
            facts=facts,
        )
    if started is not None and hook_mtime is not None and daemon_needs_restart(started, hook_mtime):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))
        hook_when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(hook_mtime))
        return _from_failure(
            "gpu-runtime",
            "gpu-device-driver-missing",
            f"dockerd started {when}, before {hook} was installed ({hook_when}): it has not "
            "registered the NVIDIA driver; --gpus fails until it restarts",
            walk,
            next_command=walk.restart_command(),
            facts=facts,
        )
    hook_dir = hook.rsplit("/", 1)[0]
    if daemon_path is not None and hook_dir not in daemon_path:
        return _from_failure(
            "gpu-runtime",
            "gpu-device-driver-missing",
            f"{hook} is not on dockerd's PATH ({':'.join(daemon_path)})",
            walk,
            next_command="systemctl show docker -p Environment",
            facts=facts,
        )
    parts = [
        f"--gpus: {hook} present when dockerd started"
        if started is not None
        else f"--gpus: {hook} installed (daemon start time unknown)"
    ]
    parts.append(
        "--runtime nvidia: registered"
        if "nvidia" in runtimes
        else "--runtime nvidia: not registered (only --gpus works)"
    )
    if cdi:
        parts.append(f"CDI: {', '.join(cdi)}")
    return Link("gpu-runtime", OK if started is not None else WARN, "; ".join(parts), facts=facts)


def probe_gpu_runtime(walk: _Walk) -> Link:
    if walk.engine is None:
        return Link("gpu-runtime", SKIPPED, "engine not reachable: nothing to ask")
    host = walk.host
    pid = dockerd_pid(walk) if host.is_live or walk.options.docker_pidfile else None
    started = process_start_time(pid) if pid else None
    daemon_path = process_path(pid) if pid else None
    hook: Optional[str] = None
    hook_mtime: Optional[float] = None
    if host.is_live and daemon_path is not None:
        # dockerd looks for the hook on its own PATH, which may not be ours
        for d in daemon_path:
            candidate = Path(d or ".") / HOOK
            if d and candidate.is_file() and os.access(candidate, os.X_OK):
                hook, hook_mtime = str(candidate), candidate.stat().st_mtime
                break
    else:
        hook = walk.hook or host.which(HOOK)
        hook_mtime = host.path(hook).stat().st_mtime if hook else None
    return gpu_runtime_link(walk, hook, hook_mtime, started, daemon_path)


def _no_smoke_test(walk: _Walk) -> Link:
    return Link("smoke-test", SKIPPED, "not run (add --run-test to start a GPU container)")


def probe_smoke_test(walk: _Walk) -> Link:
    if walk.client is None:
        return Link("smoke-test", SKIPPED, "engine not reachable: no container to start")
    if walk.gpu is False:
        return Link("smoke-test", SKIPPED, "no NVIDIA GPU: a GPU container cannot start here")
    import docker  # lazy

    image = walk.options.test_image or "ubuntu:24.04"
    request = docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])
    try:
        output = walk.client.containers.run(
            image, ["nvidia-smi", "-L"], remove=True, device_requests=[request], stderr=True
        )
    except Exception as exc:  # noqa: BLE001 - every SDK error carries the daemon's message
        text = str(getattr(exc, "explanation", "") or "") + " " + str(exc)
        stderr = getattr(exc, "stderr", None)
        if isinstance(stderr, bytes):
            text += " " + stderr.decode(errors="replace")
        found = failures.classify(text, walk.family)
        command = f"docker run --rm --gpus all {image} nvidia-smi -L"
        if found:
            return Link(
                "smoke-test",
                BROKEN,
                f"{command}: {found.title}",
                cause=found.cause,
                fix=found.fix,
                next_command=command,
                code=found.code,
                facts={"error": _short(text, 400)},
            )
        return Link(
            "smoke-test",
            BROKEN,
            f"{command} failed: {_short(text)}",
            next_command=command,
            facts={"error": _short(text, 400)},
        )
    lines = output.decode(errors="replace").strip().splitlines() if output else []
    return Link(
        "smoke-test", OK, f"{image}: " + ("; ".join(lines) or "ran"), facts={"output": lines}
    )


# ---------------------------------------------------------------------------------------------
# text


_MARKS = {OK: "✓", WARN: "!", BROKEN: "✗", SKIPPED: "-"}
_COLOURS = {OK: "\x1b[32m", WARN: "\x1b[33m", BROKEN: "\x1b[31m", SKIPPED: "\x1b[2m"}


def render_report(report: DoctorReport, color: Optional[bool] = None, width: int = 100) -> str:
    """Plain text with ✓ ! ✗ - marks; colour only on a terminal and never under NO_COLOR."""
    if color is None:
        color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    if "NO_COLOR" in os.environ:
        color = False
    pad = max(len(link.name) for link in report.links) + 2
    out = [f"gpuwizard doctor: {report.system} ({report.host})"]
    indent = " " * (pad + 2)
    for link in report.links:
        mark = _MARKS.get(link.verdict, "?")
        summary = textwrap.fill(
            link.summary,
            width,
            initial_indent=" " * (pad + 2),
            subsequent_indent=indent,
            break_on_hyphens=False,
            break_long_words=False,
        )[pad + 2 :]
        if color:
            mark = f"{_COLOURS.get(link.verdict, '')}{mark}\x1b[0m"
        out.append(f"{mark} {link.name.ljust(pad)}{summary}")
        if link.verdict in (BROKEN, WARN):
            for label, text in (("cause:", link.cause), ("fix:", link.fix)):
                if text:
                    out.append(
                        textwrap.fill(
                            text,
                            width,
                            initial_indent=f"{indent}{label:7}",
                            subsequent_indent=indent + " " * 7,
                            break_on_hyphens=False,
                        )
                    )
            if link.next_command:
                out.append(f"{indent}{'next:':7}$ {link.next_command}")
    broken = [link for link in report.links if link.verdict == BROKEN]
    warns = [link for link in report.links if link.verdict == WARN]
    if broken:
        out.append(
            f"Broken at {broken[0].name}: {len(broken)} broken, {len(warns)} warning(s). "
            "Fix the first broken link first; the later ones often follow from it."
        )
    else:
        out.append(f"All links hold ({len(warns)} warning(s))." if warns else "All links hold.")
    return "\n".join(out)


def explain(text: str, family: Optional[str] = None, host: Optional[Host] = None) -> str:
    """The human answer for a pasted error message (the CLI's `doctor --explain`).

    The fix is given for this machine's distribution unless `family` says otherwise: a
    message is most often explained on the machine that printed it.
    """
    if family is None:
        try:
            family = (host or Host()).facts.family()
        except (OSError, ImportError, WizardError):
            family = None
    return failures.explain(text, family)
