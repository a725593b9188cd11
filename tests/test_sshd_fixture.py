"""The SSH test bed itself: a command reaches the server through a pseudo-terminal."""

from __future__ import annotations

from sshd import SshServer, Tmux


def test_gpuwizard_runs_over_ssh_in_a_real_terminal(sshd: SshServer, tmux: Tmux) -> None:
    tmux.start(sshd.client_argv(sshd.remote_gpuwizard("--version")))
    screen = tmux.wait_for("[exit 0]", timeout=20)
    assert "gpuwizard 0.1.0" in screen
