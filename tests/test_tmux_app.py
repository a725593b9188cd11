"""The app in a real terminal: tmux at 80×24, driven with send-keys, read with capture-pane.

Demo mode: the recorded H200 host, the real detached worker, nothing on this machine changed.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

import pytest

from tests.sshd import Tmux

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent


def start_demo(tmux: Tmux, demo_root: Path, *args: str) -> None:
    env = f"GPUWIZARD_DEMO_ROOT={shlex.quote(str(demo_root))} TERM=xterm-256color"
    cmd = (
        f"cd {shlex.quote(str(REPO))} && env {env} {shlex.quote(sys.executable)} "
        f"-m gpuwizard --demo {' '.join(args)}"
    )
    tmux.start(["sh", "-c", cmd], width=80, height=24)


def wait_until(tmux: Tmux, predicate, timeout: float = 30) -> str:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = tmux.screen()
        if predicate(screen):
            return screen
        time.sleep(0.1)
    raise AssertionError(f"the screen never got there:\n{screen}")


def test_demo_walks_to_a_passing_gpu_test_in_a_real_terminal(tmux: Tmux, tmp_path: Path) -> None:
    start_demo(tmux, tmp_path / "demo", "--no-mouse")
    screen = tmux.wait_for("6 step(s) to apply", timeout=60)
    lines = screen.splitlines()
    assert len(lines) <= 24 and all(len(line) <= 80 for line in lines)
    assert "DEMO — nothing on this machine is changed" in lines[0]
    assert "1 × NVIDIA H200" in screen and "Docker 27.5.1" in screen
    assert "Quit" in lines[-1]  # the footer, on the last row: nothing scrolled

    tmux.send("g")  # the GPU panel, from the recorded H200
    screen = wait_until(tmux, lambda s: "H200" in s and "°C" in s)
    assert "gpuwizard · overview" in screen.splitlines()[0]  # still nothing scrolled
    tmux.send("g")
    wait_until(tmux, lambda s: "°C" not in s)

    tmux.send("a")  # preview everything, then apply
    screen = tmux.wait_for("nothing is written before y", timeout=60)
    assert "Apply:" in screen
    tmux.wait_for("Impact", timeout=60)  # the preview is ready: y is taken now
    tmux.send("y")
    screen = tmux.wait_for("Keep the new Docker settings?", timeout=60)
    tmux.send("y")
    tmux.wait_for("Enter: continue", timeout=60)
    tmux.send("Enter")
    tmux.send("o")
    screen = wait_until(
        tmux,
        lambda s: (
            "everything is in place" in s.lower()
            or "docker daemon.json" in s.lower()
            and "pending" not in s
        ),
        30,
    )
    # the GPU test ran (recorded engine and H200) and passed
    events = "".join(
        p.read_text()
        for p in (tmp_path / "demo" / "root" / "var/lib/gpuwizard/runs").glob("*/events.jsonl")
    )
    assert "GPU test: 3 of 3 passed" in events
    # the demo machine changed; this one did not
    demo_daemon_json = tmp_path / "demo" / "root" / "etc/docker/daemon.json"
    assert '"nvidia"' in demo_daemon_json.read_text()
    assert '"data-root": "/srv/docker"' in demo_daemon_json.read_text()  # their key kept
    tmux.send("q")
    wait_until(tmux, lambda s: "gpuwizard · " not in s, 15)


def test_history_rolls_the_demo_back_from_the_keyboard(tmux: Tmux, tmp_path: Path) -> None:
    from gpuwizard.demo import RECORDED_FILES

    start_demo(tmux, tmp_path / "demo", "--no-mouse")
    tmux.wait_for("6 step(s) to apply", timeout=60)
    tmux.send("a")
    tmux.wait_for("Impact", timeout=60)
    tmux.send("y")
    tmux.wait_for("Keep the new Docker settings?", timeout=60)
    tmux.send("y")
    tmux.wait_for("Enter: continue", timeout=60)
    tmux.send("h")
    tmux.wait_for("↺ daemon-config", timeout=60)
    tmux.send("b")
    tmux.wait_for("Roll back run", timeout=60)
    tmux.send("y")
    tmux.wait_for("rolled-back", timeout=60)
    daemon_json = tmp_path / "demo" / "root" / "etc/docker/daemon.json"
    assert daemon_json.read_text() == RECORDED_FILES["/etc/docker/daemon.json"]
    assert not (
        tmp_path / "demo" / "root" / "etc/apt/sources.list.d/nvidia-container-toolkit.list"
    ).exists()


@pytest.mark.parametrize(
    "term,extra",
    [
        ("xterm-256color", ""),  # what ssh usually brings (COLORTERM is not forwarded)
        ("xterm", ""),  # 16 colours
        ("xterm-256color", "NO_COLOR=1"),
    ],
)
def test_overview_reads_the_same_in_every_colour_mode(
    tmux: Tmux, tmp_path: Path, term: str, extra: str
) -> None:
    env = f"GPUWIZARD_DEMO_ROOT={shlex.quote(str(tmp_path / 'demo'))} TERM={term} {extra}"
    cmd = (
        f"cd {shlex.quote(str(REPO))} && env {env} {shlex.quote(sys.executable)} "
        f"-m gpuwizard --demo --no-mouse --slow-link"
    )
    tmux.start(["sh", "-c", cmd], width=80, height=24)
    screen = tmux.wait_for("6 step(s) to apply", timeout=60)
    # states are words as well as colours and glyphs
    assert "✓ done     NVIDIA driver" in screen
    assert "○ pending  Toolkit repository" in screen
    assert "DEMO — nothing on this machine is changed" in screen
    tmux.send("q")
