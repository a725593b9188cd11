"""The host: the one door to the machine gpuwizard changes.

`Host(root="/")` resolves every path under `root` and runs commands inside it (through
`chroot`) when it is not `/`, the way installers treat a target system mounted at a folder.
Steps and actions never touch the machine except through this object.
"""

from __future__ import annotations

import contextlib
import os
import platform
import stat
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence

from gpuwizard.errors import WizardError
from gpuwizard.host.runner import CommandResult, LineCallback, Runner, SubprocessRunner

_ARCH_NAMES = {"x86_64": "amd64", "aarch64": "arm64", "ppc64le": "ppc64el"}


@dataclass(frozen=True)
class SystemFacts:
    """What kind of system this is: enough to choose commands and remedies."""

    distro_id: str
    distro_version: str
    distro_like: tuple[str, ...]
    codename: str
    pretty_name: str
    arch: str  # Debian-style: amd64, arm64
    machine: str  # kernel-style: x86_64, aarch64
    package_manager: Optional[str]  # apt | dnf | yum | zypper | None
    init_system: str  # systemd | sysvinit | openrc | none
    euid: int
    kernel: str
    in_container: bool
    wsl: bool

    @property
    def is_root(self) -> bool:
        return self.euid == 0

    def family(self) -> str:
        """debian | rhel | suse | other: which remedies apply."""
        ids = (self.distro_id, *self.distro_like)
        if any(i in ("debian", "ubuntu") for i in ids):
            return "debian"
        if any(i in ("rhel", "fedora", "centos", "amzn") for i in ids):
            return "rhel"
        if any(i.startswith(("suse", "opensuse", "sles")) for i in ids):
            return "suse"
        return "other"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["distro_like"] = list(self.distro_like)
        data["family"] = self.family()
        return data


def _is_query(argv: Sequence[str]) -> bool:
    """A program that only reads and answers the same within one probe."""
    if not argv:
        return False
    name = os.path.basename(str(argv[0]))
    if name in ("dpkg-query", "apt-cache"):
        return True
    if name == "rpm" and len(argv) > 1 and str(argv[1]).startswith("-q"):
        return True
    return len(argv) == 2 and argv[1] == "--version"


