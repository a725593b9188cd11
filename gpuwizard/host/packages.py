"""Package managers, as gpuwizard needs them: what is installed, which versions a repository
offers, where an installed package came from, who holds the dpkg lock, and the commands that
install, remove and simulate.

One adapter per family (apt, dnf/yum, zypper). Parsing happens here, once, into plain types;
steps and actions never read a package manager's output themselves. With a root folder, apt
runs inside it (chroot) and the RPM tools run outside with their own root flag
(`dnf --installroot`, `zypper --root`, `rpm --root`), which is how those tools are meant to
be used on a target that is not running.
"""

from __future__ import annotations

import contextlib
import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar, Iterator, Mapping, Optional, Sequence

from gpuwizard.errors import WizardError
from gpuwizard.host.runner import CommandResult, LineCallback
from gpuwizard.host.system import Host
from gpuwizard.host.toolkit import EXACT_MATCH_SINCE as EXACT_MATCH_SINCE  # re-exported
from gpuwizard.host.toolkit import LEGACY_PACKAGES as LEGACY_PACKAGES
from gpuwizard.host.toolkit import SECURITY_FLOOR as SECURITY_FLOOR
from gpuwizard.host.toolkit import TOOLKIT_PACKAGES as TOOLKIT_PACKAGES

# NVIDIA's own builds: 1.17.8-1, 1.18.0~rc.1-1 (apt); 1.17.8-1 (rpm). Vendor rebuilds add
# their own suffix (Lambda: 1.11.0-0lambda0.22.04.1).
NVIDIA_VERSION = re.compile(r"^\d+\.\d+\.\d+(~rc\.\d+)?-1$")

APT_ENV = {
    "DEBIAN_FRONTEND": "noninteractive",
    "APT_LISTCHANGES_FRONTEND": "none",
    "NEEDRESTART_MODE": "l",
}


@dataclass(frozen=True)
class Change:
    """One package a transaction changes: before None = newly installed, after None = removed."""

    name: str
    before: Optional[str]
    after: Optional[str]

    def describe(self) -> str:
        if self.before is None:
            return f"install {self.name} {self.after}"
        if self.after is None:
            return f"remove {self.name} {self.before}"
        return f"change {self.name} {self.before} -> {self.after}"


@dataclass(frozen=True)
class LockHolder:
    """A process that holds the package manager's lock."""

    pid: Optional[int]
    command: str
    path: str

    def describe(self) -> str:
        who = f"pid {self.pid}" if self.pid else "an unknown process"
        return f"{who} ({self.command})" if self.command else who


def version_key(version: str) -> tuple[object, ...]:
    """A sort key that orders NVIDIA's versions (1.9.0 < 1.17.8 < 1.20.1; ~rc sorts first)."""
    upstream, _, revision = version.partition("-")
    if ":" in upstream:
        upstream = upstream.split(":", 1)[1]
    main, _, rc = upstream.partition("~")
    nums = tuple(int(x) if x.isdigit() else 0 for x in re.split(r"[.+]", main))
    return (nums, 0 if rc else 1, rc, revision)


def upstream_of(version: str) -> str:
    v = version.split(":", 1)[-1]
    return v.split("-", 1)[0].split("~", 1)[0]


def below_floor(version: str) -> bool:
    return version_key(upstream_of(version)) < version_key(SECURITY_FLOOR)


def is_nvidia_build(version: str) -> bool:
    return bool(NVIDIA_VERSION.match(version.split(":", 1)[-1]))


def _local_tool(host: Host, name: str) -> Optional[str]:
    """A program on the PATH of the machine we run on (it reads a root folder's database); an
    unreadable PATH entry is recorded as unknown, not taken for "not there"."""
    for d in [*os.environ.get("PATH", "").split(":"), "/usr/bin", "/bin"]:
        candidate = Path(d) / name
        try:
            if d and candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
        except PermissionError as exc:
            host.note_unknown(f"cannot look for {name} in {d}", exc)
    return None


def needs_exact_match(version: str) -> bool:
    """Since 1.18 the four packages must be at exactly one version."""
    return version_key(upstream_of(version)) >= version_key(EXACT_MATCH_SINCE)


