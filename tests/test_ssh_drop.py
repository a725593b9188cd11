"""Surviving the SSH drop, for real: the CLI runs under `ssh -tt` to a real sshd on 127.0.0.1
inside tmux, and the test kills the ssh client in the middle. These machines have no systemd
as PID 1, so the fallback (a worker in its own session that ignores SIGHUP) is what runs here.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sshd import REPO, SshServer, Tmux

pytestmark = pytest.mark.slow

SOMEONES_DAEMON_JSON = (
    b'{\n    "log-driver": "json-file",\n    "log-opts": {"max-size": "10m", "max-file": "3"},\n'
    b'    "registry-mirrors": ["https://mirror.example.internal"]\n}\n'
)


def _history(state: Path) -> list[dict]:
    res = subprocess.run(
        [sys.executable, "-m", "gpuwizard", "history", "--json", "--state-dir", str(state)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    return list(json.loads(res.stdout)["runs"])


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_dropped_connection_before_confirmation_rolls_daemon_json_back_after_the_deadline(
    sshd: SshServer, tmux: Tmux, dockerd, tmp_path: Path
) -> None:
    dockerd.daemon_json.write_bytes(SOMEONES_DAEMON_JSON)
    dockerd.stop()
    dockerd.start()
    state = tmp_path / "state"
    restart = shlex.join(dockerd.restart_command())
    args = (
        f"apply --step daemon-config --step restart --state-dir {state} "
        f"--docker-host {dockerd.docker_host} --daemon-json {dockerd.daemon_json} "
        f"--docker-restart-command {shlex.quote(restart)} --docker-wait 20 "
        f"--test-image local/bb:1 --auto-revert 6"
    )
    tmux.start(sshd.client_argv(sshd.remote_gpuwizard(args)), width=100, height=40)
    tmux.wait_for("Apply these changes?", timeout=60)
    tmux.send("y", "Enter")
    tmux.wait_for("Keep the new Docker settings?", timeout=90)
    assert b'"nvidia"' in dockerd.daemon_json.read_bytes()

    # the connection dies: the ssh client is killed, sshd hangs up on the session
    os.kill(tmux.pane_pid(), signal.SIGKILL)

    _wait(
        lambda: dockerd.daemon_json.read_bytes() == SOMEONES_DAEMON_JSON,
        60,
        "daemon.json to come back",
    )
    _wait(
        lambda: bool(_history(state)) and _history(state)[-1]["status"] == "auto-reverted",
        60,
        "the run to be recorded as auto-reverted",
    )
    _wait(dockerd.running, 30, "the daemon to serve again")
    assert dockerd.daemon_json.read_bytes() == SOMEONES_DAEMON_JSON
    info = dockerd.client().info()
    assert "nvidia" not in info.get("Runtimes", {})


def test_confirming_over_ssh_keeps_the_change(
    sshd: SshServer, tmux: Tmux, dockerd, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    restart = shlex.join(dockerd.restart_command())
    args = (
        f"apply --step daemon-config --step restart --state-dir {state} "
        f"--docker-host {dockerd.docker_host} --daemon-json {dockerd.daemon_json} "
        f"--docker-restart-command {shlex.quote(restart)} --docker-wait 20 "
        f"--test-image local/bb:1 --auto-revert 30"
    )
    tmux.start(sshd.client_argv(sshd.remote_gpuwizard(args)), width=100, height=40)
    tmux.wait_for("Apply these changes?", timeout=60)
    tmux.send("y", "Enter")
    tmux.wait_for("Keep the new Docker settings?", timeout=90)
    tmux.send("y", "Enter")
    screen = tmux.wait_for("[exit 0]", timeout=30)
    assert "finished" in screen
    assert _history(state)[-1]["status"] == "finished"
    assert "nvidia" in dockerd.client().info().get("Runtimes", {})
