"""pytest plugin: a private dockerd per test session (Debian's docker.io), and its restart.

Each daemon has its own data root, exec root, socket, pidfile, daemon.json and log file under
a short folder in /tmp, so nothing collides with a system daemon or another helper's tests.
The stand-ins (tests/stand_ins/, test suite only) are put on its PATH when asked for.

Also a program: `python tests/dockerd.py restart DIR` is the test's "restart Docker"
(gpuwizard's `--restart-command`): stop the daemon by pid, start it again detached with the
same flags, and exit 0 once it answers or 1 (with its log's tail) if it died.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Optional

HERE = Path(__file__).resolve().parent
STAND_INS = HERE / "stand_ins"
STAND_IN_PROGRAMS = ("nvidia-container-runtime-hook", "nvidia-container-runtime", "nvidia-ctk")
BUSYBOX_LINKS = (
    "sh",
    "echo",
    "cat",
    "true",
    "false",
    "sleep",
    "ls",
    "env",
    "printf",
    "seq",
    "date",
)
IMAGE = "local/bb:1"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _ping(sock: str, timeout: float = 1.0) -> bool:
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(sock)
        s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        data = s.recv(256)
        s.close()
        return b" 200 " in data
    except OSError:
        return False


def _pid(base: Path) -> Optional[int]:
    try:
        return int((base / "docker.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def stop(base: Path, timeout: float = 20.0) -> None:
    pid = _pid(base)
    if pid is None or not _alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    end = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < end:
        time.sleep(0.05)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


def start(base: Path, timeout: float = 30.0) -> int:
    """Start dockerd detached with the recorded flags; 0 once it answers, 1 if it died."""
    spec = json.loads((base / "dockerd.json").read_text())
    with open(base / "dockerd.log", "ab") as log:
        proc = subprocess.Popen(
            spec["argv"],
            stdout=log,  # noqa: S603
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=spec["env"],
            start_new_session=True,
        )
    end = time.monotonic() + timeout
    sock = str(base / "docker.sock")
    while time.monotonic() < end:
        if proc.poll() is not None:
            tail = (base / "dockerd.log").read_text(errors="replace").splitlines()[-5:]
            print("dockerd exited with status", proc.returncode, file=sys.stderr)
            print("\n".join(tail), file=sys.stderr)
            return 1
        if _ping(sock):
            return 0
        time.sleep(0.05)
    print("dockerd did not answer in time", file=sys.stderr)
    return 1


class Dockerd:
    """One private dockerd and what a test needs to drive it."""

    def __init__(self, base: Path, stand_ins: bool = True, engine: Any = None) -> None:
        """`engine`: a `tests.docker_versions.DockerBinaries` (another Docker version's
        programs); None: the host's own docker.io (20.10)."""
        self.base = base
        self.engine = engine
        self.docker_cli = engine.docker if engine is not None else "docker"
        self.version = engine.version if engine is not None else "20.10"
        extra = ["--ip6tables=false"] if engine is not None and engine.bin else []
        self.bin = base / "bin"
        self.daemon_json = base / "etc" / "docker" / "daemon.json"
        self.sock = base / "docker.sock"
        self.docker_host = f"unix://{self.sock}"
        self.log = base / "dockerd.log"
        self.bin.mkdir(parents=True, exist_ok=True)
        self.daemon_json.parent.mkdir(parents=True, exist_ok=True)
        if stand_ins:
            self.install_stand_ins()
        (base / "dockerd.json").write_text(
            json.dumps(
                {
                    "argv": [
                        engine.dockerd if engine is not None else "dockerd",
                        "--data-root",
                        str(base / "data"),
                        "--exec-root",
                        str(base / "exec"),
                        "-H",
                        self.docker_host,
                        "--pidfile",
                        str(base / "docker.pid"),
                        "--config-file",
                        str(self.daemon_json),
                        # no docker0 and no iptables chains: several private daemons (other
                        # parts of the suite, other checkouts) would fight over them
                        "--bridge=none",
                        "--iptables=false",
                        *extra,
                    ],
                    "env": {
                        **os.environ,
                        "PATH": f"{self.bin}:"
                        + (engine.path_prefix() if engine is not None else "")
                        + "/usr/local/sbin:/usr/local/bin:"
                        "/usr/sbin:/usr/bin:/sbin:/bin",
                    },
                }
            )
        )

    # -- stand-ins ---------------------------------------------------------------------
    def install_stand_ins(self, which: tuple[str, ...] = STAND_IN_PROGRAMS) -> None:
        """Put the stand-ins on the daemon's PATH (the toolkit 'appearing')."""
        shutil.copy(STAND_INS / "_standin_common.py", self.bin / "_standin_common.py")
        for name in which:
            text = (STAND_INS / name).read_text()
            text = text.replace("#!/usr/bin/env python3", f"#!{sys.executable}", 1)
            target = self.bin / name
            target.write_text(text)
            target.chmod(0o755)

    def calls(self, program: Optional[str] = None) -> list[dict[str, Any]]:
        path = self.bin / "standin-calls.log"
        if not path.exists():
            return []
        out = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [c for c in out if program is None or c["program"] == program]

    def clear_calls(self) -> None:
        (self.bin / "standin-calls.log").unlink(missing_ok=True)

    # -- life ----------------------------------------------------------------------------
    def start(self) -> None:
        if start(self.base) != 0:
            raise RuntimeError("the test dockerd did not start:\n" + self.log_tail())

    def stop(self) -> None:
        stop(self.base)

    def restart_command(self) -> list[str]:
        return [sys.executable, str(Path(__file__).resolve()), "restart", str(self.base)]

    def pid(self) -> Optional[int]:
        return _pid(self.base)

    def running(self) -> bool:
        pid = self.pid()
        return pid is not None and _alive(pid) and _ping(str(self.sock))

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def client(self) -> Any:
        import docker

        return docker.DockerClient(base_url=self.docker_host, timeout=60)

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """The docker CLI against this daemon."""
        return subprocess.run(
            [self.docker_cli, *args],
            capture_output=True,
            text=True,  # noqa: S603
            env={**os.environ, "DOCKER_HOST": self.docker_host},
            check=check,
            timeout=120,
        )

    def import_busybox(self) -> None:
        """`local/bb:1`: busybox-static and a few links, imported (no registry here)."""
        root = self.base / "bb"
        (root / "bin").mkdir(parents=True, exist_ok=True)
        (root / "usr" / "bin").mkdir(parents=True, exist_ok=True)
        shutil.copy("/bin/busybox", root / "bin" / "busybox")
        for name in BUSYBOX_LINKS:
            link = root / "bin" / name
            if not link.exists():
                link.symlink_to("busybox")
        tar = subprocess.run(
            ["tar", "-C", str(root), "-c", "."],  # noqa: S603
            capture_output=True,
            check=True,
        )
        subprocess.run(
            [self.docker_cli, "import", "-", IMAGE],
            input=tar.stdout,  # noqa: S603
            env={**os.environ, "DOCKER_HOST": self.docker_host},
            check=True,
            capture_output=True,
        )


