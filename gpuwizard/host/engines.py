"""Every container engine on the host, read once: Docker (and whether `docker` is Podman),
Podman, containerd (standalone, or k3s/RKE2's own), CRI-O.

Presence comes from the files (binaries, configs, units), versions from the binaries
themselves, "running" from /proc. Nothing here changes the machine.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from gpuwizard.errors import WizardError
from gpuwizard.host.system import Host

CONTAINERD_CONFIG = "/etc/containerd/config.toml"
CONTAINERD_DROPIN_DIR = "/etc/containerd/conf.d"
CONTAINERD_DROPIN = "/etc/containerd/conf.d/99-nvidia.toml"
CDI_DIRS = ("/etc/cdi", "/var/run/cdi")

# k3s and RKE2 generate containerd's config.toml at every start from a template beside it
BUNDLED = {
    "k3s": {
        "config": "/var/lib/rancher/k3s/agent/etc/containerd/config.toml",
        "binary": "/usr/local/bin/k3s",
        "services": ("k3s", "k3s-agent"),
        "socket": "/run/k3s/containerd/containerd.sock",
    },
    "rke2": {
        "config": "/var/lib/rancher/rke2/agent/etc/containerd/config.toml",
        "binary": "/usr/local/bin/rke2",
        "services": ("rke2-server", "rke2-agent"),
        "socket": "/run/k3s/containerd/containerd.sock",
    },
}


def version_tuple(text: str) -> tuple[int, ...]:
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    if not m:
        return (0,)
    return tuple(int(g) for g in m.groups() if g is not None)


def running_programs() -> dict[str, list[int]]:
    """Process names (comm) -> pids, from /proc."""
    out: dict[str, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
        except OSError:
            continue
        out.setdefault(comm, []).append(int(entry))
    return out


def _version(host: Host, argv: list[str]) -> str:
    """A program's version line, or "" when it does not answer."""
    try:
        res = host.run(argv, check=False, timeout=15)
    except (WizardError, OSError):
        return ""
    if res.returncode != 0:
        return ""
    first = next((line for line in res.stdout.splitlines() if line.strip()), "")
    m = re.search(r"v?(\d+\.\d+(?:\.\d+)?(?:[~+-][\w.~+-]*)?)", first)
    return m.group(1) if m else first.strip()


def _unit_exists(host: Host, name: str) -> bool:
    return any(
        host.path(f"{d}/{name}.service").exists()
        for d in ("/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system")
    )


# -- Podman ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PodmanFacts:
    installed: bool
    path: str = ""
    version: str = ""
    # the CDI schema versions this Podman reads (4.x: up to 0.5.0, verified with 4.3.1)
    cdi_max_version: str = ""
    cdi_dirs: tuple[str, ...] = CDI_DIRS
    rootless_users: tuple[str, ...] = ()  # users with their own container storage
    socket_unit: bool = False

    def version_tuple(self) -> tuple[int, ...]:
        return version_tuple(self.version)


def cdi_max_version(podman_version: str) -> str:
    """The newest CDI spec version a Podman release accepts (the CDI library it vendors)."""
    v = version_tuple(podman_version)
    if v < (4,):
        return "0.3.0"
    if v < (5,):
        return "0.5.0"  # 4.3.1: a 0.6.0 spec gives "unresolvable CDI devices"
    if v < (5, 2):
        return "0.6.0"
    return "0.8.0"


def probe_podman(host: Host) -> PodmanFacts:
    path = host.which("podman")
    if not path:
        return PodmanFacts(installed=False)
    version = _version(host, [path, "--version"]) if host.is_live else ""
    users = []
    home = host.path("/home")
    if home.is_dir():
        for d in sorted(home.iterdir()):
            if (d / ".local/share/containers/storage").is_dir():
                users.append(d.name)
    return PodmanFacts(
        installed=True,
        path=path,
        version=version,
        cdi_max_version=cdi_max_version(version) if version else "",
        rootless_users=tuple(users),
        socket_unit=host.path("/lib/systemd/system/podman.socket").exists()
        or host.path("/usr/lib/systemd/system/podman.socket").exists(),
    )


