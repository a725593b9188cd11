"""A real OpenSSH server on 127.0.0.1, with its own host key and a user key, for the
disconnect tests: the app runs under `ssh -tt` inside tmux, and the test kills the client."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SshServer:
    port: int
    key: Path
    folder: Path

    def client_argv(self, remote_command: str) -> list[str]:
        return [
            "ssh",
            "-tt",
            "-i",
            str(self.key),
            "-p",
            str(self.port),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ServerAliveInterval=0",
            "root@127.0.0.1",
            remote_command,
        ]

    def remote_gpuwizard(self, args: str) -> str:
        """A shell line for the remote side: our interpreter, our checkout, a terminal."""
        env = f"PYTHONPATH={REPO} TERM=xterm-256color NO_COLOR=1 GPUWIZARD_NO_SYSTEMD_RUN=1"
        # the exit line also keeps the last output from racing the connection's close
        return (
            f"cd {REPO} && env {env} {sys.executable} -m gpuwizard {args}; "
            'echo "[exit $?]"; sleep 0.3'
        )


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    binary = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(binary).exists():
        pytest.fail("openssh-server is not installed (scripts/test installs it)")
    folder = tmp_path_factory.mktemp("sshd")
    os.chmod(folder, 0o700)
    host_key = folder / "host_key"
    user_key = folder / "user_key"
    for key in (host_key, user_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    auth = folder / "authorized_keys"
    auth.write_text(Path(f"{user_key}.pub").read_text())
    os.chmod(auth, 0o600)
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
    port = _free_port()
    config = folder / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
        f"AuthorizedKeysFile {auth}\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        f"StrictModes no\nPidFile {folder / 'sshd.pid'}\nPrintMotd no\n"
        "ClientAliveInterval 0\n"
    )
    proc = subprocess.Popen(
        [binary, "-D", "-e", "-f", str(config)],
        stdout=open(folder / "sshd.log", "wb"),  # noqa: SIM115 - lives as long as sshd
        stderr=subprocess.STDOUT,
    )
    server = SshServer(port, user_key, folder)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("sshd did not start: " + (folder / "sshd.log").read_text())
    yield server
    proc.terminate()
    proc.wait(timeout=10)


@dataclass
class Tmux:
    """One tmux server of our own, with one window of a fixed size."""

    socket_name: str

    conf: Path

    def cmd(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["tmux", "-L", self.socket_name, "-f", str(self.conf), *args],
            check=check,
            capture_output=True,
            text=True,
        )

    def start(self, argv: list[str], width: int = 80, height: int = 24) -> None:
        import shlex

        self.cmd("new-session", "-d", "-x", str(width), "-y", str(height), shlex.join(argv))

    def screen(self) -> str:
        return self.cmd("capture-pane", "-p", check=False).stdout

    def pane_pid(self) -> int:
        return int(self.cmd("list-panes", "-F", "#{pane_pid}").stdout.split()[0])

    def send(self, *keys: str) -> None:
        self.cmd("send-keys", *keys)

    def wait_for(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never appeared; the screen was:\n{screen}")


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    conf = tmp_path / "tmux.conf"
    # keep a finished pane on screen so its last output can still be read
    conf.write_text("set -g remain-on-exit on\nset -g status off\n")
    t = Tmux(f"gpuwizard-test-{os.getpid()}-{tmp_path.name}", conf)
    yield t
    t.cmd("kill-server", check=False)
