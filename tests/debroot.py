"""pytest plugin: a real Debian root (debootstrap) and a signed NVIDIA-shaped apt repository.

The root is built once (about 30 s) and cached as a tarball under /var/tmp/gpuwizard-test-cache
keyed by DEBROOT_VERSION; each mutating test gets its own `cp -a` copy with /proc, /dev and
/dev/pts bind-mounted (always unmounted in teardown). The repository is made by the test suite:
its own gpg key, four tiny packages named like NVIDIA's in two versions, a legacy
`nvidia-docker2` that owns /etc/docker/daemon.json as a conffile, `apt-ftparchive` metadata,
`gpg --clearsign` for InRelease, and `python -m http.server` on 127.0.0.1 (never elsewhere).

The programs in the packages are stand-ins (tiny shell scripts) named as such: the real
binaries need a GPU; their names, versions and dependency shape are the real ones.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

import harness
import pytest
from harness import Outcome

from gpuwizard.events import Event
from gpuwizard.host.system import Host
from gpuwizard.options import Options
from gpuwizard.steps.base import Step
from gpuwizard.wizard import Plan

__all__ = ["Outcome"]

DEBROOT_VERSION = "bookworm-minbase-v1"
CACHE_DIR = Path(os.environ.get("GPUWIZARD_TEST_CACHE", "/var/tmp/gpuwizard-test-cache"))
MIRROR = os.environ.get("GPUWIZARD_DEBIAN_MIRROR", "http://deb.debian.org/debian")

VERSIONS = ("1.17.8-1", "1.20.1-1")
TOOLKIT = (
    "nvidia-container-toolkit",
    "nvidia-container-toolkit-base",
    "libnvidia-container-tools",
    "libnvidia-container1",
)
LEGACY_DAEMON_JSON = (
    b'{\n    "runtimes": {\n        "nvidia": {\n            "path": '
    b'"nvidia-container-runtime",\n            "runtimeArgs": []\n        }\n    }\n}\n'
)


def _run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=True, text=True, capture_output=True, **kw)  # type: ignore[call-overload]  # noqa: S603


def need_root_tools() -> None:
    """Skip (with the reason) where the real tools or root are missing."""
    if os.geteuid() != 0:
        pytest.skip("needs root (chroot, mount)")
    for tool in ("debootstrap", "dpkg-deb", "apt-ftparchive", "gpg", "chroot", "mount"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool}")


# -- the Debian root -----------------------------------------------------------------------


def _build_tarball(target: Path, include: tuple[str, ...] = ()) -> None:
    work = target.parent / f".build-{os.getpid()}-{target.stem}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                *([f"--include={','.join(include)}"] if include else []),
                "bookworm",
                str(work / "root"),  # noqa: S603
                MIRROR,
            ],
            check=True,
            capture_output=True,
        )
        # keep the copy small and fast: the downloaded .debs are not needed
        for deb in (work / "root/var/cache/apt/archives").glob("*.deb"):
            deb.unlink()
        tmp = target.with_suffix(".tmp")
        subprocess.run(["tar", "-C", str(work / "root"), "-cf", str(tmp), "."], check=True)  # noqa: S603
        os.replace(tmp, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _cached_root(
    tmp_path_factory: pytest.TempPathFactory, version: str, include: tuple[str, ...] = ()
) -> Path:
    """A debootstrap root (plus `include`) built once per machine, unpacked for this session."""
    need_root_tools()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tarball = CACHE_DIR / f"debroot-{version}.tar"
    if not tarball.exists():
        lock = CACHE_DIR / "debroot.lock"
        import fcntl

        with open(lock, "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)  # parallel sessions build it once
            if not tarball.exists():
                try:
                    _build_tarball(tarball, include)
                except subprocess.CalledProcessError as exc:
                    pytest.skip(f"debootstrap failed (no Debian mirror?): {exc.stderr!r:.300}")
    base = tmp_path_factory.mktemp("debroot") / "base"
    base.mkdir()
    subprocess.run(["tar", "-C", str(base), "-xf", str(tarball)], check=True)  # noqa: S603
    return base


@pytest.fixture(scope="session")
def debroot_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An unpacked debootstrap root for this session (read-only by convention: copy it)."""
    return _cached_root(tmp_path_factory, DEBROOT_VERSION)


