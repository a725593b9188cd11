"""The full log in a real terminal, keyboard only at 80×24: a query typed at full speed right
after `/` (tmux sends the keys in one write, as a paste would) lands in the search box, not
on the log's own keys (n, c, …)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sshd import Tmux
from tests.test_tmux_run_status import REPO, demo_cmd

pytestmark = pytest.mark.slow


def test_a_fast_query_after_slash_is_searched(tmux: Tmux, tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    env = dict(os.environ, GPUWIZARD_DEMO_ROOT=str(demo))
    done = subprocess.run(
        [sys.executable, "-m", "gpuwizard", "--demo", "apply", "--yes"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    tmux.start(["sh", "-c", demo_cmd(demo)], 80, 24)
    tmux.wait_for("Steps", timeout=60)
    tmux.send("h")
    tmux.wait_for("✓ finished  10", timeout=30)  # the table row (a toast says finished too)
    tmux.send("l")
    tmux.wait_for("events: /var/lib/gpuwizard/runs/", timeout=30)
    tmux.wait_for("GPU test: 3 of 3 passed", timeout=30)
    tmux.send("/", *"nvidia-ctk", "Enter")
    screen = tmux.wait_for("“nvidia-ctk”: match", timeout=10)
    assert "Press / to search first" not in screen and "Copied" not in screen
    tmux.send("s")
    tmux.wait_for("log.txt", timeout=10)
    assert any(demo.rglob("log.txt"))
