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


def _apply_until_asked_to_keep(
    sshd: SshServer, tmux: Tmux, dockerd, state: Path, auto_revert: int
) -> None:
    """Over ssh: apply daemon-config + restart to the private dockerd, answer 'y' to the plan,
    and stop at 'Keep the new Docker settings?'."""
    dockerd.daemon_json.write_bytes(SOMEONES_DAEMON_JSON)
    dockerd.stop()
    dockerd.start()
    restart = shlex.join(dockerd.restart_command())
    args = (
        f"apply --step daemon-config --step restart --state-dir {state} "
        f"--docker-host {dockerd.docker_host} --daemon-json {dockerd.daemon_json} "
        f"--docker-restart-command {shlex.quote(restart)} --docker-wait 20 "
        f"--test-image local/bb:1 --auto-revert {auto_revert}"
    )
    tmux.start(sshd.client_argv(sshd.remote_gpuwizard(args)), width=100, height=40)
    tmux.wait_for("Apply these changes?", timeout=60)
    tmux.send("y", "Enter")
    tmux.wait_for("Keep the new Docker settings?", timeout=90)
    assert b'"nvidia"' in dockerd.daemon_json.read_bytes()


def test_dropped_connection_before_confirmation_rolls_daemon_json_back_after_the_deadline(
    sshd: SshServer, tmux: Tmux, dockerd, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    _apply_until_asked_to_keep(sshd, tmux, dockerd, state, auto_revert=6)

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
    _apply_until_asked_to_keep(sshd, tmux, dockerd, state, auto_revert=30)
    tmux.send("y", "Enter")
    screen = tmux.wait_for("[exit 0]", timeout=30)
    assert "finished" in screen
    assert _history(state)[-1]["status"] == "finished"
    assert "nvidia" in dockerd.client().info().get("Runtimes", {})


# -- the packages step, killed in the middle ---------------------------------------------------
SLOW = "1.20.2-1"


@pytest.fixture(scope="module")
def slow_repo(tmp_path_factory: pytest.TempPathFactory):
    """A signed repository whose libnvidia-container1 takes 4 s in its postinst, so the
    connection can be cut while dpkg is at work."""
    from debroot import RepoServer, flat_repo, make_key, toolkit_debs

    top = tmp_path_factory.mktemp("slowrepo")
    key = make_key(top / "key", "gpuwizard slow test repository <slow@example.invalid>")
    pool = top / "pool"
    pool.mkdir()
    debs = toolkit_debs(pool, SLOW)
    lib = next(d for d in debs if d.name.startswith("libnvidia-container1_"))
    tree = top / "tree"
    subprocess.run(["dpkg-deb", "-R", str(lib), str(tree)], check=True)
    postinst = tree / "DEBIAN" / "postinst"
    postinst.write_text("#!/bin/sh\necho 'stand-in postinst: working for 4 s'\nsleep 4\n")
    postinst.chmod(0o755)
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(lib)],
        check=True,
        capture_output=True,
    )
    www = top / "www"
    (www / "stable").mkdir(parents=True)
    (www / "gpgkey").write_bytes(key.armored)
    flat_repo(www / "stable/deb/amd64", debs, key)
    server = RepoServer(www)
    server.start()
    yield server, key
    server.stop()


def test_dropped_connection_in_the_middle_of_the_install_lets_it_finish(
    sshd: SshServer, tmux: Tmux, debroot: Path, slow_repo, tmp_path: Path
) -> None:
    server, key = slow_repo
    state = tmp_path / "state"
    common = (
        f"--root {debroot} --state-dir {state} --step repository --step packages "
        f"--repo-url {server.url}/stable --key-url {server.url}/gpgkey "
        f"--key-fingerprint {key.fingerprint}"
    )
    tmux.start(sshd.client_argv(sshd.remote_gpuwizard(f"apply {common}")), width=100, height=40)
    tmux.wait_for("Apply these changes?", timeout=120)
    tmux.send("y", "Enter")
    tmux.wait_for("stand-in postinst: working", timeout=120)

    # the connection dies while dpkg runs the postinst
    os.kill(tmux.pane_pid(), signal.SIGKILL)
    runs = _history(state)
    assert runs and runs[-1]["status"] == "in-progress"

    _wait(lambda: _history(state)[-1]["status"] == "finished", 120, "the install to finish")
    audit = subprocess.run(
        ["chroot", str(debroot), "dpkg", "--audit"], capture_output=True, text=True
    )
    assert audit.returncode == 0 and audit.stdout.strip() == "", audit.stdout
    status = subprocess.run(
        [
            "chroot",
            str(debroot),
            "dpkg-query",
            "-W",
            "-f",
            "${Status} ${Version}\n",
            "nvidia-container-toolkit",
        ],
        capture_output=True,
        text=True,
    )
    assert status.stdout.strip() == f"install ok installed {SLOW}"

    # a new ssh session shows the finished step
    tmux.cmd("kill-server", check=False)
    again = Tmux(tmux.socket_name + "-2", tmux.conf)
    try:
        again.start(
            sshd.client_argv(sshd.remote_gpuwizard(f"attach --state-dir {state}")),
            width=100,
            height=40,
        )
        screen = again.wait_for("[exit 0]", timeout=60)
        assert "packages: done" in screen
        assert "finished" in screen
    finally:
        again.cmd("kill-server", check=False)


def test_answering_no_rolls_the_docker_settings_back_at_once(
    sshd: SshServer, tmux: Tmux, dockerd, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    _apply_until_asked_to_keep(sshd, tmux, dockerd, state, auto_revert=300)
    answered = time.monotonic()
    tmux.send("n", "Enter")
    tmux.wait_for("[exit ", timeout=60)
    assert time.monotonic() - answered < 60, "the revert waited for the 300 s deadline"
    assert dockerd.daemon_json.read_bytes() == SOMEONES_DAEMON_JSON
    assert _history(state)[-1]["status"] == "auto-reverted"
    _wait(dockerd.running, 30, "the daemon to serve again")