# What an exported script needs on the host it runs on, beyond minbase: gpg checks the key's
# fingerprint, python3 merges daemon.json (every Debian/Ubuntu cloud image has both).
TOOLS_VERSION = "bookworm-minbase-gpg-python3-apt-v1"
TOOLS = ("gpg", "python3", "python3-apt")


@pytest.fixture(scope="session")
def debroot_tools_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Like debroot_base, with gpg and python3 installed by debootstrap (read-only: copy it)."""
    return _cached_root(tmp_path_factory, TOOLS_VERSION, TOOLS)


def _mounts(root: Path) -> list[Path]:
    return [root / "proc", root / "dev", root / "dev/pts"]


def mount_binds(root: Path) -> None:
    for m in _mounts(root):
        m.mkdir(parents=True, exist_ok=True)
        src = "/" + str(m.relative_to(root))
        subprocess.run(["mount", "--bind", src, str(m)], check=True)  # noqa: S603


def unmount_binds(root: Path) -> None:
    for m in reversed(_mounts(root)):
        if os.path.ismount(m):
            r = subprocess.run(["umount", str(m)], capture_output=True)  # noqa: S603
            if r.returncode != 0:
                subprocess.run(["umount", "-l", str(m)], capture_output=True)  # noqa: S603


def _overlay(base: Path, where: Path) -> Optional[Path]:
    """An overlayfs view of the base root (instant; `cp -a` costs ~12 s on a slow disk)."""
    root = where / "root"
    upper, work = where / "upper", where / "work"
    for d in (root, upper, work):
        d.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        [
            "mount",
            "-t",
            "overlay",
            "overlay",
            "-o",  # noqa: S603 S607
            f"lowerdir={base},upperdir={upper},workdir={work}",
            str(root),
        ],
        capture_output=True,
    )
    return root if r.returncode == 0 else None


@contextlib.contextmanager
def debian_root(base: Path, where: Path) -> Iterator[Path]:
    """A private copy of the base root (overlayfs, or `cp -a` where overlays are not
    allowed) with /proc, /dev, /dev/pts bound; everything unmounted afterwards."""
    root = _overlay(base, where)
    overlay = root is not None
    if root is None:
        root = where / "root"
        shutil.rmtree(root, ignore_errors=True)
        subprocess.run(["cp", "-a", str(base), str(root)], check=True)  # noqa: S603 S607
    if overlay:
        # Opening a lower-layer file for writing copies it up to a new inode, which would
        # detach a lock taken on the old one; copy the lock files up now, so that locks in
        # this root behave as on a plain file system.
        for rel in (
            "var/lib/dpkg/lock",
            "var/lib/dpkg/lock-frontend",
            "var/lib/apt/lists/lock",
            "var/cache/apt/archives/lock",
        ):
            f = root / rel
            if f.exists():
                with open(f, "r+b"):
                    pass
    try:
        mount_binds(root)
        yield root
    finally:
        unmount_binds(root)
        # a process left behind in the chroot would keep the mounts busy: say so loudly
        if any(os.path.ismount(m) for m in _mounts(root)):
            raise RuntimeError(f"could not unmount the binds under {root}")
        if overlay:
            if subprocess.run(["umount", str(root)]).returncode != 0:  # noqa: S603 S607
                subprocess.run(["umount", "-l", str(root)], check=True)  # noqa: S603 S607
            shutil.rmtree(where / "upper", ignore_errors=True)
            shutil.rmtree(where / "work", ignore_errors=True)
        else:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def debroot(debroot_base: Path, tmp_path: Path) -> Iterator[Path]:
    """A fresh, private Debian root for one test."""
    with debian_root(debroot_base, tmp_path) as root:
        yield root


@contextlib.contextmanager
def lock_held(path: Path, seconds: float) -> Iterator[subprocess.Popen[bytes]]:
    """Another process holding a lock on `path` (flock(1), as a stand-in for
    unattended-upgrades); it and its child are always stopped afterwards."""

    proc = subprocess.Popen(
        ["flock", "-o", str(path), "sleep", str(seconds)],  # noqa: S603 S607
        start_new_session=True,
    )
    try:
        time.sleep(0.3)
        yield proc
    finally:
        release(proc)


def release(proc: subprocess.Popen[bytes]) -> None:
    """Stop a lock_held holder and its child (by process group: the one we started)."""
    import signal

    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def dpkg_set(root: Path) -> str:
    """The installed package set, as `dpkg-query -W` prints it (the rollback oracle)."""
    return _run(
        [
            "chroot",
            str(root),
            "dpkg-query",
            "-W",
            "-f",
            "${Package} ${Version} ${db:Status-Abbrev}\n",
        ]
    ).stdout


# -- the signed repository -----------------------------------------------------------------


def stop_gpg_agents(under: str) -> None:
    """Stop the gpg-agents whose command line names a folder under `under` (the test keys'
    homes: signing starts one per key, and each holds one of root's 128 inotify instances
    long after its folder is gone; systemd then fails to boot in the test bed)."""
    prefix = under.encode()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if args and args[0].endswith(b"gpg-agent") and any(a.startswith(prefix) for a in args):
            subprocess.run(["kill", proc.name], check=False, capture_output=True)  # noqa: S603 S607


@dataclass
class TestKey:
    home: Path
    fingerprint: str
    armored: bytes

    def sign_clear(self, src: Path, dst: Path) -> None:
        _run(
            [
                "gpg",
                "--homedir",
                str(self.home),
                "--batch",
                "--yes",
                "--digest-algo",
                "SHA256",
                "--clearsign",
                "-o",
                str(dst),
                str(src),
            ]
        )

    def sign_detached(self, src: Path, dst: Path) -> None:
        _run(
            [
                "gpg",
                "--homedir",
                str(self.home),
                "--batch",
                "--yes",
                "--armor",
                "--detach-sign",
                "-o",
                str(dst),
                str(src),
            ]
        )


def make_key(home: Path, uid: str) -> TestKey:
    """A fresh signing key in its own GNUPGHOME, with its fingerprint and armored export."""
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    _run(
        [
            "gpg",
            "--homedir",
            str(home),
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            uid,
            "rsa2048",
            "sign",
            "never",
        ]
    )
    out = _run(["gpg", "--homedir", str(home), "--batch", "--with-colons", "--list-keys"]).stdout
    fpr = next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))
    armored = subprocess.run(
        [
            "gpg",
            "--homedir",
            str(home),
            "--batch",
            "--armor",  # noqa: S603
            "--export",
            fpr,
        ],
        check=True,
        capture_output=True,
    ).stdout
    return TestKey(home, fpr, armored)


def build_deb(
    out: Path,
    name: str,
    version: str,
    *,
    depends: str = "",
    files: Optional[dict[str, str]] = None,
    conffiles: tuple[str, ...] = (),
    scripts: Optional[dict[str, str]] = None,
    arch: str = "amd64",
    extra: str = "",
) -> Path:
    """A tiny real .deb built with dpkg-deb."""
    tree = out / f"tree-{name}-{version}"
    shutil.rmtree(tree, ignore_errors=True)
    (tree / "DEBIAN").mkdir(parents=True)
    for path, content in (files or {}).items():
        f = tree / path.lstrip("/")
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(content)
        f.chmod(0o755 if "/bin/" in path else 0o644)
    control = (
        f"Package: {name}\nVersion: {version}\nArchitecture: {arch}\n"
        "Maintainer: gpuwizard tests <tests@example.invalid>\n"
        "Description: gpuwizard test stand-in named like the real package\n"
    )
    if depends:
        control += f"Depends: {depends}\n"
    control += extra
    (tree / "DEBIAN/control").write_text(control)
    if conffiles:
        (tree / "DEBIAN/conffiles").write_text("".join(c + "\n" for c in conffiles))
    for script, body in (scripts or {}).items():
        (tree / "DEBIAN" / script).write_text("#!/bin/sh\nset -e\n" + body)
        (tree / "DEBIAN" / script).chmod(0o755)
    deb = out / f"{name}_{version}_{arch}.deb"
    _run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(deb)])
    shutil.rmtree(tree)
    return deb


def _stand_in(name: str, version: str) -> str:
    return (
        f"#!/bin/sh\n# gpuwizard test stand-in for NVIDIA's {name} {version}\n"
        f"echo {name} {version}\n"
    )


CONFIG_TOML = "/etc/nvidia-container-runtime/config.toml"


def toolkit_debs(out: Path, version: str) -> list[Path]:
    """The four packages with the real dependency shape, one version."""
    up = version.split("-")[0]
    return [
        build_deb(
            out,
            "libnvidia-container1",
            version,
            files={"/usr/lib/x86_64-linux-gnu/libnvidia-container.so.1": f"stand-in {up}\n"},
        ),
        build_deb(
            out,
            "libnvidia-container-tools",
            version,
            depends=f"libnvidia-container1 (= {version})",
            files={"/usr/bin/nvidia-container-cli": _stand_in("nvidia-container-cli", up)},
        ),
        build_deb(
            out,
            "nvidia-container-toolkit-base",
            version,
            files={
                "/usr/bin/nvidia-ctk": _stand_in("nvidia-ctk", up),
                "/usr/bin/nvidia-container-runtime": _stand_in("nvidia-container-runtime", up),
                # the real package's conffile: a plain remove leaves it (and dpkg state rc)
                CONFIG_TOML: "# gpuwizard test stand-in for the toolkit's config.toml\n",
            },
            conffiles=(CONFIG_TOML,),
        ),
        build_deb(
            out,
            "nvidia-container-toolkit",
            version,
            depends=f"nvidia-container-toolkit-base (= {version}), "
            f"libnvidia-container-tools (= {version})",
            files={
                "/usr/bin/nvidia-container-runtime-hook": _stand_in(
                    "nvidia-container-runtime-hook", up
                )
            },
            # like the real package: a link made by its postinst, which a remove leaves dangling
            scripts={
                "postinst": 'if [ "$1" = configure ]; then ln -sf '
                "/usr/bin/nvidia-container-runtime-hook /usr/bin/nvidia-container-toolkit; fi\n"
            },
        ),
    ]


def legacy_nvidia_docker2(out: Path) -> Path:
    """nvidia-docker2 2.13.0 as it was: /etc/docker/daemon.json is its conffile."""
    return build_deb(
        out,
        "nvidia-docker2",
        "2.13.0-1",
        arch="all",
        files={
            "/etc/docker/daemon.json": LEGACY_DAEMON_JSON.decode(),
            "/usr/bin/nvidia-docker": _stand_in("nvidia-docker", "2.13.0"),
        },
        conffiles=("/etc/docker/daemon.json",),
    )


def flat_repo(folder: Path, debs: list[Path], key: TestKey) -> None:
    """apt-ftparchive Packages/Release + clearsigned InRelease + Release.gpg, like NVIDIA's."""
    folder.mkdir(parents=True, exist_ok=True)
    for deb in debs:
        shutil.copy2(deb, folder / deb.name)
    packages = _run(["apt-ftparchive", "packages", "."], cwd=str(folder)).stdout
    (folder / "Packages").write_text(packages)
    subprocess.run(["gzip", "-kf", str(folder / "Packages")], check=True)  # noqa: S603
    release = _run(
        [
            "apt-ftparchive",
            "-o",
            "APT::FTPArchive::Release::Origin=gpuwizard-tests",
            "-o",
            "APT::FTPArchive::Release::Label=gpuwizard-tests",
            "release",
            ".",
        ],
        cwd=str(folder),
    ).stdout
    (folder / "Release").write_text(release)
    key.sign_clear(folder / "Release", folder / "InRelease")
    key.sign_detached(folder / "Release", folder / "Release.gpg")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# A mirror that wants a login (Artifactory, Nexus): HTTP Basic, 401 without it. The login