def read_installed(
    host: Host, names: Sequence[str], kind: Optional[str]
) -> Optional[dict[str, str]]:
    """name -> version of those installed, read from the package database without a package
    manager's help (a root folder may have no dpkg of its own: this machine's dpkg-query or
    rpm reads its database). `kind`: the host's package manager, when known. None when
    there is no database to read."""
    if kind == "apt" or host.path("/var/lib/dpkg/status").exists():
        fmt = "${Package}\t${Version}\t${db:Status-Abbrev}\n"
        if host.is_live or host.path("/usr/bin/dpkg-query").exists():
            argv, inside = ["dpkg-query", "-W", f"-f={fmt}", *names], True
        elif _local_tool(host, "dpkg-query") and host.path("/var/lib/dpkg/status").exists():
            admindir = f"--admindir={host.path('/var/lib/dpkg')}"
            argv, inside = ["dpkg-query", admindir, "-W", f"-f={fmt}", *names], False
        else:
            return None
        result = host.run(argv, inside=inside, check=False, timeout=30)
        out = {}
        for line in result.stdout.splitlines():
            parts = line.split("\t")
            if len(parts) >= 3 and parts[2].startswith("ii"):
                out[parts[0]] = parts[1]
        return out
    if kind in ("dnf", "yum", "zypper") or host.path("/var/lib/rpm").exists():
        if not _local_tool(host, "rpm"):
            return None
        argv = ["rpm", "-q", "--qf", "%{NAME}\t%{VERSION}-%{RELEASE}\n", *names]
        if not host.is_live:
            argv[1:1] = ["--root", str(host.root)]
        result = host.run(argv, inside=False, check=False, timeout=30)
        return parse_rpm_qa(result.stdout)
    return None


class PackageManager(ABC):
    """What gpuwizard asks of apt, dnf/yum and zypper."""

    name: ClassVar[str]

    def __init__(self, host: Host) -> None:
        self.host = host

    @abstractmethod
    def installed(self, names: Optional[Sequence[str]] = None) -> dict[str, str]:
        """name -> version of the installed packages (all of them when names is None)."""

    @abstractmethod
    def available(self, name: str) -> list[str]:
        """Versions the configured repositories offer, newest first."""

    @abstractmethod
    def origins(self, name: str) -> list[str]:
        """Where the installed version of a package can be fetched from (URLs); empty when
        no configured repository has it (a local or vendor build)."""

    @abstractmethod
    def full_version(self, version: str) -> str:
        """1.20.1 -> 1.20.1-1 (the four packages carry NVIDIA's `-1` release)."""

    @abstractmethod
    def simulate_install(self, specs: Mapping[str, str]) -> list[Change]:
        """What installing name=version would change, without changing anything."""

    def resolve_install(self, specs: Mapping[str, str]) -> tuple[list[Change], bool]:
        """What installing name=version would change, and whether the toolkit's own
        repository can serve that install alone (then `install(..., alone=True)` may read
        only it). Managers without that mode always answer False."""
        return self.simulate_install(specs), False

    @abstractmethod
    def simulate_remove(self, names: Sequence[str]) -> list[Change]:
        """What removing the packages would change (dependents included)."""

    @abstractmethod
    def install(
        self,
        specs: Mapping[str, str],
        *,
        on_line: Optional[LineCallback] = None,
        status: Optional[Callable[[float, str], None]] = None,
        allow_downgrades: bool = False,
        alone: bool = False,
    ) -> CommandResult:
        """Install exactly these versions; alone: from the toolkit's own repository only,
        as `resolve_install` found possible (ignored where the manager has no such mode)."""

    @abstractmethod
    def remove(
        self, names: Sequence[str], *, on_line: Optional[LineCallback] = None, exact: bool = False
    ) -> CommandResult:
        """Remove (never purge). exact=True refuses to remove anything else (rollback)."""

    def lock_holder(self) -> Optional[LockHolder]:
        """Who holds the package manager's lock now (None: free)."""
        return None

    def purge(
        self, names: Sequence[str], *, on_line: Optional[LineCallback] = None
    ) -> CommandResult:
        """Remove exactly these packages with their configuration files (rollback of what
        gpuwizard installed fresh). rpm removes unmodified %config files on erase."""
        return self.remove(names, on_line=on_line, exact=True)

    def config_only(self, names: Sequence[str]) -> list[str]:
        """Of these, the packages removed earlier whose configuration files stayed (dpkg's
        `rc`): a rollback must not purge what was there before gpuwizard came."""
        return []

    def root_args(self) -> list[str]:
        return []


# -- locks -----------------------------------------------------------------------------------


def _proc_cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return " ".join(p.decode("utf-8", "replace") for p in raw.split(b"\0") if p)


def file_lock_holder(path: Path, shown: str) -> Optional[LockHolder]:
    """Who holds a lock on a file: /proc/locks lists both fcntl (dpkg's) and flock locks
    with the holder's pid, matched by device and inode."""
    try:
        st = path.stat()
    except OSError:
        return None
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        locks = Path("/proc/locks").read_text()
    except OSError:
        locks = ""
    for line in locks.splitlines():
        fields = line.split()
        # "1: POSIX  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; blocked waiters carry "->"
        if "->" in fields:
            continue
        if len(fields) >= 6 and _same_dev(fields[5], dev):
            pid = int(fields[4]) if fields[4].isdigit() else None
            return LockHolder(pid, _proc_cmdline(pid) if pid else "", shown)
    return None


def _same_dev(field: str, want: str) -> bool:
    try:
        maj, minor, ino = field.split(":")
        wmaj, wmin, wino = want.split(":")
        return (
            int(maj, 16) == int(wmaj, 16)
            and int(minor, 16) == int(wmin, 16)
            and int(ino) == int(wino)
        )
    except ValueError:
        return False


