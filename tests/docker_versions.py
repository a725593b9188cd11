"""pytest plugin: Docker engines of several versions, for the version matrices.

Debian's own builds of newer engines run on this bookworm machine (they need only GLIBC_2.34):
Docker 26.1 (trixie's `docker.io`, `docker-cli`, `containerd` 1.7.24) and Docker 28.5 (sid's,
`containerd` 2.1.9). Their `runc` needs GLIBC_2.38, so bookworm's `runc` 1.1.x is used with both,
and `docker-init` is bookworm's `tini-static`. "20.10" is the host's own `docker.io` (no download).

How the binaries are got: a private apt (its own sources list, lists and cache in a temporary
folder; the host's apt state is not touched) runs `apt-get update` once and `apt-get download`
for the packages, `dpkg-deb -x` unpacks them, and the binaries are copied into
`/var/tmp/gpuwizard-test-cache/docker-<version>-<key>/bin`, keyed by the recipe below, built in
a temporary folder and put in place with `os.replace` under a lock (several checkouts share the
cache). A cache folder holds `manifest.json` with the Debian versions it was made from.
Set GPUWIZARD_TEST_DEBIAN_MIRROR to use another Debian mirror.

Use:

    def test_x(docker_versions):                 # session-scoped
        bins = docker_versions.binaries("28.5")    # DockerBinaries: .bin, .dockerd, .docker
    def test_y(versioned_dockerd):               # a factory; daemons are stopped afterwards
        d = versioned_dockerd("26.1", daemon_json=b'{"features": {"cdi": true}}\\n')
        d.docker("info")                           # this version's CLI against this daemon

`versioned_dockerd` returns a started `tests.dockerd.Dockerd` (the same helper the rest of the
suite uses: its restart command, stand-ins, `import_busybox`, `docker(...)`), with this
version's binaries first on the daemon's PATH (so dockerd starts this version's containerd) and
the flags these machines need (`--iptables=false --ip6tables=false --bridge=none`).

Also a program: `python tests/docker_versions.py 26.1 28.5` fills the cache and prints the
bin folders (handy before a long session, and for the systemd matrix's roots).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

CACHE = Path(os.environ.get("GPUWIZARD_TEST_CACHE", "/var/tmp/gpuwizard-test-cache"))
MIRROR = os.environ.get("GPUWIZARD_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
RECIPE_VERSION = 1  # bump to invalidate every cached engine


@dataclass(frozen=True)
class DockerRelease:
    """One engine of the matrix: where Debian ships it and which files make it."""

    version: str  # "26.1": what `dockerd --version` must start with
    suite: str  # the Debian suite that ships it
    packages: tuple[str, ...] = ("docker.io", "docker-cli", "containerd")
    helper_suite: str = "bookworm"  # runc and tini-static come from here
    helper_packages: tuple[str, ...] = ("runc", "tini")
    # file inside the unpacked packages -> name in bin/
    files: tuple[tuple[str, str], ...] = (
        ("usr/sbin/dockerd", "dockerd"),
        ("usr/sbin/docker-proxy", "docker-proxy"),
        ("usr/bin/docker", "docker"),
        ("usr/bin/containerd", "containerd"),
        ("usr/bin/containerd-shim-runc-v2", "containerd-shim-runc-v2"),
        ("usr/bin/ctr", "ctr"),
        ("usr/sbin/runc", "runc"),
        ("usr/bin/tini-static", "docker-init"),
    )

    def key(self) -> str:
        text = json.dumps([RECIPE_VERSION, MIRROR, self.__dict__], sort_keys=True, default=list)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


RELEASES: dict[str, DockerRelease] = {
    "26.1": DockerRelease("26.1", "trixie"),
    "28.5": DockerRelease("28.5", "sid"),
}
HOST_VERSION = "20.10"  # the host's docker.io: Debian bookworm's 20.10.24
ALL_VERSIONS = (HOST_VERSION, *RELEASES)


@dataclass(frozen=True)
class DockerBinaries:
    """A folder of one engine version's programs."""

    version: str
    bin: Optional[Path]  # None: the host's own, found on PATH
    debian_versions: dict[str, str]

    @property
    def dockerd(self) -> str:
        return str(self.bin / "dockerd") if self.bin else "dockerd"

    @property
    def docker(self) -> str:
        return str(self.bin / "docker") if self.bin else "docker"

    def path_prefix(self) -> str:
        """What to put first on a daemon's PATH so it runs this version's containerd/runc."""
        return f"{self.bin}:" if self.bin else ""