# comes in the environment, never on the command line.
_LOGIN_SERVER = r"""
import base64, functools, http.server, os, sys
want = "Basic " + base64.b64encode(os.environ["MIRROR_LOGIN"].encode()).decode()
class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
    def _allowed(self):
        if self.headers.get("Authorization") == want:
            return True
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="mirror"')
        self.send_header("Content-Length", "0")
        self.end_headers()
        return False
    def do_GET(self):
        if self._allowed():
            super().do_GET()
    def do_HEAD(self):
        if self._allowed():
            super().do_HEAD()
handler = functools.partial(Handler, directory=sys.argv[1])
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), handler).serve_forever()
"""


@dataclass
class RepoServer:
    """A folder served on 127.0.0.1 by python -m http.server; with `login` ("user:password")
    only to a client that sends it (HTTP Basic)."""

    folder: Path
    port: int = 0
    proc: Optional[subprocess.Popen[bytes]] = None
    login: Optional[str] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.port = free_port()
        if self.login is None:
            argv = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(self.port)]
        else:
            argv = [sys.executable, "-c", _LOGIN_SERVER, str(self.folder), str(self.port)]
        self.proc = subprocess.Popen(  # noqa: S603
            argv,
            cwd=str(self.folder),
            env={**os.environ, "MIRROR_LOGIN": self.login or ""},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/", timeout=1).close()  # noqa: S310
                return
            except urllib.error.HTTPError:
                return  # it answers (401: it wants the login)
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the test repository server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@dataclass
class NvidiaRepo:
    """What a test needs to point gpuwizard at the local repository."""

    server: RepoServer
    key: TestKey
    other_key: TestKey  # a key that is not the expected one
    debs: dict[str, list[Path]] = field(default_factory=dict)
    legacy_deb: Optional[Path] = None
    versions: tuple[str, ...] = VERSIONS

    @property
    def repo_url(self) -> str:
        return self.server.url + "/stable"

    @property
    def key_url(self) -> str:
        return self.server.url + "/gpgkey"

    def options(self, **kw: object) -> object:
        from gpuwizard.options import Options

        return Options(
            repo_url=self.repo_url, key_url=self.key_url, key_fingerprint=self.key.fingerprint, **kw
        )  # type: ignore[arg-type]


def build_nvidia_repo(top: Path) -> NvidiaRepo:
    keys = top / "keys"
    key = make_key(keys / "good", "gpuwizard test repository <repo@example.invalid>")
    other = make_key(keys / "other", "not the repository key <other@example.invalid>")
    www = top / "www"
    (www / "stable").mkdir(parents=True)
    (www / "gpgkey").write_bytes(key.armored)
    (www / "other-gpgkey").write_bytes(other.armored)
    pool = top / "pool"
    pool.mkdir()
    debs = {v: toolkit_debs(pool, v) for v in VERSIONS}
    all_debs = [d for v in VERSIONS for d in debs[v]]
    flat_repo(www / "stable/deb/amd64", all_debs, key)
    # the experimental channel: the same packages (enough to prove the line works)
    flat_repo(www / "experimental/deb/amd64", debs[VERSIONS[-1]], key)
    # a mirror that no longer carries the old version (rollback cannot put it back)
    flat_repo(www / "onlynew/stable/deb/amd64", debs[VERSIONS[-1]], key)
    legacy = legacy_nvidia_docker2(pool)
    # the frozen per-distro tree of the old guides, with nvidia-docker2
    flat_repo(www / "nvidia-docker/ubuntu18.04/amd64", [legacy], key)
    server = RepoServer(www)
    return NvidiaRepo(server, key, other, debs, legacy)


@pytest.fixture(scope="session")
def nvidia_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NvidiaRepo]:
    """The signed NVIDIA-shaped repository, served on 127.0.0.1 for the whole session."""
    for tool in ("gpg", "dpkg-deb", "apt-ftparchive"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool}")
    repo = build_nvidia_repo(tmp_path_factory.mktemp("nvrepo"))
    repo.server.start()
    try:
        yield repo
    finally:
        repo.server.stop()


