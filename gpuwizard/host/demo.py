"""Demo mode: the whole flow on any machine, with nothing on it changed.

In the spirit of subiquity's dry-run, demo mode swaps the host's seams, never the steps:

- the root is a folder holding files recorded on the project's H200 machine (Ubuntu 24.04,
  driver 580.159.04, a daemon.json with someone's settings);
- the runner is a `DemoRunner`: it records each argv, answers with short plausible output and
  applies the command's effect to the demo root only (a package "installed" by apt-get is
  written to the demo root's dpkg status), so later steps and their checks see it;
- `nvml_backend` is the recorded H200 backend and `engine_factory` gives recorded Docker facts
  (both from the driver and docker layers, when present).

The demo root lives in one private folder per user and install —
`$XDG_RUNTIME_DIR/gpuwizard-demo-<install>`, else `~/.cache/gpuwizard-demo-<install>`, else a
fresh `mkdtemp` folder (`<install>` hashes the install's folder and version, so two installs
never share a demo machine); `GPUWIZARD_DEMO_ROOT` overrides it
and is set for the detached worker, a separate process, so it finds the same demo machine.
Never a predictable name under /tmp: another local user could pre-create it, or plant links
in it, and make `sudo gpuwizard --demo` write anywhere. Every folder is checked (lstat: a real
folder, owned by us, not writable by others) before anything is written in it.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from gpuwizard.errors import CommandFailed, WizardError
from gpuwizard.host.runner import TAIL_LINES, CommandResult, LineCallback
from gpuwizard.host.system import Host
from gpuwizard.host.toolkit import TOOLKIT_PACKAGES

DEMO_LABEL = "demo: recorded H200 host"
# Where the demo machine keeps its key and its (answered, never read) repository: system paths
# of the demo machine, so nothing shown names the folder gpuwizard is installed in.
DEMO_KEY_PATH = "/usr/share/gpuwizard-demo/demo-key.asc"
DEMO_REPOSITORY_PATH = "/usr/share/gpuwizard-demo/repository/stable"
ROOT_ENV = "GPUWIZARD_DEMO_ROOT"
_MARKER = ".gpuwizard-demo"

# the bundled demo signing key (gpuwizard/data/demo-key.asc), NOT NVIDIA's key
DEMO_FINGERPRINT = "FE139D392EB9839DFEFCEA54F157D15953EFD383"
DRIVER_VERSION = "580.159.04"
CUDA_VERSION = "13.0"
DOCKER_VERSION = "27.5.1"
TOOLKIT_VERSION = "1.17.8-1"

# The files of the recorded host that the steps read. Paths are system paths.
RECORDED_FILES: dict[str, str] = {
    "/etc/os-release": """\
PRETTY_NAME="Ubuntu 24.04.2 LTS"
NAME="Ubuntu"
VERSION_ID="24.04"
VERSION="24.04.2 LTS (Noble Numbat)"
VERSION_CODENAME=noble
ID=ubuntu
ID_LIKE=debian
HOME_URL="https://www.ubuntu.com/"
UBUNTU_CODENAME=noble
""",
    # someone's settings, which must survive every change we make
    "/etc/docker/daemon.json": """\
{
  "log-driver": "json-file",
  "log-opts": {
    "max-size": "50m",
    "max-file": "5"
  },
  "data-root": "/srv/docker",
  "default-address-pools": [
    {"base": "172.30.0.0/16", "size": 24}
  ]
}
""",
    "/proc/driver/nvidia/version": f"""\
NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  {DRIVER_VERSION}  \
Release Build  (dvs-builder@U22-I3-AF03-09-1)  Sat Oct  4 01:31:24 UTC 2025
GCC version:  gcc version 13.3.0 (Ubuntu 13.3.0-6ubuntu2~24.04)
""",
    "/proc/version": "Linux version 6.8.0-60-generic (buildd@lcy02-amd64-054) "
    "(x86_64-linux-gnu-gcc-13 (Ubuntu 13.3.0-6ubuntu2~24.04) 13.3.0) "
    "#63-Ubuntu SMP PREEMPT_DYNAMIC\n",
    "/var/lib/dpkg/arch": "amd64\n",
    "/var/lib/dpkg/status": """\
Package: docker-ce
Status: install ok installed
Architecture: amd64
Version: 5:27.5.1-1~ubuntu.24.04~noble

