"""The Docker engine as it is: version, runtimes, CDI, the daemon.json it really reads.

Engine facts come from the Docker SDK (imported lazily), through `host.engine_factory` when a
face or a test swaps the connection; the dockerd process itself (its command line, log file,
config file) is read from /proc, because the API does not say which daemon.json it loaded.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import stat
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from gpuwizard.errors import WizardError
from gpuwizard.host.system import Host

DEFAULT_DAEMON_JSON = "/etc/docker/daemon.json"
SNAP_DAEMON_JSON = "/var/snap/docker/current/config/daemon.json"
DEFAULT_SOCKET = "/var/run/docker.sock"


@dataclass(frozen=True)
class DockerdProcess:
    """A running dockerd, as /proc shows it."""

    pid: int
    argv: tuple[str, ...]
    exe: str
    log_file: Optional[str]  # where its stderr goes, when that is a plain file

    def flag(self, *names: str) -> Optional[str]:
        """The value of a flag (`--config-file X` or `--config-file=X`)."""
        args = list(self.argv)
        for i, arg in enumerate(args):
            for name in names:
                if arg == name and i + 1 < len(args):
                    return args[i + 1]
                if arg.startswith(name + "="):
                    return arg.split("=", 1)[1]
        return None

    def hosts(self) -> list[str]:
        out = []
        args = list(self.argv)
        for i, arg in enumerate(args):
            if arg in ("-H", "--host") and i + 1 < len(args):
                out.append(args[i + 1])
            elif arg.startswith("--host="):
                out.append(arg.split("=", 1)[1])
            elif arg.startswith("-H") and len(arg) > 2:
                out.append(arg[2:].lstrip("="))
        return out


@dataclass(frozen=True)
class EngineFacts:
    """What gpuwizard knows of the Docker engine; JSON-able for plans and --json."""

    installed: bool
    reachable: bool
    docker_host: str
    error: str = ""
    version: str = ""
    api_version: str = ""
    runtimes: tuple[str, ...] = ()
    default_runtime: str = ""
    cgroup_driver: str = ""
    cgroup_version: str = ""
    rootless: bool = False
    cdi_enabled: Optional[bool] = None
    cdi_devices: tuple[str, ...] = ()
    containers_running: int = 0
    live_restore: bool = False
    snap: bool = False
    desktop: bool = False
    daemon_json: str = DEFAULT_DAEMON_JSON
    daemon_json_source: str = "the default path"
    dockerd_pid: Optional[int] = None
    dockerd_argv: tuple[str, ...] = ()
    dockerd_log: Optional[str] = None
    images: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def version_tuple(self) -> tuple[int, ...]:
        return version_tuple(self.version)

    @property
    def has_validate(self) -> bool:
        """`dockerd --validate` exists since 23.0 (20.10 says `unknown flag`)."""
        return self.version_tuple() >= (23,)


def version_tuple(text: str) -> tuple[int, ...]:
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    if not m:
        return (0,)
    return tuple(int(g) for g in m.groups() if g is not None)


def connect(host: Host, docker_host: Optional[str], timeout: float = 10.0) -> Any:
    """A Docker SDK client: through the host's engine seam when one is set."""
    if host.engine_factory is not None:
        return host.engine_factory(docker_host)
    import docker  # lazy: a heavy import nobody needs for `--help`

    url = docker_host or os.environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"
    try:
        return docker.DockerClient(base_url=url, timeout=int(timeout))
    except docker.errors.DockerException as exc:
        raise WizardError(
            f"Cannot reach Docker at {url}",
            "Start Docker (or pass --docker-host the engine's socket), then run gpuwizard again.",
            _short(exc),
        ) from exc


def read_engine(host: Host, docker_host: Optional[str], timeout: float = 10.0) -> Any:
    """The engine's read-only calls (ping, info, version, image_tags): plain HTTP over its
    socket where that reaches it, so planning never imports the Docker SDK."""
    from gpuwizard.host.engine_api import reader

    url = docker_host or os.environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"
    return reader(url, host.engine_factory, docker_host, timeout)


def socket_of(docker_host: Optional[str]) -> str:
    url = docker_host or os.environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"
    return url[len("unix://") :] if url.startswith("unix://") else url