def docker_is_podman(host: Host) -> bool:
    """`docker` is the podman-docker shim (a script that execs podman, or a link to it)."""
    path = host.which("docker")
    if not path:
        return False
    real = host.path(path)
    try:
        if real.is_symlink() and "podman" in os.readlink(real):
            return True
        if real.stat().st_size > 4096:
            return False  # a real docker CLI is a large binary
        return b"podman" in real.read_bytes()
    except OSError:
        return False


# -- containerd ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ContainerdConfig:
    """The top-level keys of a containerd config.toml that decide how to add a runtime."""

    exists: bool
    version: int  # the config schema: 2 (containerd 1.x), 3 (2.x); 1 when unset on 1.x
    imports: tuple[str, ...] = ()
    cri_disabled: bool = False
    has_nvidia_runtime: bool = False
    enable_cdi: Optional[bool] = None
    error: str = ""


_TABLE = re.compile(r"^\s*\[")


def parse_config(text: Optional[str], default_version: int) -> ContainerdConfig:
    """Read the few keys gpuwizard needs from config.toml without a TOML library (Python
    3.9 has none): `version` and `imports` live before the first table, by TOML's rules."""
    if text is None:
        return ContainerdConfig(exists=False, version=default_version)
    version = 1 if default_version == 2 else default_version
    imports: list[str] = []
    disabled: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].split("#", 1)[0].strip()
        if _TABLE.match(line):
            break
        m = re.match(r"^(version|imports|disabled_plugins)\s*=\s*(.*)$", line)
        if m:
            key, value = m.groups()
            # a list may span lines: read up to its closing bracket
            while value.count("[") > value.count("]") and i + 1 < len(lines):
                i += 1
                value += " " + lines[i].split("#", 1)[0].strip()
            if key == "version":
                try:
                    version = int(value)
                except ValueError:
                    return ContainerdConfig(True, version, error=f"version = {value} is no number")
            else:
                items = re.findall(r"\"([^\"]*)\"|'([^']*)'", value)
                target = imports if key == "imports" else disabled
                target.extend(a or b for a, b in items)
        i += 1
    cri_names = ("cri", "io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime")
    cdi = re.search(r"^\s*enable_cdi\s*=\s*(true|false)", text, re.M)
    return ContainerdConfig(
        exists=True,
        version=version,
        imports=tuple(imports),
        cri_disabled=any(d in cri_names for d in disabled),
        has_nvidia_runtime=bool(re.search(r"\.runtimes\.(nvidia|\"nvidia\")\]", text)),
        enable_cdi=None if not cdi else cdi.group(1) == "true",
    )


@dataclass(frozen=True)
class ConfigDump:
    """`containerd --config F config dump`: the effective merged config, or why not."""

    text: str
    error: str = ""


def config_dump(host: Host, binary: str, config: str) -> ConfigDump:
    try:
        res = host.run([binary, "--config", config, "config", "dump"], check=False, timeout=30)
    except (WizardError, OSError) as exc:
        return ConfigDump("", str(exc))
    if res.returncode != 0:
        return ConfigDump("", (res.stderr or res.stdout).strip()[-2000:] or "exit status nonzero")
    return ConfigDump(res.stdout)


def imports_dropin(imports: tuple[str, ...], dropin: str = CONTAINERD_DROPIN) -> bool:
    """Whether an `imports` list takes in the drop-in file (a glob or the path itself)."""
    import fnmatch

    return any(fnmatch.fnmatch(dropin, pattern) for pattern in imports)


@dataclass(frozen=True)
class ContainerdFacts:
    installed: bool
    flavour: str = "standalone"  # standalone | k3s | rke2
    path: str = ""
    version: str = ""
    running: bool = False
    pid: Optional[int] = None
    service: str = "containerd"
    socket: str = "/run/containerd/containerd.sock"
    config_path: str = CONTAINERD_CONFIG
    config: Optional[ContainerdConfig] = None
    template: str = ""  # k3s/RKE2: config.toml.tmpl beside the generated config
    template_exists: bool = False
    serves_docker: bool = False  # dockerd runs on it

    def version_tuple(self) -> tuple[int, ...]:
        return version_tuple(self.version)

    @property
    def cdi_default(self) -> bool:
        """containerd 2.x enables CDI by default; 1.7 needs enable_cdi = true."""
        return self.version_tuple() >= (2,)

    @property
    def config_version(self) -> int:
        return 3 if self.version_tuple() >= (2,) else 2