# -- driving gpuwizard ---------------------------------------------------------------------


def our_steps() -> list[Step]:
    """The two steps under test (the others belong to other parts of the suite)."""
    from gpuwizard.steps.packages import PackagesStep
    from gpuwizard.steps.repository import RepositoryStep

    return [RepositoryStep(), PackagesStep()]


def plan_only(root: Path, options: Options) -> Plan:
    return harness.plan_only(Host(root=root), options, our_steps())


def plan_and_apply(
    root: Path, options: Options, state: Path, on_event: Optional[Callable[[Event], None]] = None
) -> Outcome:
    """gpuwizard's own API, as the CLI uses it: plan, then apply in a journaled run."""
    return harness.plan_and_apply(Host(root=root), options, state, our_steps(), on_event)


def rollback_latest(root: Path, state: Path) -> list[dict[str, object]]:
    return harness.rollback_latest(Host(root=root), state)


def snapshot(root: Path, paths: tuple[str, ...]) -> dict[str, Optional[bytes]]:
    """The bytes of every file under some folders of the root (for nothing-changed checks)."""
    out: dict[str, Optional[bytes]] = {}
    for top in paths:
        base = root / top.lstrip("/")
        if base.is_file():
            out[top] = base.read_bytes()
            continue
        for p in sorted(base.rglob("*")) if base.is_dir() else []:
            if p.is_file() and not p.is_symlink():
                out[str(p.relative_to(root))] = p.read_bytes()
    return out