def dockerd_processes() -> list[DockerdProcess]:
    """Every dockerd on this machine (live hosts only)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            if comm != "dockerd":
                continue
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        argv = tuple(a.decode("utf-8", "replace") for a in raw.split(b"\0") if a)
        try:
            exe = os.readlink(entry / "exe")
        except OSError:
            exe = argv[0] if argv else ""
        log = None
        try:
            target = os.readlink(entry / "fd" / "2")
            if target.startswith("/") and Path(target).is_file():
                log = target
        except OSError:
            pass
        out.append(DockerdProcess(int(entry.name), argv, exe, log))
    return sorted(out, key=lambda p: p.pid)


def find_dockerd(docker_host: Optional[str]) -> Optional[DockerdProcess]:
    """The dockerd that serves `docker_host`: the one listening on that socket."""
    procs = dockerd_processes()
    sock = socket_of(docker_host)
    for proc in procs:
        for h in proc.hosts():
            if h.startswith("unix://") and os.path.realpath(h[7:]) == os.path.realpath(sock):
                return proc
    if sock in (DEFAULT_SOCKET, "/run/docker.sock"):
        for proc in procs:
            hosts = proc.hosts()
            if not hosts or any(h.startswith("fd://") for h in hosts):
                return proc
    return None


def daemon_json_path(
    host: Host, proc: Optional[DockerdProcess], rootless: bool, explicit: Optional[str]
) -> tuple[str, str]:
    """The daemon.json the running daemon really reads, and why we think so."""
    if explicit:
        return explicit, "given with --daemon-json"
    if proc is not None:
        cf = proc.flag("--config-file")
        if cf:
            return cf, f"dockerd (pid {proc.pid}) runs with --config-file {cf}"
        if "/snap/" in proc.exe or any("/snap/" in a for a in proc.argv[:1]):
            return SNAP_DAEMON_JSON, "snap's Docker reads its config from $SNAP_DATA"
    if rootless:
        home = os.environ.get("HOME", "/root")
        xdg = os.environ.get("XDG_CONFIG_HOME", f"{home}/.config")
        return f"{xdg}/docker/daemon.json", "rootless Docker reads ~/.config/docker/daemon.json"
    if host.path("/snap/bin/docker").exists() and not host.which("dockerd"):
        return SNAP_DAEMON_JSON, "Docker is installed as a snap"
    return DEFAULT_DAEMON_JSON, "the default path"


def _homes(host: Host) -> list[tuple[str, Path]]:
    """Home folders whose docker CLI config counts: this user's ($HOME, on the machine we run
    on), root's, and every /home/* (shown path, real path)."""
    out: list[tuple[str, Path]] = []
    if host.at_slash and os.environ.get("HOME"):
        out.append((os.environ["HOME"], Path(os.environ["HOME"])))
    out.append(("/root", host.path("/root")))
    base = host.path("/home")
    with contextlib.suppress(OSError):
        out += [(f"/home/{p.name}", p) for p in sorted(base.iterdir()) if p.is_dir()]
    unique: dict[str, Path] = {}
    for shown, real in out:
        unique.setdefault(shown, real)
    return list(unique.items())


def _selects_desktop(host: Host, shown: str, home: Path) -> bool:
    """Whether a user's docker CLI config selects Desktop's context; permission denied is
    recorded as unknown (host.probe), not taken for no."""

    def read() -> bool:
        try:
            data = json.loads((home / ".docker/config.json").read_text())
        except PermissionError:
            raise
        except (OSError, ValueError):
            return False
        return isinstance(data, dict) and str(data.get("currentContext", "")).startswith(
            "desktop-linux"
        )

    return bool(host.probe(read, False, f"whether {shown} uses Docker Desktop"))