# -- apt -------------------------------------------------------------------------------------

_INST = re.compile(r"^Inst (\S+) (?:\[(\S+)\] )?\((\S+)")
_REMV = re.compile(r"^(?:Remv|Purg) (\S+) (?:\[(\S+)\])?")


def parse_apt_simulation(text: str) -> list[Change]:
    """`apt-get -s` lines: `Inst name [old] (new …)` and `Remv name [old]`."""
    changes: list[Change] = []
    for line in text.splitlines():
        m = _INST.match(line)
        if m:
            changes.append(Change(m.group(1).split(":")[0], m.group(2), m.group(3)))
            continue
        m = _REMV.match(line)
        if m:
            changes.append(Change(m.group(1).split(":")[0], m.group(2), None))
    return changes


def parse_madison(text: str) -> list[tuple[str, str]]:
    """`apt-cache madison` lines -> (version, source)."""
    out = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) >= 3:
            out.append((parts[1], parts[2]))
    return out


def parse_policy_origins(text: str) -> list[str]:
    """The sources of the installed (***) version in `apt-cache policy`."""
    origins: list[str] = []
    in_installed = False
    for line in text.splitlines():
        stripped = line.strip()
        if line.startswith(" *** "):
            in_installed = True
            continue
        if in_installed:
            # source lines are indented deeper and start with a priority number
            m = re.match(r"^\s{8}-?\d+ (\S+)", line)
            if not m:
                break
            if m.group(1) != "/var/lib/dpkg/status":
                origins.append(stripped.split(" ", 1)[1])
    return origins


