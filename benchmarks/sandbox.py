"""The sandbox host the probe and overhead benchmarks run against: the test suite's own parts.

A debootstrap root (tests/debroot.py, cached tarball, overlay copy per use), the signed
NVIDIA-shaped repository served on 127.0.0.1 (`build_nvidia_repo`) and a private dockerd
(tests/dockerd.py) whose daemon.json lives inside that root, so gpuwizard edits the file the
daemon reads. Needs root; `available()` says why not where it cannot run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from benchmarks.common import REPO

TESTS = REPO / "tests"
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

_BASE: Optional[Path] = None
_REPO: Any = None
APT_STEPS = ("repository", "packages")
DOCKER_STEPS = ("daemon-config", "restart", "gpu-test")


def step_objects(names: tuple[str, ...]) -> list[Any]:
    """The steps by name, alone (as the test suite plans them: a step not in the list, such as
    the driver step on this GPU-less machine, neither runs nor blocks the others)."""
    from gpuwizard import wizard

    return [s for s in wizard.default_steps() if s.name in names]


def available() -> Optional[str]:
    """None where the sandbox can be built here, else the reason it cannot."""
    if os.geteuid() != 0:
        return "needs root (chroot, mount, dockerd)"
    for tool in ("dockerd", "docker", "gpg", "dpkg-deb", "apt-ftparchive", "chroot", "mount"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    import debroot

    if not (debroot.CACHE_DIR / f"debroot-{debroot.DEBROOT_VERSION}.tar").exists():
        return "no cached debootstrap root (run the test suite once: tests/debroot.py)"
    return None


def _base() -> Path:
    """The cached debootstrap root, unpacked once per benchmark process."""
    global _BASE
    if _BASE is None:
        import debroot

        top = Path(tempfile.mkdtemp(prefix="gw-bench-base-", dir="/var/tmp"))
        base = top / "base"
        base.mkdir()
        tarball = debroot.CACHE_DIR / f"debroot-{debroot.DEBROOT_VERSION}.tar"
        subprocess.run(["tar", "-C", str(base), "-xf", str(tarball)], check=True)  # noqa: S603 S607
        _BASE = base
    return _BASE


def nvidia_repo() -> Any:
    """The signed repository, built and served once per benchmark process."""
    global _REPO
    if _REPO is None:
        import debroot

        _REPO = debroot.build_nvidia_repo(Path(tempfile.mkdtemp(prefix="gw-bench-repo-")))
        _REPO.server.start()
    return _REPO


def shutdown() -> None:
    """Stop the repository server and its keys' gpg-agents, and drop the repository and the
    unpacked root."""
    global _BASE, _REPO
    if _REPO is not None:
        import debroot

        _REPO.server.stop()
        top = _REPO.server.folder.parent
        debroot.stop_gpg_agents(str(top))
        shutil.rmtree(top, ignore_errors=True)
        _REPO = None
    if _BASE is not None:
        shutil.rmtree(_BASE.parent, ignore_errors=True)
        _BASE = None


@dataclass
class Sandbox:
    root: Path
    repo: Any
    dockerd: Any
    state: Path

    def options(self, **kw: Any) -> Any:
        """What a user passes to point gpuwizard at this sandbox. The apt steps run on the
        root; the Docker steps on this machine against the private daemon (a --root image has
        no running Docker), with daemon.json the root's file that daemon reads."""
        from dockerd import wizard_options

        return wizard_options(
            self.dockerd,
            repo_url=self.repo.repo_url,
            key_url=self.repo.key_url,
            key_fingerprint=self.repo.key.fingerprint,
            daemon_json=str(self.dockerd.daemon_json),
            auto_revert=0,
            **kw,
        )

    def root_host(self) -> Any:
        from gpuwizard.host.system import Host

        return Host(root=self.root)

    def live_host(self) -> Any:
        from gpuwizard.host.system import Host

        return Host()

    def docker_env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.dockerd.docker_host}


@contextlib.contextmanager
def sandbox() -> Iterator[Sandbox]:
    """A fresh root, the shared repository and a private dockerd reading the root's
    /etc/docker/daemon.json; everything stopped and unmounted afterwards."""
    import debroot
    import dockerd as dk

    repo = nvidia_repo()
    where = Path(tempfile.mkdtemp(prefix="gw-bench-", dir="/var/tmp"))
    d = dk.make_dockerd(stand_ins=True)
    try:
        with debroot.debian_root(_base(), where) as root:
            daemon_json = root / "etc/docker/daemon.json"
            daemon_json.parent.mkdir(parents=True, exist_ok=True)
            daemon_json.write_bytes(b"{}\n")
            spec = json.loads((d.base / "dockerd.json").read_text())
            argv = spec["argv"]
            argv[argv.index("--config-file") + 1] = str(daemon_json)
            (d.base / "dockerd.json").write_text(json.dumps(spec))
            d.daemon_json = daemon_json
            d.start()
            d.import_busybox()
            yield Sandbox(root, repo, d, where / "state")
    finally:
        dk.cleanup(d)
        shutil.rmtree(where, ignore_errors=True)