def probe_containerd(host: Host, procs: Optional[dict[str, list[int]]] = None) -> ContainerdFacts:
    procs = procs if procs is not None else (running_programs() if host.is_live else {})
    for flavour, info in BUNDLED.items():
        if host.path(str(info["binary"])).exists() or host.path(str(info["config"])).exists():
            config_path = str(info["config"])
            services = info["services"]
            service = next((s for s in services if _unit_exists(host, s)), services[0])
            pids = procs.get(flavour + "-server", []) or procs.get(flavour, [])
            return ContainerdFacts(
                installed=True,
                flavour=flavour,
                path=str(info["binary"]),
                version="",
                running=bool(pids),
                pid=pids[0] if pids else None,
                service=str(service),
                socket=str(info["socket"]),
                config_path=config_path,
                config=parse_config(host.read_text(config_path), 2),
                template=config_path + ".tmpl",
                template_exists=host.path(config_path + ".tmpl").exists(),
            )
    path = host.which("containerd")
    if not path:
        return ContainerdFacts(installed=False)
    version = _version(host, [path, "--version"]) if host.is_live else ""
    pids = procs.get("containerd", [])
    default = 3 if version_tuple(version) >= (2,) else 2
    return ContainerdFacts(
        installed=True,
        path=path,
        version=version,
        running=bool(pids),
        pid=pids[0] if pids else None,
        config=parse_config(host.read_text(CONTAINERD_CONFIG), default),
        serves_docker=bool(procs.get("dockerd")),
    )


# -- CRI-O -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CrioFacts:
    installed: bool
    path: str = ""
    version: str = ""
    running: bool = False
    dropin_dir: str = "/etc/crio/crio.conf.d"


def probe_crio(host: Host, procs: Optional[dict[str, list[int]]] = None) -> CrioFacts:
    path = host.which("crio")
    if not path:
        return CrioFacts(installed=False)
    procs = procs if procs is not None else (running_programs() if host.is_live else {})
    return CrioFacts(
        installed=True,
        path=path,
        version=_version(host, [path, "--version"]) if host.is_live else "",
        running=bool(procs.get("crio")),
    )


# -- all of them -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Engines:
    docker_installed: bool
    docker_running: bool
    docker_is_podman: bool
    podman: PodmanFacts
    containerd: ContainerdFacts
    crio: CrioFacts
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def present(self) -> list[str]:
        out = []
        if self.docker_installed:
            out.append("docker")
        if self.podman.installed:
            out.append("podman")
        if self.containerd.installed:
            out.append("containerd" if self.containerd.flavour == "standalone" else "k3s")
        if self.crio.installed:
            out.append("cri-o")
        return out

    def lines(self) -> list[str]:
        """One line per engine, for the overview and `status`."""
        out = []
        if self.docker_is_podman:
            out.append(
                "docker: the podman-docker shim (runs Podman; `--gpus` is ignored there, "
                "use `--device nvidia.com/gpu=all`)"
            )
        elif self.docker_installed:
            out.append("Docker: " + ("running" if self.docker_running else "installed, stopped"))
        if self.podman.installed:
            text = f"Podman {self.podman.version or '(version unknown)'}"
            if self.podman.cdi_max_version:
                text += f" · reads CDI specs up to {self.podman.cdi_max_version}"
            if self.podman.rootless_users:
                text += " · rootless users: " + ", ".join(self.podman.rootless_users)
            out.append(text)
        c = self.containerd
        if c.installed:
            name = "containerd" if c.flavour == "standalone" else f"{c.flavour}'s containerd"
            text = f"{name} {c.version or ''}".rstrip()
            text += " · running" if c.running else " · not running"
            if c.serves_docker:
                text += " · under Docker"
            if c.config and c.config.cri_disabled:
                text += " · CRI plugin disabled"
            out.append(text)
        if self.crio.installed:
            out.append(
                f"CRI-O {self.crio.version or ''}".rstrip()
                + (" · running" if self.crio.running else " · not running")
            )
        return out