class AptPackages(PackageManager):
    """apt and dpkg, inside the root."""

    name = "apt"
    LOCK = "/var/lib/dpkg/lock-frontend"
    LOCKS = ("/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock")

    def _run(self, argv: list[str], **kw: object) -> CommandResult:
        env = dict(APT_ENV)
        return self.host.run(argv, env=env, **kw)  # type: ignore[arg-type]

    def installed(self, names: Optional[Sequence[str]] = None) -> dict[str, str]:
        argv = ["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${db:Status-Abbrev}\n"]
        if names:
            argv += list(names)
        res = self._run(argv, check=False)
        out: dict[str, str] = {}
        for line in res.stdout.splitlines():
            parts = line.split("\t")
            # "ii " installed; "rc " removed with conffiles left: not installed
            if len(parts) == 3 and parts[2][1:2] in ("i", "U", "F", "H", "W", "t"):
                out[parts[0].split(":")[0]] = parts[1]
        return out

    def available(self, name: str) -> list[str]:
        res = self._run(["apt-cache", "madison", name], check=False)
        versions = []
        for v, _src in parse_madison(res.stdout):
            if v not in versions:
                versions.append(v)
        return sorted(versions, key=version_key, reverse=True)

    def sources_of(self, name: str) -> dict[str, list[str]]:
        """version -> the sources that offer it."""
        res = self._run(["apt-cache", "madison", name], check=False)
        out: dict[str, list[str]] = {}
        for v, src in parse_madison(res.stdout):
            out.setdefault(v, []).append(src)
        return out

    def _our_list_only(self) -> Optional[list[str]]:
        """apt options that read only the NVIDIA list and keep the package cache in memory
        (None where that list is not there)."""
        from gpuwizard.host.sources import APT_LIST

        if not self.host.path(APT_LIST).is_file():
            return None
        return [
            "-o",
            f"Dir::Etc::sourcelist={APT_LIST.removeprefix('/etc/apt/')}",
            "-o",
            "Dir::Etc::sourceparts=-",
            "-o",
            "Dir::Cache::pkgcache=",
            "-o",
            "Dir::Cache::srcpkgcache=",
        ]

    def sources_in_our_list(self, name: str) -> dict[str, list[str]]:
        """version -> sources, from the NVIDIA list alone: about 15 ms, where a plain
        `apt-cache madison` right after `apt-get update` of one list rebuilds the whole
        package cache (1 s or more on a Debian host; on every call where the image disables
        the cache). Empty when the list is missing or offers no such package; callers then
        ask apt about every source."""
        only = self._our_list_only()
        if only is None:
            return {}
        res = self._run(["apt-cache", *only, "madison", name], check=False)
        out: dict[str, list[str]] = {}
        for v, src in parse_madison(res.stdout) if res.returncode == 0 else []:
            out.setdefault(v, []).append(src)
        return out

    def origins(self, name: str) -> list[str]:
        res = self._run(["apt-cache", "policy", name], check=False)
        return parse_policy_origins(res.stdout)

    def full_version(self, version: str) -> str:
        return version if "-" in version else f"{version}-1"

    def _specs(self, specs: Mapping[str, str]) -> list[str]:
        return [f"{n}={v}" for n, v in specs.items()]

    def simulate_install(self, specs: Mapping[str, str]) -> list[Change]:
        return self.resolve_install(specs)[0]

    def resolve_install(self, specs: Mapping[str, str]) -> tuple[list[Change], bool]:
        fast = self._simulate_from_our_list(specs)
        if fast is not None:
            return fast, True
        res = self._run(
            ["apt-get", "-s", "-q", "install", "--allow-downgrades", *self._specs(specs)],
            check=False,
        )
        if res.returncode != 0:
            raise WizardError(
                "apt cannot install " + ", ".join(self._specs(specs)),
                "Read apt's message below; `apt-get update` may be needed, or the version is "
                "not in the repository (see --toolkit-version).",
                res.tail,
            )
        return parse_apt_simulation(res.stdout), False

    def _simulate_from_our_list(self, specs: Mapping[str, str]) -> Optional[list[Change]]:
        """`apt-get -s install` that reads only the NVIDIA list and builds its package cache in
        memory: about 30 ms where the full simulation costs 0.5-1 s on a Debian host (apt
        resolves against every package of every source), and it is done twice per install.

        Trusted only when it says exactly what the install will do: it succeeds, every
        change is one of the named packages going to its pinned version, and no recommended
        package is left out (another source could offer it). Anything else (a dependency from
        the distribution, a removal, the version in another list) returns None and the full
        simulation answers. When trusted, the install itself reads this list alone as well
        (`install(..., alone=True)`): the packages then come from the repository whose key
        was checked and from no other, and apt does not rebuild its cache of every source
        (1.5 s on the test root's Debian lists).
        """
        only = self._our_list_only()
        if only is None:
            return None
        res = self._run(
            ["apt-get", "-s", "-q", *only, "install", "--allow-downgrades", *self._specs(specs)],
            check=False,
        )
        if res.returncode != 0:
            return None
        changes = parse_apt_simulation(res.stdout)
        if not changes or any(specs.get(c.name) != c.after for c in changes):
            return None
        if any(line.startswith("Recommended packages:") for line in res.stdout.splitlines()):
            return None
        return changes

    def simulate_remove(self, names: Sequence[str]) -> list[Change]:
        res = self._run(["apt-get", "-s", "-q", "remove", *names], check=False)
        if res.returncode != 0:
            raise WizardError(
                "apt cannot remove " + ", ".join(names),
                "Read apt's message below and fix the package state (dpkg --audit).",
                res.tail,
            )
        return parse_apt_simulation(res.stdout)

    def install(
        self,
        specs: Mapping[str, str],
        *,
        on_line: Optional[LineCallback] = None,
        status: Optional[Callable[[float, str], None]] = None,
        allow_downgrades: bool = False,
        alone: bool = False,
    ) -> CommandResult:
        only = self._our_list_only() if alone else None
        argv = [
            "apt-get",
            *(only or []),
            "install",
            "-y",
            "-q",
            "-o",
            "Dpkg::Use-Pty=0",
            "-o",
            "Dpkg::Options::=--force-confold",
            "-o",
            "Dpkg::Options::=--force-confdef",
            "-o",
            "DPkg::Lock::Timeout=60",
        ]
        if allow_downgrades:
            argv.append("--allow-downgrades")
        argv += self._specs(specs)
        return self._with_status(argv, on_line, status)

    def _with_status(
        self,
        argv: list[str],
        on_line: Optional[LineCallback],
        status: Optional[Callable[[float, str], None]],
    ) -> CommandResult:
        if status is None:
            return self._run(argv, on_line=on_line, remedy=_APT_REMEDY)
        with AptStatusPipe(status) as fd:
            argv = [argv[0], "-o", f"APT::Status-Fd={fd}", *argv[1:]]
            return self._run(argv, on_line=on_line, pass_fds=(fd,), remedy=_APT_REMEDY)

    def purge(
        self, names: Sequence[str], *, on_line: Optional[LineCallback] = None
    ) -> CommandResult:
        # dpkg --purge never cascades either; it removes the conffiles and the `rc` state
        return self._run(
            ["dpkg", "--purge", *names],
            on_line=on_line,
            remedy="Something installed since needs these packages; remove it first, or keep "
            "the toolkit.",
        )

    def config_only(self, names: Sequence[str]) -> list[str]:
        if not names:
            return []
        argv = ["dpkg-query", "-W", "-f", "${Package}\t${db:Status-Abbrev}\n", *names]
        res = self._run(argv, check=False)
        out = []
        for line in res.stdout.splitlines():
            parts = line.split("\t")
            if len(parts) == 2 and parts[1][1:2] == "c":
                out.append(parts[0].split(":")[0])
        return out

    def remove(
        self, names: Sequence[str], *, on_line: Optional[LineCallback] = None, exact: bool = False
    ) -> CommandResult:
        if exact:
            # dpkg --remove never cascades: if something else now needs these, it refuses.
            return self._run(
                ["dpkg", "--remove", *names],
                on_line=on_line,
                remedy="Something installed since needs these packages; remove "
                "it first, or keep the toolkit.",
            )
        return self._run(
            [
                "apt-get",
                "remove",
                "-y",
                "-q",
                "-o",
                "Dpkg::Use-Pty=0",
                "-o",
                "DPkg::Lock::Timeout=60",
                *names,
            ],
            on_line=on_line,
            remedy=_APT_REMEDY,
        )

    def update_source(
        self, list_path: str, on_line: Optional[LineCallback] = None
    ) -> CommandResult:
        """`apt-get update` for one source list only: fast, and a broken unrelated source
        elsewhere on the host cannot fail it."""
        rel = list_path.removeprefix("/etc/apt/")
        return self._run(
            [
                "apt-get",
                "update",
                "-q",
                "-o",
                f"Dir::Etc::sourcelist={rel}",
                "-o",
                "Dir::Etc::sourceparts=-",
                "-o",
                "APT::Get::List-Cleanup=0",
            ],
            on_line=on_line,
            check=False,
        )

    def lock_holder(self) -> Optional[LockHolder]:
        for lock in self.LOCKS:
            holder = file_lock_holder(self.host.path(lock), lock)
            if holder is not None:
                return holder
        return None

    def deb_in_cache(self, name: str, version: str) -> Optional[Path]:
        """The .deb apt downloaded for name=version, if it is still in its cache."""
        archives = self.host.path("/var/cache/apt/archives")
        quoted = version.replace(":", "%3a")
        for deb in archives.glob(f"{name}_{quoted}_*.deb"):
            return deb
        return None