Package: gnupg
Status: install ok installed
Architecture: all
Version: 2.4.4-2ubuntu17

""",
    "/etc/apt/sources.list.d/ubuntu.sources": """\
Types: deb
URIs: http://archive.ubuntu.com/ubuntu/
Suites: noble noble-updates noble-backports
Components: main restricted universe multiverse
Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg
""",
}

# Executables that exist on the recorded host; DemoRunner answers for them.
RECORDED_PROGRAMS = (
    "/usr/bin/apt-get",
    "/usr/bin/apt",
    "/usr/bin/dpkg",
    "/usr/bin/dpkg-query",
    "/usr/bin/gpg",
    "/usr/bin/docker",
    "/usr/bin/dockerd",
    "/usr/bin/systemctl",
    "/usr/bin/curl",
    "/usr/local/nvidia/bin/nvidia-smi",
    "/lib/systemd/systemd",
)

NVIDIA_SMI = """\
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 580.159.04             Driver Version: 580.159.04     CUDA Version: 13.0     |
+-----------------------------------------+------------------------+----------------------+
| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |
| Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. |
|                                         |                        |               MIG M. |
|=========================================+========================+======================|
|   0  NVIDIA H200                    On  |   00000000:00:06.0 Off |                    0 |
| N/A   31C    P0             76W /  700W |       0MiB / 143771MiB |      0%      Default |
|                                         |                        |             Disabled |
+-----------------------------------------+------------------------+----------------------+

+-----------------------------------------------------------------------------------------+
| Processes:                                                                              |
|  GPU   GI   CI              PID   Type   Process name                        GPU Memory |
|        ID   ID                                                               Usage      |
|=========================================================================================|
|  No running processes found                                                             |
+-----------------------------------------------------------------------------------------+
"""


def demo_options(options: Any) -> Any:
    """The user's options with the repository key pointed at the bundled demo key.

    The demo cannot download NVIDIA's key (and must not trust anything): it uses a key made
    for demo mode, labelled as such, through the same options a mirror user would set.
    """
    import dataclasses

    return dataclasses.replace(
        options,
        key_url="file://" + DEMO_KEY_PATH,
        key_fingerprint=DEMO_FINGERPRINT,
        repo_url="file://" + DEMO_REPOSITORY_PATH,
    )


def _unsafe(path: Path, parent: bool = False) -> Optional[str]:
    """Why `path` must not hold the demo machine, or None when it is ours alone."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        return f"cannot be checked ({exc.strerror})"
    if stat.S_ISLNK(st.st_mode):
        return "is a symlink"
    if not stat.S_ISDIR(st.st_mode):
        return "is not a folder"
    uid = os.geteuid()
    if parent:
        # a parent may be root's, or a sticky shared folder such as /tmp
        if st.st_uid not in (uid, 0):
            return f"belongs to uid {st.st_uid}"
        if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
            return "is writable by others"
        return None
    if st.st_uid != uid:
        return f"belongs to uid {st.st_uid}, not to you (uid {uid})"
    if stat.S_IMODE(st.st_mode) & 0o077:
        return f"is readable or writable by others (mode {oct(stat.S_IMODE(st.st_mode))})"
    return None


def _private(path: Path) -> Path:
    """Create `path` 0700 if absent; refuse it unless it is a real folder of ours alone."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    why = _unsafe(path) or _unsafe(path.parent, parent=True)
    if why:
        raise WizardError(
            f"The demo folder {path} (or its parent) {why}: someone else could steer what "
            "the demo writes",
            f"Remove it, or point {ROOT_ENV} at a folder of your own (mode 0700).",
        )
    return path


def _base_candidates() -> list[Path]:
    out = []
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime):
        out.append(Path(runtime))
    with contextlib.suppress(KeyError):
        home = pwd.getpwuid(os.geteuid()).pw_dir  # not $HOME: sudo may keep the caller's
        if home and os.path.isabs(home):
            out.append(Path(home) / ".cache")
    return out


def folder_name() -> str:
    """`gpuwizard-demo-<install>`: one demo machine per user *and* per install, so a pyz and a
    pip install (or two versions) never read each other's demo state."""
    import hashlib

    from gpuwizard import __version__

    here = str(Path(__file__).resolve().parent.parent)
    return "gpuwizard-demo-" + hashlib.sha256(f"{here}\0{__version__}".encode()).hexdigest()[:10]


