"""The demo machine: a private folder holding the recorded host, and the Host on it with
the demo seams plugged in (the recorded runner, engine and NVML)."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import stat
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from gpuwizard.demo.engine import RecordedEngine
from gpuwizard.demo.recorded import (
    DEMO_FINGERPRINT,
    DEMO_KEY_PATH,
    DEMO_LABEL,
    DEMO_REPOSITORY_PATH,
    MARKER,
    RECORDED_FILES,
    RECORDED_NODES,
    RECORDED_PCI,
    RECORDED_PROGRAMS,
    ROOT_ENV,
    demo_key_file,
)
from gpuwizard.demo.runner import DemoRunner
from gpuwizard.errors import WizardError
from gpuwizard.host.system import Host


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
    (root / MARKER).write_text(json.dumps({"created": time.time(), "label": DEMO_LABEL}))


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
        data = demo_key_file()
        target.write_bytes(data.read_bytes())


def demo_host(folder: Optional[Path] = None, fresh: bool = False) -> Host:
    """The demo machine: a Host on the recorded root, with the demo seams plugged in.

    The folder is reused when it already holds a demo machine (the worker process must see
    what the app's earlier runs did); `fresh=True` starts over.
    """
    folder = _private(Path(folder)) if folder is not None else demo_folder()
    root = folder / "root"
    if fresh and (folder / "root" / MARKER).exists():
        shutil.rmtree(root)
    if not (root / MARKER).exists():
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


def recorded_demo_key() -> Optional[Path]:
    """The demo signing key bundled in gpuwizard/data, if this install has one."""
    path = demo_key_file()
    return path if path.exists() else None