def desktop_context(host: Host, docker_host: Optional[str] = None) -> Optional[str]:
    """Why the docker command here talks to Docker Desktop, whose dockerd runs in a VM the
    host toolkit cannot reach (None: it does not). The one rule, read by steps and doctor."""
    if host.at_slash:
        if "/.docker/desktop/" in socket_of(docker_host):
            return f"{socket_of(docker_host)} is Docker Desktop's socket"
        if os.environ.get("DOCKER_CONTEXT", "").startswith("desktop-linux"):
            return "DOCKER_CONTEXT=desktop-linux"
    for shown, home in _homes(host):
        if _selects_desktop(host, shown, home):
            return f"{shown}/.docker/config.json: currentContext desktop-linux"
    return None


def desktop_installed(host: Host) -> Optional[str]:
    """The user Docker Desktop is installed for (its ~/.docker/desktop) or selected by."""
    for shown, home in _homes(host):
        installed = host.probe(
            lambda home=home: (home / ".docker/desktop").exists(),
            False,
            f"whether Docker Desktop is installed for {shown}",
        )
        if installed or _selects_desktop(host, shown, home):
            return shown.rsplit("/", 1)[-1] or shown
    return None


def unit_argv(host: Host, unit: str = "docker.service") -> list[str]:
    """The effective ExecStart of a systemd unit, as argv (see unit_args)."""
    return [a for a, _ in unit_args(host, unit)]


UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/lib/systemd/system",
             "/lib/systemd/system")  # fmt: skip


def unit_args(host: Host, unit: str = "docker.service") -> list[tuple[str, str]]:
    """A unit's ExecStart as systemd WILL run it, each word with where it comes from: the unit
    file (/etc wins over /run, /usr/lib, /lib), then its drop-ins in name order (an empty
    `ExecStart=` resets), with `$VAR`/`${VAR}` expanded from `Environment=` and
    `EnvironmentFile=` (e.g. DOCKER_OPTS in /etc/default/docker). Not the running argv: those
    files may have changed since the daemon started."""
    found = [f"{d}/{unit}" for d in UNIT_DIRS if host.exists(f"{d}/{unit}")]
    if not found:
        return []
    files = [found[0]]
    dropins: dict[str, str] = {}
    for d in reversed(UNIT_DIRS):  # a drop-in in /etc overrides one of the same name in /lib
        folder = host.path(f"{d}/{unit}.d")
        if folder.is_dir():
            for p in folder.glob("*.conf"):
                dropins[p.name] = f"{d}/{unit}.d/{p.name}"
    files += [dropins[n] for n in sorted(dropins)]
    exec_start: list[tuple[str, str]] = []
    env: dict[str, tuple[str, str]] = {}
    env_files: list[str] = []
    for f in files:
        for raw in (host.read_text(f) or "").replace("\\\n", " ").splitlines():
            key, _, value = raw.strip().partition("=")
            key, value = key.strip(), value.strip()
            if key == "ExecStart":
                exec_start = [(w, f) for w in _split(value.lstrip("-@+!:"))] if value else []
            elif key == "Environment":
                for item in _split(value):
                    k, _, v = item.partition("=")
                    env[k] = (v, f)
            elif key == "EnvironmentFile" and value:
                env_files.append(value.lstrip("-"))
    for path in env_files:
        for raw in (host.read_text(path) or "").splitlines():
            line = raw.strip()
            if line.startswith("export "):
                line = line[7:].strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            k, _, v = line.partition("=")
            env[k.strip()] = (" ".join(_split(v)), path)
    out: list[tuple[str, str]] = []
    for word, src in exec_start:
        if not word.startswith("$"):
            out.append((word, src))
            continue
        name = word[2:-1] if word.startswith("${") and word.endswith("}") else word[1:]
        if name in env:  # $VAR splits into words; an unset one is dropped, as systemd does
            value, where = env[name]
            out += [(w, f"{name} in {where}") for w in value.split()]
    return out