def demo_folder() -> Path:
    """The demo machine's folder, private to this user and install (the module's docstring)."""
    explicit = os.environ.get(ROOT_ENV)
    if explicit:
        return _private(Path(os.path.abspath(explicit)))
    folder: Optional[Path] = None
    for base in _base_candidates():
        if base.name == ".cache" and not base.exists():
            with contextlib.suppress(OSError):
                base.mkdir(mode=0o700)
        if _unsafe(base) is None:
            folder = _private(base / folder_name())
            break
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="gpuwizard-demo-"))  # 0700, a random name
    os.environ[ROOT_ENV] = str(folder)  # the detached worker inherits it
    return folder


def populate(root: Path) -> None:
    """Write the recorded host's files under `root` (a fresh demo machine)."""
    for system_path, text in RECORDED_FILES.items():
        target = root / system_path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    for program in RECORDED_PROGRAMS:
        target = root / program.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("#!/bin/sh\n# demo stand-in: DemoRunner answers for this program\n")
        target.chmod(0o755)
    for d in (
        "etc/apt/sources.list.d",
        "etc/apt/keyrings",
        "usr/share/keyrings",
        "var/lib/gpuwizard",
        "run/systemd/system",
    ):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "sbin").mkdir(exist_ok=True)
    init = root / "sbin/init"
    if not init.exists():
        init.symlink_to("/lib/systemd/systemd")
    _place_demo_key(root)
    _place_recorded_hardware(root)
    (root / _MARKER).write_text(json.dumps({"created": time.time(), "label": DEMO_LABEL}))


# The recorded H200 as sysfs and /dev showed it, so `--demo doctor` finds the GPU the driver
# and NVML report (PCI 0000:00:06.0, 10de:2335, a 3D controller) and the device nodes its
# CDI spec names. The nodes are empty files: stand-ins that only need to exist.
RECORDED_PCI = {"0000:00:06.0": {"vendor": "0x10de", "device": "0x2335", "class": "0x030200"}}
RECORDED_NODES = ("/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools")


def _place_recorded_hardware(root: Path) -> None:
    for address, attrs in RECORDED_PCI.items():
        folder = root / "sys/bus/pci/devices" / address
        folder.mkdir(parents=True, exist_ok=True)
        for name, value in attrs.items():
            (folder / name).write_text(value + "\n")
    for node in RECORDED_NODES:
        target = root / node.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch()


def _place_demo_key(root: Path) -> None:
    """The bundled demo key, at its system path on the demo machine (also on a demo machine
    made by an older version)."""
    target = root / DEMO_KEY_PATH.lstrip("/")
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        data = Path(__file__).resolve().parent.parent / "data" / "demo-key.asc"
        target.write_bytes(data.read_bytes())


def demo_host(folder: Optional[Path] = None, fresh: bool = False) -> Host:
    """The demo machine: a Host on the recorded root, with the demo seams plugged in.

    The folder is reused when it already holds a demo machine (the worker process must see
    what the app's earlier runs did); `fresh=True` starts over.
    """
    folder = _private(Path(folder)) if folder is not None else demo_folder()
    root = folder / "root"
    if fresh and (folder / "root" / _MARKER).exists():
        shutil.rmtree(root)
    if not (root / _MARKER).exists():
        root.mkdir(parents=True, exist_ok=True)
        populate(root)
    _place_demo_key(root)
    _place_recorded_hardware(root)
    runner = DemoRunner(root)
    # running_system: the recorded root stands for a running machine, so the restart and
    # the GPU test are planned as on a real host (their Docker is the recorded engine)
    return Host(
        root=root,
        runner=runner,
        label=DEMO_LABEL,
        running_system=True,
        stand_in_root=True,
        nvml_backend=_recorded_nvml(),
        engine_factory=_recorded_engine(root),
        demo=True,
    )


def _recorded_nvml() -> Any:
    """The NVML answers recorded on the H200 machine (gpuwizard/data/h200_recorded.json)."""
    from gpuwizard.host.nvml import recorded_h200

    return recorded_h200(moving=True)