def make_dockerd(
    stand_ins: bool = True, daemon_json: bytes = b"{}\n", engine: Any = None
) -> Dockerd:
    base = Path(tempfile.mkdtemp(prefix="gw-dk-", dir="/tmp"))
    d = Dockerd(base, stand_ins, engine)
    d.daemon_json.write_bytes(daemon_json)
    return d


def cleanup(d: Dockerd) -> None:
    d.stop()
    subprocess.run(
        ["umount", "-R", str(d.base / "data")],  # noqa: S603
        capture_output=True,
        check=False,
    )
    shutil.rmtree(d.base, ignore_errors=True)


def _have_dockerd() -> bool:
    return shutil.which("dockerd") is not None and os.geteuid() == 0


try:
    import pytest
except ImportError:  # run as a program
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    def _running(stand_ins: bool) -> Iterator[Dockerd]:
        """A started private dockerd with `local/bb:1` imported; stopped and removed after."""
        if not _have_dockerd():
            pytest.skip("needs dockerd (apt-get install docker.io) and root")
        d = make_dockerd(stand_ins=stand_ins)
        try:
            d.start()
            d.import_busybox()
            yield d
        finally:
            cleanup(d)

    @pytest.fixture(scope="session")
    def dockerd_session() -> Iterator[Dockerd]:
        """One private dockerd with the stand-ins on its PATH and `local/bb:1` imported."""
        yield from _running(stand_ins=True)

    @pytest.fixture
    def dockerd(dockerd_session: Dockerd) -> Iterator[Dockerd]:
        """The session daemon, reset for a test: daemon.json `{}`, stand-in log empty.
        A test that changed daemon.json restarts it back in teardown (only then)."""
        d = dockerd_session
        d.clear_calls()
        (d.bin / "standin-offpath").unlink(missing_ok=True)
        before = d.daemon_json.read_bytes()
        yield d
        (d.bin / "standin-offpath").unlink(missing_ok=True)
        d.clear_calls()
        if d.daemon_json.read_bytes() != b"{}\n" or before != b"{}\n" or not d.running():
            d.daemon_json.write_bytes(b"{}\n")
            d.stop()
            d.start()

    @pytest.fixture
    def bare_dockerd() -> Iterator[Dockerd]:
        """A private dockerd WITHOUT the stand-ins on its PATH (no toolkit yet)."""
        yield from _running(stand_ins=False)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "restart":
        folder = Path(sys.argv[2])
        stop(folder)
        sys.exit(start(folder))
    print("usage: dockerd.py restart DIR", file=sys.stderr)
    sys.exit(2)


def wizard_options(d: Dockerd, **kw: Any) -> Any:
    """Options that point gpuwizard at this daemon and its restart command."""
    from gpuwizard.options import Options

    base: dict[str, Any] = {
        "docker_host": d.docker_host,
        "restart_method": "command",
        "restart_command": d.restart_command(),
        "docker_wait": 20.0,
        "test_image": IMAGE,
        "skip_cuda_test": True,
    }
    base.update(kw)
    return Options(**base)


def plan_and_apply(
    options: Any, state_dir: Path, events: Optional[list[Any]] = None
) -> tuple[Any, Any]:
    """Plan and apply the selected steps like `gpuwizard apply --yes`; returns (plan, run)."""
    import harness

    from gpuwizard.host.system import Host

    sink = events.append if events is not None else None
    out = harness.plan_and_apply(
        Host(), options, state_dir, docker_steps(), on_event=sink, raise_errors=True
    )
    return out.plan, out.run


def docker_steps() -> list[Any]:
    """The three Docker steps (the others belong to other parts of the suite)."""
    from gpuwizard.steps.daemon_config import DaemonConfigStep
    from gpuwizard.steps.gpu_test import GpuTestStep
    from gpuwizard.steps.restart import RestartStep

    return [DaemonConfigStep(), RestartStep(), GpuTestStep()]