def _split(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


def installed(host: Host) -> bool:
    return bool(host.which("dockerd")) or host.path("/snap/bin/docker").exists()


def probe_engine(
    host: Host, docker_host: Optional[str] = None, daemon_json: Optional[str] = None
) -> EngineFacts:
    """Read-only: the engine's facts, or why it cannot be reached."""
    url = docker_host or os.environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"
    is_installed = installed(host) or host.engine_factory is not None
    proc = find_dockerd(docker_host) if host.is_live else None
    base: dict[str, Any] = {
        "installed": is_installed,
        "docker_host": url,
        "desktop": desktop_context(host, docker_host) is not None,
        "snap": bool(proc and "/snap/" in proc.exe) or host.path("/snap/bin/docker").exists(),
        "dockerd_pid": proc.pid if proc else None,
        "dockerd_argv": proc.argv if proc else (),
        "dockerd_log": proc.log_file if proc else None,
    }
    if not host.is_live and host.engine_factory is None:
        path, why = daemon_json_path(host, None, False, daemon_json)
        return EngineFacts(
            reachable=False,
            error="a --root image has no running engine",
            daemon_json=path,
            daemon_json_source=why,
            **base,
        )
    if (
        host.engine_factory is None
        and url.startswith("unix://")
        and not os.path.exists(url[len("unix://") :])
    ):
        # no socket, no engine: say what connect() would say without importing the Docker
        # SDK (0.15-0.2 s of `gpuwizard status` on a machine without Docker)
        path, why = daemon_json_path(host, proc, False, daemon_json)
        return EngineFacts(
            reachable=False,
            error=f"Cannot reach Docker at {url}",
            daemon_json=path,
            daemon_json_source=why,
            **base,
        )
    try:
        client = read_engine(host, docker_host, timeout=10)
        try:
            info = client.info()
            version = client.version()
            images = client.image_tags()
        finally:
            client.close()
    except Exception as exc:  # the SDK raises many kinds; all mean "not reachable"
        path, why = daemon_json_path(host, proc, False, daemon_json)
        return EngineFacts(
            reachable=False, error=_short(exc), daemon_json=path, daemon_json_source=why, **base
        )
    security = [str(s) for s in info.get("SecurityOptions") or []]
    rootless = any("rootless" in s for s in security)
    path, why = daemon_json_path(host, proc, rootless, daemon_json)
    cdi = _cdi_enabled(info, version.get("Version", ""))
    devices = tuple(
        str(d.get("ID", "")) for d in info.get("DiscoveredDevices") or [] if isinstance(d, dict)
    )
    return EngineFacts(
        reachable=True,
        version=str(version.get("Version", "")),
        api_version=str(version.get("ApiVersion", "")),
        runtimes=tuple(sorted((info.get("Runtimes") or {}).keys())),
        default_runtime=str(info.get("DefaultRuntime", "")),
        cgroup_driver=str(info.get("CgroupDriver", "")),
        cgroup_version=str(info.get("CgroupVersion", "")),
        rootless=rootless,
        cdi_enabled=cdi,
        cdi_devices=devices,
        containers_running=int(info.get("ContainersRunning", 0) or 0),
        live_restore=bool(info.get("LiveRestoreEnabled", False)),
        daemon_json=path,
        daemon_json_source=why,
        images=images,
        **base,
    )


def _cdi_enabled(info: dict[str, Any], version: str) -> Optional[bool]:
    """CDI: opt-in on Docker 25 .. 28.1 (features.cdi), on by default from 28.2."""
    v = version_tuple(version)
    if v < (25,):
        return False
    if "CDISpecDirs" in info:
        return bool(info.get("CDISpecDirs"))
    return v >= (28, 2)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def install_remedy(host: Host) -> str:
    """How to install Docker Engine on this distribution."""
    fam = host.facts.family()
    distro = host.facts.distro_id
    if fam == "debian":
        return (
            "Install Docker Engine: `sudo apt-get install docker.io` (the distribution's "
            "package), or docker-ce from Docker's repository "
            "(https://docs.docker.com/engine/install/"
            + ("ubuntu" if distro == "ubuntu" else "debian")
            + "/)."
        )
    if distro == "fedora":
        return (
            "Install Docker Engine: `sudo dnf install moby-engine`, or docker-ce from "
            "Docker's repository (https://docs.docker.com/engine/install/fedora/)."
        )
    if fam == "rhel":
        return (
            "Install Docker Engine: docker-ce from Docker's repository "
            "(https://docs.docker.com/engine/install/rhel/); RHEL ships podman instead."
        )
    if fam == "suse":
        return "Install Docker Engine: `sudo zypper install docker`, then start it."
    return "Install Docker Engine (https://docs.docker.com/engine/install/), then start it."


DESKTOP_CAUSE = (
    "The docker CLI talks to Docker Desktop, whose dockerd runs inside a virtual "
    "machine: the NVIDIA toolkit installed on this host cannot reach it"
)
DESKTOP_REMEDY = (
    "Use Docker Engine on this host (docker-ce or docker.io) and switch to it: "
    "`docker context use default`. Docker Desktop for Linux has no GPU support."
)


def wait_for_engine(
    host: Host,
    docker_host: Optional[str],
    deadline: float,
    on_tick: Any = None,
    interval: float = 0.05,  # a refused connection on the socket costs nothing
) -> dict[str, Any]:
    """Wait until the engine answers (or `deadline` seconds pass); returns its info."""
    start = time.monotonic()
    last = ""
    while True:
        elapsed = time.monotonic() - start
        try:
            client = read_engine(host, docker_host, timeout=5)
            try:
                client.ping()
                info: dict[str, Any] = client.info()
                return info
            finally:
                client.close()
        except Exception as exc:  # not up yet; any SDK error means "try again"
            last = _short(exc)
        if elapsed >= deadline:
            raise WizardError(
                f"Docker did not answer within {deadline:.0f} s",
                "Look at the daemon's log below; fix the cause, then run gpuwizard again.",
                last,
            )
        if on_tick is not None:
            on_tick(elapsed)
        time.sleep(interval)


def process_start_time(pid: int, proc: Path = Path("/proc")) -> Optional[float]:
    """When a process started, in seconds since the epoch, to about 10 ms: its start tick
    (/proc/PID/stat) after boot, and boot as now minus /proc/uptime (btime in /proc/stat is
    whole seconds). The engine is a process of the running kernel even when a root folder is
    looked at, so this is always this machine's /proc."""
    try:
        line = (proc / str(pid) / "stat").read_text()
        uptime = float((proc / "uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    fields = line.rsplit(")", 1)[-1].split()
    if len(fields) < 20 or not fields[19].isdigit():
        return None
    return time.time() - uptime + int(fields[19]) / os.sysconf("SC_CLK_TCK")


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


def process_argv(pid: int) -> tuple[str, ...]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ()
    return tuple(a.decode("utf-8", "replace") for a in raw.split(b"\0") if a)


def pidfile_pid(pidfile: str) -> Optional[int]:
    """The live pid a pidfile names (None: unreadable, or that process is gone)."""
    try:
        text = Path(pidfile).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and Path(f"/proc/{text}").exists() else None


def hook_found_at_start(pid: int, before: float, proc: Path = Path("/proc")) -> Optional[str]:
    """Where dockerd `pid` found the NVIDIA hook when it started, or None when that cannot be
    vouched for from here.

    dockerd registers its NVIDIA device driver (what `--gpus` needs) in its Go init, once, by
    `exec.LookPath("nvidia-container-runtime-hook")` on its own PATH, in its own mount
    namespace: in every release from 20.10 to 29. This reads the same facts: the PATH it was
    started with (/proc/PID/environ), each absolute entry resolved under its root
    (/proc/PID/root, so a snap's or rootless daemon's view), the first match that is an
    executable file (LookPath's rule). The hook must predate `before` (a moment before the
    restart, on the same clock as the file's ctime, which a package install cannot backdate as
    it does mtime) and the process must have started after it: a daemon older than `before` is
    not the restarted one. None where any of that is unreadable, or no hook is found; the
    caller then asks the engine itself."""
    started = process_start_time(pid, proc)
    if started is None or started < before - 0.05:  # 10 ms ticks: a margin, not a guess
        return None
    dirs = process_path(pid, proc)
    if not dirs:
        return None
    from gpuwizard.host.toolkit import HOOK

    root = proc / str(pid) / "root"
    for d in dirs:
        if not d.startswith("/"):
            continue  # LookPath refuses relative results (Go 1.19, Docker 23 on)
        candidate = root / d.lstrip("/") / HOOK
        try:
            st = candidate.stat()
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) or not st.st_mode & 0o111:
            continue
        return f"{d.rstrip('/')}/{HOOK}" if st.st_ctime < before else None
    return None