def _recorded_engine(root: Path) -> Any:
    """A factory of recorded Docker engines for the host's engine seam."""

    def factory(_docker_host: Optional[str] = None) -> RecordedEngine:
        return RecordedEngine(root)

    return factory


# -- the Docker engine -----------------------------------------------------------------------
class RecordedEngine:
    """Answers like the H200 machine's Docker did, as far as gpuwizard asks (the SDK's shape).

    Its runtimes and default runtime are read from the demo root's daemon.json, as if the
    daemon had been restarted on it; pulled images are remembered in the demo root.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.images = _Images(self)
        self.containers = _Containers(self)
        self.api = _Api(self)

    def _daemon_json(self) -> dict[str, Any]:
        try:
            data = json.loads((self.root / "etc/docker/daemon.json").read_text() or "{}")
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _image_file(self) -> Path:
        return self.root / "var/lib/gpuwizard/demo-images.json"

    def image_tags(self) -> list[str]:
        try:
            return list(json.loads(self._image_file().read_text()))
        except (OSError, ValueError):
            return ["ubuntu:24.04"]

    def set_image_tags(self, tags: list[str]) -> None:
        self._image_file().write_text(json.dumps(sorted(set(tags))))

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        pass

    def version(self) -> dict[str, Any]:
        return {
            "Version": DOCKER_VERSION,
            "ApiVersion": "1.47",
            "Os": "linux",
            "Arch": "amd64",
            "KernelVersion": "6.8.0-60-generic",
        }

    def info(self) -> dict[str, Any]:
        conf = self._daemon_json()
        runtimes: dict[str, Any] = {"io.containerd.runc.v2": {}, "runc": {}}
        runtimes.update(conf.get("runtimes") or {})
        return {
            "ServerVersion": DOCKER_VERSION,
            "Runtimes": runtimes,
            "DefaultRuntime": conf.get("default-runtime", "runc"),
            "CgroupDriver": "systemd",
            "CgroupVersion": "2",
            "SecurityOptions": ["name=apparmor", "name=seccomp,profile=builtin", "name=cgroupns"],
            "ContainersRunning": 2,
            "LiveRestoreEnabled": bool(conf.get("live-restore")),
            "DockerRootDir": conf.get("data-root", "/var/lib/docker"),
            "DiscoveredDevices": [{"Source": "cdi", "ID": "nvidia.com/gpu=all"}]
            if (self.root / "var/run/cdi/nvidia.yaml").exists()
            else [],
        }


class _Image:
    def __init__(self, tag: str) -> None:
        self.tags = [tag]
        self.id = "sha256:" + format(abs(hash(tag)), "x").rjust(12, "0")


class _Images:
    def __init__(self, engine: RecordedEngine) -> None:
        self.engine = engine

    def list(self) -> list[_Image]:
        return [_Image(t) for t in self.engine.image_tags()]

    def get(self, name: str) -> _Image:
        if name not in self.engine.image_tags():
            import docker  # lazy, as everywhere: the SDK's own error type

            raise docker.errors.ImageNotFound(f"No such image: {name}")
        return _Image(name)

    def remove(self, name: str, **_kw: Any) -> None:
        self.engine.set_image_tags([t for t in self.engine.image_tags() if t != name])


class _Container:
    def __init__(
        self, engine: RecordedEngine, image: str, command: list[str], kw: dict[str, Any]
    ) -> None:
        self.engine = engine
        self.id = "demo" + format(abs(hash((image, tuple(command)))), "x")[:12]
        self.image = image
        self.command = command
        runtime = kw.get("runtime") or engine.info()["DefaultRuntime"]
        self.attrs = {"HostConfig": {"Runtime": runtime}}
        wants_gpu = bool(kw.get("device_requests")) or runtime == "nvidia"
        has_toolkit = "nvidia" in engine.info()["Runtimes"]
        self.ok = not wants_gpu or has_toolkit
        self.output = (
            (NVIDIA_SMI if any("nvidia-smi" in c for c in command) else "")
            if self.ok
            else 'could not select device driver "" with capabilities: [[gpu]]\n'
        )

    def start(self) -> None:
        pass

    def wait(self, **_kw: Any) -> dict[str, int]:
        return {"StatusCode": 0 if self.ok else 125}

    def kill(self) -> None:
        pass

    def remove(self, **_kw: Any) -> None:
        pass

    def stream(self) -> Any:
        for line in self.output.splitlines(keepends=True):
            time.sleep(0.02)
            yield (line.encode(), None) if self.ok else (None, line.encode())


class _Containers:
    def __init__(self, engine: RecordedEngine) -> None:
        self.engine = engine
        self.made: dict[str, _Container] = {}

    def create(self, image: str, command: list[str], **kw: Any) -> _Container:
        c = _Container(self.engine, image, list(command or []), kw)
        self.made[c.id] = c
        return c

    def run(self, image: str, command: list[str], **kw: Any) -> bytes:
        c = _Container(self.engine, image, list(command or []), kw)
        if not c.ok:
            import docker

            raise docker.errors.APIError(c.output.strip())
        return c.output.encode()

    def get(self, name: str) -> _Container:
        return next(iter(self.made.values()), _Container(self.engine, "", [], {}))


class _Api:
    def __init__(self, engine: RecordedEngine) -> None:
        self.engine = engine

    def attach(self, container_id: str, **_kw: Any) -> Any:
        return self.engine.containers.made[container_id].stream()

    def pull(self, repo: str, tag: str = "latest", **_kw: Any) -> Any:
        layers = ("a1b2c3d4e5f6", "0f9e8d7c6b5a")
        for lid in layers:
            yield {"status": "Pulling fs layer", "id": lid}
        for step in range(1, 5):
            for lid in layers:
                time.sleep(0.05)
                yield {
                    "status": "Downloading",
                    "id": lid,
                    "progressDetail": {"current": step * 7_000_000, "total": 28_000_000},
                }
        for lid in layers:
            yield {"status": "Pull complete", "id": lid, "progressDetail": {}}
        self.engine.set_image_tags([*self.engine.image_tags(), f"{repo}:{tag}"])
        yield {"status": f"Status: Downloaded newer image for {repo}:{tag}"}


# -- the runner ------------------------------------------------------------------------------
@dataclass
class DemoRunner:
    """Records every argv and answers like the recorded host would, changing only the demo root.

    Output is short and plausible; the effect of a command on the demo machine (packages in
    dpkg's status, the files a package brings) is written under the demo root so a later
    check (dpkg-query, which) sees it, in this process or in the worker's.
    """

    root: Path
    delay: float = 0.05  # seconds per output line: enough to watch, quick to test
    history: list[tuple[str, ...]] = field(default_factory=list)

    def run(
        self,
        argv: Sequence[str],
        *,
        on_line: Optional[LineCallback] = None,
        timeout: Optional[float] = None,
        env: Optional[Mapping[str, str]] = None,
        input: Optional[bytes] = None,
        check: bool = True,
        cwd: Optional[str] = None,
        remedy: str = "",
        **_extra: Any,  # pass_fds and friends: nothing is started, so nothing is passed
    ) -> CommandResult:
        argv = [str(a) for a in argv]
        if len(argv) > 2 and argv[0] == "chroot":
            argv = argv[2:]  # the demo root plays the machine; there is nothing to chroot
        self.history.append(tuple(argv))
        self._log_argv(argv)
        start = time.monotonic()
        code, out, err = self._answer(argv, input)
        lines: list[str] = []
        for stream, text in (("out", out), ("err", err)):
            for line in text.splitlines():
                lines.append(line)
                if on_line is not None:
                    on_line(stream, line)
                    if self.delay:
                        time.sleep(self.delay)
        result = CommandResult(
            tuple(argv), code, out, err, "\n".join(lines[-TAIL_LINES:]), time.monotonic() - start
        )
        if check and code != 0:
            raise CommandFailed(argv, code, result.tail, remedy)
        return result

    def _log_argv(self, argv: list[str]) -> None:
        """Keep every command the demo 'ran' in the demo root, for the curious."""
        with open(self.root / "var/lib/gpuwizard/demo-commands.log", "a", encoding="utf-8") as fh:
            fh.write(" ".join(argv) + "\n")

    # each answer: (exit status, stdout, stderr)
    def _answer(self, argv: list[str], input: Optional[bytes]) -> tuple[int, str, str]:
        name = os.path.basename(argv[0])
        args = argv[1:]
        handler = getattr(self, "_" + name.replace("-", "_").replace(".", "_"), None)
        if handler is not None:
            result: tuple[int, str, str] = handler(args, input)
            return result
        return 0, f"(demo) would run: {' '.join(argv)}\n", ""

    # apt / dpkg ---------------------------------------------------------------------------
    def _status_path(self) -> Path:
        return self.root / "var/lib/dpkg/status"

    def installed(self) -> dict[str, str]:
        """Package -> version, from the demo root's dpkg status."""
        out = {}
        text = self._status_path().read_text() if self._status_path().exists() else ""
        for stanza in text.split("\n\n"):
            fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line)
            if fields.get("Package") and "installed" in fields.get("Status", ""):
                out[fields["Package"]] = fields.get("Version", "")
        return out

    def _write_status(self, packages: dict[str, str]) -> None:
        stanzas = [
            f"Package: {p}\nStatus: install ok installed\nArchitecture: amd64\nVersion: {v}\n"
            for p, v in sorted(packages.items())
        ]
        self._status_path().write_text("\n".join(stanzas) + "\n")

    def _apt_get(self, args: list[str], _input: Optional[bytes]) -> tuple[int, str, str]:
        words: list[str] = []
        skip = False
        for a in args:
            if skip:
                skip = False
            elif a in ("-o", "-c", "-t"):
                skip = True  # the option's value follows
            elif not a.startswith("-"):
                words.append(a)
        if not words:
            return 0, "", ""
        verb, names = words[0], words[1:]
        if {"-s", "--simulate", "--dry-run", "--just-print"} & set(args):
            return 0, self._simulated(verb, names), ""
        if verb == "update":
            self._write_index()
            url = self._repository_url() or "http://archive.ubuntu.com/ubuntu noble"
            return (
                0,
                (
                    f"Get:1 {url}  InRelease [1477 B]\n"
                    f"Get:2 {url}  Packages [20.4 kB]\n"
                    "Fetched 21.9 kB in 1s (24.1 kB/s)\nReading package lists...\n"
                ),
                "",
            )
        if verb == "install":
            packages = self.installed()
            out = [
                "Reading package lists...",
                "Building dependency tree...",
                "The following NEW packages will be installed:",
                "  " + " ".join(n.split("=")[0] for n in names),
            ]
            for n in names:
                pkg, _, version = n.partition("=")
                version = version or TOOLKIT_VERSION
                packages[pkg] = version
                out.append(f"Unpacking {pkg} ({version}) ...")
            for n in names:
                pkg, _, version = n.partition("=")
                out.append(f"Setting up {pkg} ({version or TOOLKIT_VERSION}) ...")
            self._write_status(packages)
            self._place_toolkit_files(packages)
            return 0, "\n".join(out) + "\n", ""
        if verb in ("remove", "purge", "autoremove"):
            packages = self.installed()
            out = ["Reading package lists..."]
            for n in names:
                pkg = n.split("=")[0]
                if packages.pop(pkg, None) is not None:
                    out.append(f"Removing {pkg} ...")
            self._write_status(packages)
            self._place_toolkit_files(packages)
            return 0, "\n".join(out) + "\n", ""
        return 0, f"(demo) apt-get {' '.join(args)}\n", ""

    _apt = _apt_get

    def _simulated(self, verb: str, names: list[str]) -> str:
        installed = self.installed()
        lines = []
        for n in names:
            pkg, _, version = n.partition("=")
            if verb == "install":
                old = f"[{installed[pkg]}] " if pkg in installed else ""
                lines.append(
                    f"Inst {pkg} {old}({version or TOOLKIT_VERSION} "
                    "nvidia-container-toolkit:stable [amd64])"
                )
            elif pkg in installed:
                lines.append(f"Remv {pkg} [{installed[pkg]}]")
        return "\n".join(lines) + "\n"

    def _write_index(self) -> None:
        """What apt-get update leaves: the NVIDIA source's Packages index in the demo root."""
        url = self._repository_url()
        if url is None:
            return
        from gpuwizard.host.sources import apt_list_prefix

        lists = self.root / "var/lib/apt/lists"
        lists.mkdir(parents=True, exist_ok=True)
        (lists / (apt_list_prefix(url) + "Packages")).write_text(
            "".join(
                f"Package: {n}\nVersion: {TOOLKIT_VERSION}\nArchitecture: amd64\n\n"
                for n in TOOLKIT_PACKAGES
            )
        )

    def _repository_listed(self) -> bool:
        return self._repository_url() is not None

    def _repository_url(self) -> Optional[str]:
        """The URL of the NVIDIA source the repository step wrote, if it did."""
        lists = self.root / "etc/apt/sources.list.d"
        for path in sorted(lists.glob("*nvidia*")) if lists.is_dir() else []:
            for line in path.read_text(errors="replace").splitlines():
                words = [
                    w
                    for w in line.split()
                    if not w.startswith("[") and "=" not in w and not w.endswith("]")
                ]
                if len(words) >= 2 and words[0] == "deb":
                    return words[1].replace("$(ARCH)", "amd64")  # as apt substitutes it
        return None

    def _apt_cache(self, args: list[str], _input: Optional[bytes]) -> tuple[int, str, str]:
        words = [a for a in args if not a.startswith("-")]
        if not words:
            return 0, "", ""
        verb, names = words[0], words[1:]
        src = f"{self._repository_url()}  Packages"
        if verb == "madison":
            if not self._repository_listed():
                return 0, "", ""
            return (
                0,
                "".join(
                    f"{n} | {v} | {src}\n"
                    for n in names
                    if n in TOOLKIT_PACKAGES
                    for v in (TOOLKIT_VERSION, "1.17.7-1", "1.16.2-1")
                ),
                "",
            )
        if verb == "policy":
            installed = self.installed()
            out = []
            candidate = TOOLKIT_VERSION if self._repository_listed() else "(none)"
            for n in names:
                out.append(
                    f"{n}:\n  Installed: {installed.get(n, '(none)')}\n  Candidate: {candidate}"
                )
            return 0, "\n".join(out) + "\n", ""
        return 0, "", ""

    def _place_toolkit_files(self, packages: dict[str, str]) -> None:
        present = "nvidia-container-toolkit" in packages
        for prog in (
            "nvidia-ctk",
            "nvidia-container-runtime",
            "nvidia-container-runtime-hook",
            "nvidia-container-cli",
        ):
            path = self.root / "usr/bin" / prog
            if present:
                path.write_text("#!/bin/sh\n# demo stand-in\n")
                path.chmod(0o755)
            elif path.exists():
                path.unlink()

    def _dpkg_query(self, args: list[str], _input: Optional[bytes]) -> tuple[int, str, str]:
        packages = self.installed()
        fmt = next(
            (a.split("=", 1)[1] for a in args if a.startswith(("-f=", "--showformat="))), None
        )
        if fmt is None and "-f" in args:
            fmt = args[args.index("-f") + 1]
        names = [a for a in args if not a.startswith("-") and a != fmt]
        out, err, code = [], [], 0
        for n in names or sorted(packages):
            if n in packages:
                if fmt:
                    out.append(
                        fmt.replace("${Package}", n)
                        .replace("${Version}", packages[n])
                        .replace("${Status}", "install ok installed")
                        .replace("${db:Status-Abbrev}", "ii ")
                        .replace("\\n", "\n")
                        .replace("\\t", "\t")
                    )
                else:
                    out.append(f"{n}\t{packages[n]}\n")
            else:
                code = 1
                err.append(f"dpkg-query: no packages found matching {n}\n")
        return code, "".join(out), "".join(err)

    def _dpkg(self, args: list[str], _input: Optional[bytes]) -> tuple[int, str, str]:
        if "--print-architecture" in args:
            return 0, "amd64\n", ""
        return 0, f"(demo) dpkg {' '.join(args)}\n", ""

    # docker, systemd, nvidia --------------------------------------------------------------
    def _systemctl(self, args: list[str], _input: Optional[bytes]) -> tuple[int, str, str]:
        verbs = [a for a in args if not a.startswith("-")]
        if verbs and verbs[0] == "is-active":
            return 0, "active\n", ""
        if verbs and verbs[0] == "show":
            return 0, "ActiveState=active\nSubState=running\nNRestarts=0\n", ""
        return 0, "", ""

    def _docker(self, args: list[str], _input: Optional[bytes]) -> tuple[int, str, str]:
        if args[:1] == ["version"] or "--version" in args:
            return 0, f"Docker version {DOCKER_VERSION}, build 9f9e405\n", ""
        if args[:1] == ["run"]:
            if any("nvidia-smi" in a for a in args):
                return 0, NVIDIA_SMI, ""
            return 0, "", ""
        return 0, f"(demo) docker {' '.join(args)}\n", ""

    def _nvidia_smi(self, args: list[str], _input: Optional[bytes]) -> tuple[int, str, str]:
        if "--query-gpu=driver_version" in " ".join(args):
            return 0, f"{DRIVER_VERSION}\n", ""
        return 0, NVIDIA_SMI, ""

    def _nvidia_ctk(self, args: list[str], _input: Optional[bytes]) -> tuple[int, str, str]:
        if "--version" in args:
            version = TOOLKIT_VERSION.split("-")[0]
            return 0, f"NVIDIA Container Toolkit CLI version {version}\ncommit: demo\n", ""
        # `cdi generate` writes the shape of the spec the real toolkit 1.20.0 made on the
        # recorded H200 (schema 0.5.0; devices 0, the GPU's UUID, all); `cdi list` names them
        if args[:2] == ["cdi", "generate"]:
            output = next((a.split("=", 1)[1] for a in args if a.startswith("--output=")), "")
            if not output:
                return 1, "", "demo: nvidia-ctk cdi generate needs --output=FILE\n"
            Path(output).write_text(_demo_cdi_spec())
            return (
                0,
                "",
                'Auto-detected mode as "nvml"\nUsing driver version 580.159.04\n'
                "Generated CDI spec with version 0.5.0\n",
            )
        if args[:2] == ["cdi", "list"]:
            names = ["nvidia.com/gpu=0", f"nvidia.com/gpu={_DEMO_GPU_UUID}", "nvidia.com/gpu=all"]
            return 0, f"Found {len(names)} CDI devices\n" + "\n".join(names) + "\n", ""
        return 0, f"(demo) nvidia-ctk {' '.join(args)}\n", ""

    def _gpg(self, args: list[str], _input: Optional[bytes]) -> tuple[int, str, str]:
        """Answers for the demo key only, as recorded from gpg 2.2; nothing is imported."""
        data = Path(__file__).resolve().parent.parent / "data"
        if "--dearmor" in args and "-o" in args:
            Path(args[args.index("-o") + 1]).write_bytes((data / "demo-key.gpg").read_bytes())
            return 0, "", ""
        if "--import" in args and "show-only" in args:
            if _input is not None and b"BEGIN PGP PUBLIC KEY" not in _input:
                return 2, "", "gpg: no valid OpenPGP data found.\n"
            return 0, (data / "demo-key.colons").read_text(), ""
        return 0, "", ""

    def _uname(self, args: list[str], _input: Optional[bytes]) -> tuple[int, str, str]:
        return 0, "6.8.0-60-generic\n" if "-r" in args else "Linux\n", ""