_APT_REMEDY = (
    "Read apt's output above. `dpkg --audit` and `apt-get -f install` show a "
    "broken package state; fix it, then run gpuwizard again."
)


class AptStatusPipe:
    """A pipe whose write end apt gets as APT::Status-Fd; a thread turns its `dlstatus:` and
    `pmstatus:` lines into progress callbacks."""

    def __init__(self, status: Callable[[float, str], None]) -> None:
        self.status = status
        self._r = -1
        self._w = -1
        self._thread: Optional[object] = None

    def __enter__(self) -> int:
        import threading

        self._r, self._w = os.pipe()
        t = threading.Thread(target=self._pump, daemon=True, name="apt-status")
        t.start()
        self._thread = t
        return self._w

    def _pump(self) -> None:
        last: Optional[tuple[float, str]] = None
        with os.fdopen(self._r, "r", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                parsed = parse_apt_status(line)
                if parsed is not None and parsed != last:  # apt repeats itself a lot
                    last = parsed
                    self.status(*parsed)

    def __exit__(self, *exc: object) -> None:
        os.close(self._w)  # the child has exited: EOF ends the pump
        t = self._thread
        if t is not None:
            t.join(timeout=5)  # type: ignore[attr-defined]


def parse_apt_status(line: str) -> Optional[tuple[float, str]]:
    """`pmstatus:pkg:47.0588:Installing x` -> (fraction, label). Downloads count for the
    first tenth of the bar, dpkg's work for the rest."""
    parts = line.rstrip("\n").split(":", 3)
    if len(parts) < 4 or parts[0] not in ("dlstatus", "pmstatus"):
        return None
    try:
        pct = float(parts[2])
    except ValueError:
        return None
    pct = max(0.0, min(100.0, pct))
    if parts[0] == "dlstatus":
        return (pct / 1000.0, parts[3])
    return (0.1 + 0.9 * pct / 100.0, parts[3])


# -- rpm: dnf/yum and zypper ----------------------------------------------------------------


def parse_rpm_qa(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) == 2 and not parts[1].startswith("package "):
            out[parts[0]] = parts[1]
    return out


class RpmPackages(PackageManager):
    """What dnf/yum and zypper share: the rpm database."""

    def rpm(self, args: list[str], **kw: object) -> CommandResult:
        argv = ["rpm", *([] if self.host.at_slash else ["--root", str(self.host.root)]), *args]
        return self.host.run(argv, inside=False, **kw)  # type: ignore[arg-type]

    _dbpath: Optional[str] = None

    def has_database(self) -> bool:
        """Whether the rpm database exists (where this machine's rpm looks for it: Debian's
        rpm keeps it in ~/.rpmdb, RHEL's in /var/lib/rpm)."""
        if self._dbpath is None:
            res = self.host.run(["rpm", "--eval", "%{_dbpath}"], inside=False, check=False)
            self._dbpath = res.stdout.strip() or "/var/lib/rpm"
        return any(
            self.host.path(p).is_dir()
            for p in (self._dbpath, "/var/lib/rpm", "/usr/lib/sysimage/rpm")
        )

    def foreign_database(self) -> Optional[str]:
        """With a root folder: the root's rpm database lives where this machine's rpm does
        not look (Debian's rpm uses ~/.rpmdb, RHEL's /var/lib/rpm). Returns that path, since
        dnf/zypper would then install into a second, empty database."""
        if self.host.at_slash or not self.has_database():
            return None
        assert self._dbpath is not None
        if self.host.path(self._dbpath).is_dir():
            return None
        for p in ("/var/lib/rpm", "/usr/lib/sysimage/rpm"):
            if self.host.path(p).is_dir():
                return p
        return None

    def installed(self, names: Optional[Sequence[str]] = None) -> dict[str, str]:
        if not self.has_database():
            return {}  # an empty root: nothing installed (and rpm would create the database)
        fmt = "%{NAME}\t%{VERSION}-%{RELEASE}\n"
        args = ["-q", "--qf", fmt, *names] if names else ["-qa", "--qf", fmt]
        res = self.rpm(args, check=False)
        return parse_rpm_qa(res.stdout)

    def full_version(self, version: str) -> str:
        return version if "-" in version else f"{version}-1"

    def has_key(self, short_id: str) -> bool:
        if not self.has_database():
            return False
        return self.rpm(["-q", f"gpg-pubkey-{short_id}"], check=False).returncode == 0

    def import_key(self, key_file: Path) -> CommandResult:
        return self.rpm(["--import", str(key_file)])

    def remove_key(self, short_id: str) -> CommandResult:
        return self.rpm(["-e", "--allmatches", f"gpg-pubkey-{short_id}"], check=False)

    def origins(self, name: str) -> list[str]:
        if not self.has_database():
            return []
        res = self.rpm(["-q", "--qf", "%{VENDOR}|%{PACKAGER}", name], check=False)
        return [res.stdout.strip()] if res.returncode == 0 and res.stdout.strip() else []


def root_file_url(host: Host, url: str) -> Optional[str]:
    """A file:// URL of the target system, as the machine we run on reaches it, or None.

    dnf --installroot and zypper --root read the root's .repo files but open file:// URLs on
    the machine they run on. A .repo written for the target (a bundle unpacked under the
    root) names its folder as the booted system will see it, so for these tools it is told
    where that folder is here. Only a folder that is there under the root is rebased (the
    part before a $variable such as $basearch is what is checked); anything else is left as
    it is."""
    if host.at_slash or not url.startswith("file:///"):
        return None
    path = url[len("file://") :]
    fixed = path.split("$", 1)[0].rstrip("/") or "/"
    if fixed == "/" or not host.path(fixed).is_dir():
        return None
    return f"file://{host.root}{path}"


def _root_repo_urls(host: Host, repo_file: str) -> dict[str, str]:
    """section -> its baseurl as this machine reaches it, for the sections of one of the
    root's .repo files whose file:// baseurl names a folder under the root."""
    from gpuwizard.host.sources import parse_repo

    path = host.path(repo_file)
    try:
        text = path.read_text(errors="replace") if path.is_file() else ""
    except OSError:
        return {}
    out: dict[str, str] = {}
    for section, keys in parse_repo(text).items():
        here = root_file_url(host, keys.get("baseurl", "").strip())
        if here:
            out[section] = here
    return out


@contextlib.contextmanager
def repos_as_seen_here(host: Host, repo_file: str) -> Iterator[Optional[Path]]:
    """Neither tool overrides a repository's URL per command in a way that keeps its
    variables ($basearch): where the root's NVIDIA .repo names a folder under the root
    (root_file_url), they read a copy of the root's repository folder, that URL rebased, for
    one command. None: nothing to rebase (the root's own folder serves; always at /)."""
    from gpuwizard.host.sources import parse_repo, render_repo

    rebased = _root_repo_urls(host, repo_file)
    if not rebased:
        yield None
        return
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="gpuwizard-repos-"))
    try:
        for f in sorted(host.path(os.path.dirname(repo_file)).glob("*.repo")):
            try:  # a plain file, as the tool reads one (never a FIFO left to block on)
                text = f.read_text(errors="replace") if f.is_file() else None
            except OSError:
                text = None
            if text is None:
                continue
            if f.name == os.path.basename(repo_file):
                sections = parse_repo(text)
                for section, here in rebased.items():
                    sections[section]["baseurl"] = here
                text = render_repo(sections)
            (folder / f.name).write_text(text)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class DnfPackages(RpmPackages):
    """dnf (4 and 5) and yum; `--installroot` for a root folder."""

    name = "dnf"

    def __init__(self, host: Host, extra: Sequence[str] = ()) -> None:
        super().__init__(host)
        self.binary = "dnf"
        for b in ("dnf", "dnf5", "yum"):
            if host.which(b) or (not host.at_slash and _on_path(b)):
                self.binary = b
                break
        self.extra = list(extra)

    def root_args(self, reposdir: Optional[Path] = None) -> list[str]:
        """`reposdir`: the root's repositories as this machine reaches them (a copy), when
        they differ from the root's own folder."""
        if self.host.at_slash:
            return []
        root = str(self.host.root)
        # reposdir is not prefixed with the installroot (cachedir is): name the root's own,
        # or dnf would fall back to this machine's repositories
        args = [
            f"--installroot={root}",
            f"--setopt=reposdir={reposdir or root + '/etc/yum.repos.d'}",
        ]
        release = self.host.facts.distro_version or "9"
        args.append(f"--releasever={release}")
        # the .repo names the key by its system path; dnf reads gpgkey files from the
        # machine it runs on, so point it at the copy under the root
        from gpuwizard.host.sources import REPO_ID, RPM_KEY, YUM_REPO

        if self.host.path(YUM_REPO).exists():
            for section in (REPO_ID, f"{REPO_ID}-experimental"):
                args.append(f"--setopt={section}.gpgkey=file://{root}{RPM_KEY}")
        return args

    def dnf(self, args: list[str], **kw: object) -> CommandResult:
        from gpuwizard.host.sources import YUM_REPO

        with repos_as_seen_here(self.host, YUM_REPO) as here:
            argv = [self.binary, *self.root_args(here), *self.extra, *args]
            return self.host.run(argv, inside=False, **kw)  # type: ignore[arg-type]

    def available(self, name: str) -> list[str]:
        from gpuwizard.host.sources import YUM_REPO

        if not self.host.path(YUM_REPO).exists() and not self.host.at_slash:
            return []  # nothing configured in the root: do not let dnf create its state there
        res = self.dnf(["-q", "--showduplicates", "list", "--available", name], check=False)
        versions: list[str] = []
        for line in res.stdout.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0].rsplit(".", 1)[0] == name:
                v = parts[1].split(":", 1)[-1]
                if v not in versions:
                    versions.append(v)
        return sorted(versions, key=version_key, reverse=True)

    def simulate_install(self, specs: Mapping[str, str]) -> list[Change]:
        before = self.installed()
        res = self.dnf(
            ["-q", "--assumeno", "install", *[f"{n}-{v}" for n, v in specs.items()]], check=False
        )
        changes = []
        for line in res.stdout.splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] not in ("Package", "Installing", "Upgrading"):
                name = parts[0]
                if "." in parts[1] or parts[1] in ("noarch", "x86_64", "aarch64"):
                    changes.append(Change(name, before.get(name), parts[2].split(":")[-1]))
        return changes

    def simulate_remove(self, names: Sequence[str]) -> list[Change]:
        inst = self.installed(names)
        return [Change(n, v, None) for n, v in inst.items()]

    def install(
        self,
        specs: Mapping[str, str],
        *,
        on_line: Optional[LineCallback] = None,
        status: Optional[Callable[[float, str], None]] = None,
        allow_downgrades: bool = False,
        alone: bool = False,
    ) -> CommandResult:
        verb = "install"
        argv = ["-y", verb, *[f"{n}-{v}" for n, v in specs.items()]]
        if allow_downgrades:
            argv = ["-y", "--allowerasing", "install", *argv[2:]]
        return self.dnf(argv, on_line=on_line)

    def downgrade(
        self, specs: Mapping[str, str], on_line: Optional[LineCallback] = None
    ) -> CommandResult:
        return self.dnf(
            ["-y", "downgrade", *[f"{n}-{v}" for n, v in specs.items()]],
            on_line=on_line,
            check=False,
        )

    def remove(
        self, names: Sequence[str], *, on_line: Optional[LineCallback] = None, exact: bool = False
    ) -> CommandResult:
        if exact:
            return self.rpm(["-e", *names], on_line=on_line)
        return self.dnf(["-y", "remove", *names], on_line=on_line)

    def last_transaction(self) -> Optional[int]:
        res = self.dnf(["-q", "history", "list"], check=False)
        for line in res.stdout.splitlines():
            # dnf4/yum: "  7 | install … | …"; dnf5: "7 dnf5 install … " (no bars)
            tokens = line.split("|")[0].split()
            if tokens and tokens[0].isdigit():
                return int(tokens[0])
        return None

    def history_undo(self, tid: int, on_line: Optional[LineCallback] = None) -> CommandResult:
        return self.dnf(["-y", "history", "undo", str(tid)], on_line=on_line, check=False)

    def refresh(self, repo_id: str, on_line: Optional[LineCallback] = None) -> CommandResult:
        # --disablerepo/--enablerepo: understood by yum 3 (Amazon Linux 2), dnf 4 and dnf 5
        return self.dnf(
            ["-y", "--disablerepo=*", f"--enablerepo={repo_id}", "makecache"],
            on_line=on_line,
            check=False,
        )


