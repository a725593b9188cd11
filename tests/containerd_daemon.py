"""A private containerd for a test: its own root, state, socket and config.toml under a short
folder in /tmp, so nothing collides with a system containerd or another helper's daemons.

Also a program: `python tests/containerd_daemon.py restart DIR` is the test's "restart
containerd" (gpuwizard's `--containerd-restart-command`): stop it by pid, start it again
detached with the same flags, exit 0 once it answers or 1 (with its log's tail) if it died.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _pid(base: Path) -> Optional[int]:
    try:
        return int((base / "pid").read_text().strip())
    except (OSError, ValueError):
        return None


def answers(base: Path) -> bool:
    spec = json.loads((base / "containerd.json").read_text())
    res = subprocess.run(
        [spec["ctr"], "--address", str(base / "c.sock"), "version"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    return res.returncode == 0 and "Server:" in res.stdout


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
    spec = json.loads((base / "containerd.json").read_text())
    with open(base / "containerd.log", "ab") as log:
        proc = subprocess.Popen(  # noqa: S603
            spec["argv"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=spec["env"],
            start_new_session=True,
        )
    (base / "pid").write_text(str(proc.pid))
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            tail = (base / "containerd.log").read_text(errors="replace").splitlines()[-5:]
            print("containerd exited with status", proc.returncode, file=sys.stderr)
            print("\n".join(tail), file=sys.stderr)
            return 1
        if (base / "c.sock").exists() and answers(base):
            return 0
        time.sleep(0.1)
    print("containerd did not answer in time", file=sys.stderr)
    return 1


def restart(base: Path) -> int:
    stop(base)
    return start(base)


class Containerd:
    """One private containerd (the given binary) and what a test needs to drive it."""

    def __init__(self, binary: str, ctr: str, path_dirs: tuple[str, ...] = ()) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="gwctd-", dir="/tmp"))
        self.binary = binary
        self.etc = self.base / "etc" / "containerd"
        self.etc.mkdir(parents=True)
        self.config = self.etc / "config.toml"
        self.sock = self.base / "c.sock"
        self.log = self.base / "containerd.log"
        env = dict(os.environ)
        env["PATH"] = ":".join([*path_dirs, env.get("PATH", "/usr/bin:/bin")])
        (self.base / "containerd.json").write_text(
            json.dumps({"argv": [binary, "--config", str(self.config)], "env": env, "ctr": ctr})
        )

    def base_config(self, version: int = 2, extra: str = "") -> str:
        cri = '"io.containerd.cri.v1.runtime"' if version >= 3 else '"io.containerd.grpc.v1.cri"'
        return (
            f"version = {version}\n"
            f'root = "{self.base}/root"\n'
            f'state = "{self.base}/state"\n'
            "\n[grpc]\n"
            f'  address = "{self.sock}"\n'
            "\n[ttrpc]\n"
            f'  address = "{self.sock}.ttrpc"\n'
            f"\n[plugins.{cri}]\n"
            "  restrict_oom_score_adj = true\n" + extra
        )

    def restart_command(self) -> str:
        return f"{sys.executable} {HERE / 'containerd_daemon.py'} restart {self.base}"

    def start(self) -> None:
        if start(self.base) != 0:
            raise RuntimeError(self.log.read_text(errors="replace")[-3000:])

    @property
    def pid(self) -> Optional[int]:
        return _pid(self.base)

    def stop(self) -> None:
        stop(self.base)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "restart":
        sys.exit(restart(Path(sys.argv[2])))
    print("usage: containerd_daemon.py restart DIR", file=sys.stderr)
    sys.exit(2)