class DockerVersionError(RuntimeError):
    """The engine could not be got: the message names the cause and the fix."""


def _run(argv: list[str], cwd: Optional[Path] = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False, timeout=600)


class _PrivateApt:
    """An apt with its own sources, lists and cache; the host's apt state is not touched."""

    def __init__(self, root: Path, suites: list[str]) -> None:
        self.root = root
        (root / "lists" / "partial").mkdir(parents=True, exist_ok=True)
        (root / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        lines = [f"deb [signed-by={KEYRING}] {MIRROR} {s} main" for s in suites]
        (root / "sources.list").write_text("\n".join(lines) + "\n")
        self.opts = [
            f"-oDir::Etc::SourceList={root / 'sources.list'}",
            "-oDir::Etc::SourceParts=/nonexistent",
            f"-oDir::State::Lists={root / 'lists'}",
            f"-oDir::Cache={root / 'cache'}",
            "-oDir::Etc::Preferences=/nonexistent",
            "-oDir::Etc::PreferencesParts=/nonexistent",
            "-oDebug::NoLocking=1",
            # sid's Release is past Valid-Until on some mirrors
            "-oAcquire::Check-Valid-Until=false",
            "-oAPT::Sandbox::User=root",
        ]
        self.updated = False

    def update(self) -> None:
        if self.updated:
            return
        r = _run(["apt-get", *self.opts, "update"])
        if r.returncode != 0:
            raise DockerVersionError(
                f"apt-get update for the Docker version matrix failed ({MIRROR}):\n"
                f"{r.stderr.strip()[-1500:]}\nfix: check the network, or set "
                "GPUWIZARD_TEST_DEBIAN_MIRROR to a reachable Debian mirror"
            )
        self.updated = True

    def download(self, specs: list[str], into: Path) -> list[Path]:
        self.update()
        r = _run(["apt-get", *self.opts, "download", *specs], cwd=into)
        if r.returncode != 0:
            raise DockerVersionError(
                f"apt-get download {' '.join(specs)} failed:\n{r.stderr.strip()[-1500:]}\n"
                "fix: the suite may no longer ship that package; update tests/docker_versions.py"
            )
        return sorted(into.glob("*.deb"))


def _deb_field(deb: Path, field: str) -> str:
    return _run(["dpkg-deb", "-f", str(deb), field]).stdout.strip()


class DockerVersions:
    """Gets (and caches) engines by version; one private apt per session, made on first need."""

    def __init__(self, cache: Path = CACHE) -> None:
        self.cache = cache
        self._apt: Optional[_PrivateApt] = None
        self._tmp: Optional[Path] = None
        self._got: dict[str, DockerBinaries] = {}

    def close(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def folder(self, version: str) -> Path:
        rel = RELEASES[version]
        return self.cache / f"docker-{version}-{rel.key()}"

    def binaries(self, version: str) -> DockerBinaries:
        """This version's binaries: from the cache, or downloaded and unpacked into it."""
        if version in self._got:
            return self._got[version]
        if version == HOST_VERSION:
            if shutil.which("dockerd") is None:
                raise DockerVersionError("no dockerd on PATH; fix: apt-get install docker.io")
            got = DockerBinaries(version, None, {})
        elif version not in RELEASES:
            raise DockerVersionError(
                f"no Docker {version} in the matrix; known: {', '.join(ALL_VERSIONS)}"
            )
        else:
            got = self._cached_or_build(version)
        self._got[version] = got
        return got

    def _cached_or_build(self, version: str) -> DockerBinaries:
        final = self.folder(version)
        self.cache.mkdir(parents=True, exist_ok=True)
        with open(self.cache / "docker-versions.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (final / "manifest.json").exists():
                self._build(version, final)
        manifest = json.loads((final / "manifest.json").read_text())
        return DockerBinaries(version, final / "bin", manifest["debian_versions"])

    def _private_apt(self) -> _PrivateApt:
        if self._apt is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="gw-dv-apt-", dir="/var/tmp"))
            suites = sorted(
                {r.suite for r in RELEASES.values()} | {r.helper_suite for r in RELEASES.values()}
            )
            self._apt = _PrivateApt(self._tmp, suites)
        return self._apt

    def _build(self, version: str, final: Path) -> None:
        rel = RELEASES[version]
        apt = self._private_apt()
        work = Path(tempfile.mkdtemp(prefix=f".docker-{version}-", dir=self.cache))
        try:
            debs_dir = work / "debs"
            debs_dir.mkdir()
            specs = [f"{p}/{rel.suite}" for p in rel.packages]
            specs += [f"{p}/{rel.helper_suite}" for p in rel.helper_packages]
            debs = apt.download(specs, debs_dir)
            tree = work / "tree"
            versions: dict[str, str] = {}
            for deb in debs:
                r = _run(["dpkg-deb", "-x", str(deb), str(tree)])
                if r.returncode != 0:
                    raise DockerVersionError(f"dpkg-deb -x {deb.name}: {r.stderr.strip()}")
                versions[_deb_field(deb, "Package")] = _deb_field(deb, "Version")
            out = work / "out"
            (out / "bin").mkdir(parents=True)
            for src, name in rel.files:
                path = tree / src
                if not path.is_file():
                    raise DockerVersionError(
                        f"{src} is not in {', '.join(d.name for d in debs)}; "
                        "fix: update the file list in tests/docker_versions.py"
                    )
                shutil.copy2(path, out / "bin" / name)
            said = _run([str(out / "bin" / "dockerd"), "--version"]).stdout.strip()
            if not said.startswith(f"Docker version {rel.version}."):
                raise DockerVersionError(
                    f"{rel.suite}'s docker.io is now {said!r}, not {rel.version}; "
                    "fix: update RELEASES in tests/docker_versions.py"
                )
            (out / "manifest.json").write_text(
                json.dumps({"version": rel.version, "said": said, "debian_versions": versions})
                + "\n"
            )
            os.replace(out, final)
        finally:
            shutil.rmtree(work, ignore_errors=True)


try:
    import pytest
except ImportError:  # run as a program
    pytest = None  # type: ignore[assignment]

if pytest is not None and __name__ != "__main__":
    from tests.dockerd import Dockerd, cleanup, make_dockerd

    @pytest.fixture(scope="session")
    def docker_versions() -> Iterator[DockerVersions]:
        """Gets Docker engines by version ("20.10" host, "26.1" trixie, "28.5" sid)."""
        if os.geteuid() != 0:
            pytest.skip("the Docker version matrix needs root (it starts dockerd)")
        dv = DockerVersions()
        try:
            yield dv
        finally:
            dv.close()

    @pytest.fixture
    def versioned_dockerd(
        docker_versions: DockerVersions,
    ) -> Iterator[Callable[..., Dockerd]]:
        """A factory: `versioned_dockerd("28.5", stand_ins=False, daemon_json=b"{}\\n",
        image=True)` -> a started private daemon of that version; all stopped after the test."""
        made: list[Dockerd] = []

        def make(
            version: str,
            stand_ins: bool = True,
            daemon_json: bytes = b"{}\n",
            image: bool = True,
        ) -> Dockerd:
            try:
                bins = docker_versions.binaries(version)
            except DockerVersionError as exc:
                pytest.fail(str(exc), pytrace=False)
            d = make_dockerd(stand_ins=stand_ins, daemon_json=daemon_json, engine=bins)
            made.append(d)
            d.start()
            if image:
                d.import_busybox()
            return d

        try:
            yield make
        finally:
            for d in made:
                cleanup(d)


if __name__ == "__main__":
    wanted = sys.argv[1:] or list(RELEASES)
    dv = DockerVersions()
    try:
        for v in wanted:
            b = dv.binaries(v)
            print(v, b.bin or "(host)", json.dumps(b.debian_versions))
    except DockerVersionError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
    finally:
        dv.close()