def recorded_demo_key() -> Optional[Path]:
    """The demo signing key bundled in gpuwizard/data, if this install has one."""
    path = Path(__file__).resolve().parent.parent / "data" / "demo-key.asc"
    return path if path.exists() else None


_DEMO_GPU_UUID = "GPU-eda911fc-8e65-9cf4-1e73-c51d311ac2df"  # the recorded H200's


def _demo_cdi_spec() -> str:
    """The shape of the spec nvidia-ctk 1.20.0 generated on the recorded H200."""
    nodes = ["/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"]
    edits = "".join(f"    - path: {n}\n" for n in nodes)
    device = "    containerEdits:\n      deviceNodes:\n        - path: /dev/nvidia0\n"
    mounts = "".join(
        f"    - hostPath: {p}\n      containerPath: {p}\n      options: [ro, nosuid, nodev, bind]\n"
        for p in (
            "/usr/local/nvidia/lib64/libnvidia-ml.so.580.159.04",
            "/usr/local/nvidia/bin/nvidia-smi",
        )
    )
    return (
        "cdiVersion: 0.5.0\n"
        "kind: nvidia.com/gpu\n"
        "devices:\n"
        f'  - name: "0"\n{device}'
        f"  - name: {_DEMO_GPU_UUID}\n{device}"
        f"  - name: all\n{device}"
        "containerEdits:\n"
        "  env:\n"
        "    - NVIDIA_VISIBLE_DEVICES=void\n"
        f"  deviceNodes:\n{edits}"
        f"  mounts:\n{mounts}"
    )