@dataclass
class Host:
    """A machine (or a root folder holding one) and the means to look at and change it."""

    root: Path = Path("/")
    runner: Runner = field(default_factory=SubprocessRunner)
    label: str = ""  # shown in the UI, e.g. "demo: recorded H200 host"
    # The two seams where a stand-in may replace hardware or a daemon (demo mode, CI):
    # the NVML backend (None: the real pynvml, imported lazily) and the Docker engine
    # connection factory (None: the Docker SDK against options.docker_host).
    nvml_backend: Any = None
    engine_factory: Any = None
    # None: live exactly when root is /. True: a root folder that stands for a running
    # machine (the demo host's recorded files)
    running_system: Optional[bool] = None
    # True: the root is a stand-in machine (demo mode), not a mounted system. Its paths are
    # shown as that machine's system paths (the folder holding it is an install detail, never
    # shown), and a file:// URL names a file of that machine, as it would on a real host.
    stand_in_root: bool = False
    # facts a probe could not learn for lack of permission (a normal user's read-only run):
    # said in the plan and the JSON as unknown, never a crash
    unknown: list[str] = field(default_factory=list)
    # a capability, not a label: this host is the recorded demo machine, so a worker started
    # for it rebuilds the demo host (and nothing on the real machine changes); faces read it
    # to say so
    demo: bool = False
    # within one read-only probe (a plan): the answers of query programs, by argv
    _answers: Optional[dict[tuple[str, ...], CommandResult]] = field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        # absolute: the worker runs from / and must see the same root
        self.root = Path(os.path.abspath(self.root))
        if not self.root.is_dir():
            raise WizardError(
                f"The root folder {self.root} does not exist or is not a folder",
                "Pass --root the folder where the target system is mounted, or leave it out for /.",
            )

    @property
    def at_slash(self) -> bool:
        """True when the root is / itself: paths are used as they are, commands run as they
        are (no chroot)."""
        return self.root == Path("/")

    @property
    def is_live(self) -> bool:
        """True when a running system stands behind the root (its Docker engine, its services):
        / itself, or a root a stand-in host declares running (demo mode). A --root image being
        prepared is not live: nothing runs in it."""
        return self.at_slash if self.running_system is None else self.running_system

    def path(self, p: str | os.PathLike[str]) -> Path:
        """Resolve an absolute system path (e.g. /etc/docker/daemon.json) under the root, as
        `chroot` would see it: every symlink on the way, the last one included, is followed
        *inside* the root (an absolute target is re-rooted, `..` stops at the root), so
        nothing done with the result can reach the machine the root is mounted on."""
        return self._resolve(p, follow_last=True)

    def lpath(self, p: str | os.PathLike[str]) -> Path:
        """`path`, but the last component is not followed: where a symlink itself is (to
        show it, remove it or recreate it)."""
        return self._resolve(p, follow_last=False)

    def system_path(self, real: Path) -> str:
        """The system path of a real path under the root (how the target sees it)."""
        if self.at_slash:
            return str(real)
        rel = os.path.relpath(real, self.root)
        return "/" if rel == "." else "/" + rel

    def _resolve(self, p: str | os.PathLike[str], follow_last: bool) -> Path:
        rel = str(p)
        if not rel.startswith("/"):
            raise ValueError(f"host paths are absolute, got {rel!r}")
        if self.at_slash:
            return Path(rel)
        root = str(self.root)
        todo = [c for c in rel.split("/") if c not in ("", ".")]
        done: list[str] = []
        links = 0
        while todo:
            name = todo.pop(0)
            if name == "..":
                if done:
                    done.pop()
                continue
            if not todo and not follow_last:
                done.append(name)
                break
            here = os.path.join(root, *done, name)
            try:
                st = os.lstat(here)
            except OSError:  # absent or unreadable: nothing to follow that we can see
                done.append(name)
                continue
            if not stat.S_ISLNK(st.st_mode):
                done.append(name)
                continue
            links += 1
            if links > 40:
                raise WizardError(
                    f"Too many levels of symbolic links in {rel} (under {self.root})",
                    "Look at the links on that path in the root and fix the loop.",
                )
            target = os.readlink(here)
            if target.startswith("/"):
                done = []  # re-rooted: /x in the root means <root>/x, never the host's /x
            todo = [c for c in target.split("/") if c not in ("", ".")] + todo
        return Path(root, *done)

    def display(self, p: str | os.PathLike[str]) -> str:
        """How to show a path to the user: the system path, plus the root when there is one."""
        return str(p) if self.at_slash or self.stand_in_root else f"{p} (under {self.root})"

    @contextlib.contextmanager
    def probing(self) -> Iterator[None]:
        """One read-only probe (a plan): a query program asked the same question twice (the
        installed packages, an engine's --version) answers from its first run. Every step
        reads the package database, and a plan used to run dpkg-query once per step."""
        outer = self._answers is not None
        if not outer:
            self._answers = {}
        try:
            yield
        finally:
            if not outer:
                self._answers = None

    def run(
        self,
        argv: Sequence[str],
        *,
        inside: bool = True,
        on_line: Optional[LineCallback] = None,
        timeout: Optional[float] = None,
        env: Optional[Mapping[str, str]] = None,
        input: Optional[bytes] = None,
        check: bool = True,
        remedy: str = "",
        pass_fds: Sequence[int] = (),
    ) -> CommandResult:
        """Run a program; inside the root (chroot) when there is one, unless inside=False.
        `pass_fds` (extra descriptors for the child) is passed on only when used, so a
        runner that does not know it keeps working for every other command."""
        full = list(argv)
        if inside and not self.at_slash:
            full = ["chroot", str(self.root), *full]
        memo = self._answers
        if memo is not None and on_line is None and input is None and _is_query(argv):
            key = (str(check), *map(str, full), *sorted(f"{k}={v}" for k, v in (env or {}).items()))
            if key not in memo:
                memo[key] = self.runner.run(
                    full, timeout=timeout, env=env, check=check, remedy=remedy
                )
            return memo[key]
        if pass_fds:
            return self.runner.run(
                full,
                on_line=on_line,
                timeout=timeout,
                env=env,
                input=input,
                check=check,
                remedy=remedy,
                pass_fds=pass_fds,
            )
        return self.runner.run(
            full,
            on_line=on_line,
            timeout=timeout,
            env=env,
            input=input,
            check=check,
            remedy=remedy,
        )

    def note_unknown(self, what: str, exc: Optional[OSError] = None) -> None:
        """Record a fact that could not be checked (permission denied): unknown, not absent."""
        line = what if exc is None else f"{what}: {exc.strerror or exc}"
        if line not in self.unknown:
            self.unknown.append(line)

    def exists(self, p: str | os.PathLike[str]) -> bool:
        """Does this system path exist? Permission denied counts as no, and is recorded as an
        unknown fact."""
        return bool(self.probe(lambda: self.path(p).exists(), False, f"cannot check {p}"))

    def probe(self, check: Any, default: Any, what: str) -> Any:
        """Run one read-only check; permission denied gives `default` and is recorded."""
        try:
            return check()
        except PermissionError as exc:
            self.note_unknown(what, exc)
            return default

    def which(self, name: str, extra_dirs: Sequence[str] = ()) -> Optional[str]:
        """Find an executable by name on the target's PATH; returns its system path."""
        dirs = [
            *extra_dirs,
            "/usr/local/sbin",
            "/usr/local/bin",
            "/usr/sbin",
            "/usr/bin",
            "/sbin",
            "/bin",
        ]
        if self.at_slash:
            dirs = [*extra_dirs, *os.environ.get("PATH", "").split(":"), *dirs]
        seen: set[str] = set()
        for d in dirs:
            if not d or d in seen:
                continue
            seen.add(d)
            candidate = f"{d.rstrip('/')}/{name}"
            try:
                real = self.path(candidate)
                if real.is_file() and os.access(real, os.X_OK):
                    return candidate
            except (PermissionError, ValueError):
                continue  # an unreadable or relative PATH entry: not where it is
        return None

    def read_text(self, p: str, default: Optional[str] = None) -> Optional[str]:
        """Read a text file on the host, or return default when it is absent or unreadable."""
        try:
            return self.path(p).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return default

    @cached_property
    def facts(self) -> SystemFacts:
        return probe_system(self)

    def forget(self) -> None:
        """Drop cached facts after a change (a package manager installed, say)."""
        self.__dict__.pop("facts", None)