class ZypperPackages(RpmPackages):
    """zypper; `--root` for a root folder."""

    name = "zypper"

    def zypper(self, args: list[str], **kw: object) -> CommandResult:
        from gpuwizard.host.sources import ZYPP_REPO

        root = [] if self.host.at_slash else ["--root", str(self.host.root)]
        with repos_as_seen_here(self.host, ZYPP_REPO) as here:
            reposd = ["--reposd-dir", str(here)] if here is not None else []
            argv = ["zypper", "--non-interactive", *root, *reposd, *args]
            return self.host.run(argv, inside=False, **kw)  # type: ignore[arg-type]

    def available(self, name: str) -> list[str]:
        from gpuwizard.host.sources import ZYPP_REPO

        if not self.host.path(ZYPP_REPO).exists() and not self.host.at_slash:
            return []
        res = self.zypper(["--quiet", "search", "--details", "--match-exact", name], check=False)
        versions: list[str] = []
        for line in res.stdout.splitlines():
            parts = [p.strip() for p in line.split("|")]
            if len(parts) >= 4 and parts[1] == name and parts[3] not in versions:
                versions.append(parts[3])
        return sorted(versions, key=version_key, reverse=True)

    def simulate_install(self, specs: Mapping[str, str]) -> list[Change]:
        before = self.installed(list(specs))
        return [Change(n, before.get(n), v) for n, v in specs.items() if before.get(n) != v]

    def simulate_remove(self, names: Sequence[str]) -> list[Change]:
        inst = self.installed(names)
        return [Change(n, v, None) for n, v in inst.items()]

    def install(
        self,
        specs: Mapping[str, str],
        *,
        on_line: Optional[LineCallback] = None,
        status: Optional[Callable[[float, str], None]] = None,
        allow_downgrades: bool = False,
        alone: bool = False,
    ) -> CommandResult:
        argv = ["install", "--no-recommends"]
        if allow_downgrades:
            argv.append("--oldpackage")
        return self.zypper([*argv, *[f"{n}={v}" for n, v in specs.items()]], on_line=on_line)

    def remove(
        self, names: Sequence[str], *, on_line: Optional[LineCallback] = None, exact: bool = False
    ) -> CommandResult:
        if exact:
            return self.rpm(["-e", *names], on_line=on_line)
        return self.zypper(["remove", *names], on_line=on_line)

    def refresh(self, repo_id: str, on_line: Optional[LineCallback] = None) -> CommandResult:
        return self.zypper(["refresh", repo_id], on_line=on_line, check=False)