def probe_engines(host: Host) -> Engines:
    procs = running_programs() if host.is_live else {}
    docker_bin = host.which("dockerd")
    shim = docker_is_podman(host)
    return Engines(
        docker_installed=bool(docker_bin),
        docker_running=bool(procs.get("dockerd")),
        docker_is_podman=shim,
        podman=probe_podman(host),
        containerd=probe_containerd(host, procs),
        crio=probe_crio(host, procs),
    )


# -- CDI specs, as an engine reads them (until host/cdi.py is the one reader) ----------------
@dataclass(frozen=True)
class SpecSummary:
    path: str
    cdi_version: str
    kind: str
    devices: tuple[str, ...]
    device_nodes: tuple[str, ...]  # host paths of the device nodes it names
    mounts: tuple[str, ...]  # container paths it mounts
    mode: int = 0o644
    error: str = ""


def summarize_spec(path: str, data: bytes, mode: int = 0o644) -> SpecSummary:
    """cdiVersion, kind, device names and node paths of a CDI spec (JSON, or YAML)."""
    import json

    doc: Any = None
    try:
        doc = json.loads(data)
    except ValueError:
        try:
            import yaml  # lazy; PyYAML is on most hosts, and JSON specs need none

            doc = yaml.safe_load(data)
        except ImportError:
            text = data.decode("utf-8", "replace")
            ver = re.search(r"^cdiVersion:\s*\"?([\w.]+)", text, re.M)
            kind = re.search(r"^kind:\s*\"?([\w./-]+)", text, re.M)
            names = re.findall(r"^-\s+name:\s*\"?([\w.:-]+)", text, re.M)
            return SpecSummary(
                path,
                ver.group(1) if ver else "",
                kind.group(1) if kind else "",
                tuple(names),
                (),
                (),
                mode,
            )
        except Exception as exc:  # yaml.YAMLError, without importing yaml at module level
            return SpecSummary(path, "", "", (), (), (), mode, f"not valid YAML: {exc}")
    if not isinstance(doc, dict):
        return SpecSummary(path, "", "", (), (), (), mode, "not a CDI spec (no mapping)")
    edits = [doc.get("containerEdits") or {}]
    names = []
    for dev in doc.get("devices") or []:
        if isinstance(dev, dict):
            names.append(str(dev.get("name", "")))
            edits.append(dev.get("containerEdits") or {})
    nodes: list[str] = []
    mounts: list[str] = []
    for e in edits:
        for n in e.get("deviceNodes") or []:
            p = str(n.get("hostPath") or n.get("path") or "")
            if p and p not in nodes:
                nodes.append(p)
        for m in e.get("mounts") or []:
            c = str(m.get("containerPath") or "")
            if c and c not in mounts:
                mounts.append(c)
    return SpecSummary(
        path,
        str(doc.get("cdiVersion", "")),
        str(doc.get("kind", "")),
        tuple(names),
        tuple(nodes),
        tuple(mounts),
        mode,
    )


def cdi_specs(
    host: Host, dirs: tuple[str, ...] = CDI_DIRS, planned: Optional[dict[str, Any]] = None
) -> list[SpecSummary]:
    """The specs in the folders an engine reads, with planned files (a cdi step) on top."""
    found: dict[str, SpecSummary] = {}
    for d in dirs:
        folder = host.path(d)
        if not folder.is_dir():
            continue
        for f in sorted(folder.iterdir()):
            if f.suffix in (".json", ".yaml", ".yml") and f.is_file():
                try:
                    found[f"{d}/{f.name}"] = summarize_spec(
                        f"{d}/{f.name}", f.read_bytes(), f.stat().st_mode & 0o7777
                    )
                except OSError as exc:
                    found[f"{d}/{f.name}"] = SpecSummary(
                        f"{d}/{f.name}", "", "", (), (), (), 0, str(exc)
                    )
    for path, data in (planned or {}).items():
        if any(path.startswith(d + "/") for d in dirs) and path.endswith(
            (".json", ".yaml", ".yml")
        ):
            if data is None:
                found.pop(path, None)
            else:
                found[path] = summarize_spec(path, data)
    return list(found.values())