def _os_release(host: Host) -> dict[str, str]:
    """os-release of the target, read through `distro` (which honours a root folder)."""
    import distro  # lazy: only the probe needs it

    info = distro.LinuxDistribution(
        include_lsb=False,
        include_uname=False,
        include_oslevel=False,
        root_dir=None if host.at_slash else str(host.root),
    )
    data = {k.upper(): v for k, v in info.os_release_info().items()}
    if "ID_LIKE" not in data and info.like():
        data["ID_LIKE"] = info.like()
    return data


def _package_manager(host: Host) -> Optional[str]:
    for name, binary in (
        ("apt", "apt-get"),
        ("dnf", "dnf"),
        ("dnf", "dnf5"),
        ("yum", "yum"),
        ("zypper", "zypper"),
    ):
        for d in ("/usr/bin", "/bin", "/usr/sbin"):
            if host.path(f"{d}/{binary}").exists():
                return name
    return None


def _init_system(host: Host) -> str:
    if host.at_slash:
        if Path("/run/systemd/system").is_dir():
            return "systemd"
        try:
            comm = Path("/proc/1/comm").read_text().strip()
        except OSError:
            comm = ""
        if comm == "systemd":
            return "systemd"
        if comm in ("init",) and Path("/sbin/openrc").exists():
            return "openrc"
        if comm == "init":
            return "sysvinit"
        return "none"
    init = host.lpath("/sbin/init")
    try:
        target = os.readlink(init) if init.is_symlink() else ""
    except OSError:
        target = ""
    if "systemd" in target or host.path("/lib/systemd/systemd").exists():
        return "systemd"
    if host.path("/sbin/openrc").exists():
        return "openrc"
    if init.exists():
        return "sysvinit"
    return "none"


def _debian_arch(host: Host, machine: str) -> str:
    if not host.at_slash:
        status = host.read_text("/var/lib/dpkg/arch")
        if status:
            return status.split()[0]
    return _ARCH_NAMES.get(machine, machine)


def _kernel(host: Host) -> str:
    """The running kernel; for a root folder, the one its /proc/version records (a demo host),
    else none: an image being prepared runs no kernel."""
    if host.at_slash:
        return platform.release()
    text = host.read_text("/proc/version") or ""
    parts = text.split()
    return parts[2] if len(parts) > 2 and parts[:2] == ["Linux", "version"] else "none (an image)"


def probe_system(host: Host) -> SystemFacts:
    """Read the distribution, package manager, init system and user of the host."""
    rel = _os_release(host)
    machine = platform.machine()
    proc_version = host.read_text("/proc/version", "") if host.at_slash else ""
    in_container = host.at_slash and (
        Path("/.dockerenv").exists()
        or Path("/run/.containerenv").exists()
        or os.environ.get("container", "") != ""  # noqa: SIM112 - systemd sets it lower-case
    )
    return SystemFacts(
        distro_id=rel.get("ID", "unknown").lower(),
        distro_version=rel.get("VERSION_ID", ""),
        distro_like=tuple(rel.get("ID_LIKE", "").lower().split()),
        codename=rel.get("VERSION_CODENAME", "") or rel.get("UBUNTU_CODENAME", ""),
        pretty_name=rel.get("PRETTY_NAME", rel.get("NAME", "unknown Linux")),
        arch=_debian_arch(host, machine),
        machine=machine,
        package_manager=_package_manager(host),
        init_system=_init_system(host),
        euid=os.geteuid(),
        kernel=_kernel(host),
        in_container=in_container,
        wsl="microsoft" in (proc_version or "").lower()
        or Path("/proc/sys/fs/binfmt_misc/WSLInterop").exists(),
    )