def _on_path(binary: str) -> bool:
    import shutil

    return shutil.which(binary) is not None


def package_manager(host: Host) -> Optional[PackageManager]:
    """The adapter for this host's package manager (None when it has none we know).
    For a root folder of an RPM system, the tools of the machine we run on act on it."""
    kind = host.facts.package_manager
    if kind == "apt":
        return AptPackages(host)
    if kind in ("dnf", "yum"):
        return DnfPackages(host)
    if kind == "zypper":
        return ZypperPackages(host)
    if not host.at_slash:
        family = host.facts.family()
        if family == "rhel":
            return DnfPackages(host)
        if family == "suse":
            return ZypperPackages(host)
    return None


# -- things that make the deb the wrong answer ------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """Why installing NVIDIA's packages here would break things, and what to do instead."""

    cause: str
    remedy: str


def docker_packaging_refusal(host: Host) -> Optional[Refusal]:
    """snap Docker and Docker Desktop cannot use the host toolkit."""
    if host.path("/snap/bin/docker").exists() or host.path("/var/snap/docker").exists():
        return Refusal(
            "Docker is installed as a snap, and the snap bundles its own NVIDIA toolkit; "
            "the deb/rpm toolkit would not be used by it (and can conflict)",
            "Use the snap's own NVIDIA support: `sudo snap set docker nvidia-support.enabled"
            "=true` (see `snap info docker`), or install Docker from your distribution or "
            "docker.com instead of the snap.",
        )
    from gpuwizard.host.docker import desktop_installed

    user = desktop_installed(host)
    if user is not None:
        return Refusal(
            "Docker Desktop is installed for " + user + "; it runs Docker in "
            "its own VM, which cannot use this host's NVIDIA toolkit",
            "Use Docker Engine (docker-ce or docker.io) for GPU containers on Linux, or "
            "switch the context with `docker context use default` if Docker Engine is "
            "also installed.",
        )
    return None


def vendor_build_refusal(
    pm: PackageManager, installed: Mapping[str, str], repo_host: str
) -> Optional[Refusal]:
    """A toolkit built by someone else (Lambda Stack, a distribution) is installed: replacing
    it with NVIDIA's would break that vendor's stack."""
    for name in TOOLKIT_PACKAGES:
        version = installed.get(name)
        if version is None or is_nvidia_build(version):
            continue  # NVIDIA's version scheme: no need to ask apt (20 ms a package)
        origins = pm.origins(name)
        if any(repo_host in o or "nvidia.github.io" in o for o in origins):
            continue
        where = ", ".join(origins) if origins else "no configured repository (a local build)"
        return Refusal(
            f"{name} {version} is installed and is not NVIDIA's build (from {where})",
            "It belongs to a vendor stack (e.g. Lambda Stack) or your distribution. Keep it "
            "and skip this step (--step daemon-config …), or remove that vendor's toolkit "
            "first if you really want NVIDIA's packages.",
        )
    return None
