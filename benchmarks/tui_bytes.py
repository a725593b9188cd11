"""What the app costs on an SSH link: time to the first full screen, and bytes written per
second to an 80×24 terminal while idle on the overview and with the live GPU panel open.

The app runs for real (`gpuwizard --demo`, recorded H200 and Docker at the host's seams) in a
pseudo-terminal of 80×24; every byte it writes to the terminal is counted.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import select
import signal
import struct
import sys
import tempfile
import termios
import time
from typing import Optional

from benchmarks.common import REPO, Figure, emit

READY = b"Quit"  # the footer: drawn last, so the first full frame is out
SETTLE = 3.0  # seconds for the probes to finish and the screen to fill in
WINDOW = 10.0  # seconds of measurement


class PtyApp:
    """The app in a pty of a given size; reads and counts everything it writes."""

    def __init__(self, argv: list[str], env: dict[str, str], cols: int = 80, rows: int = 24):
        self.start = time.perf_counter()
        pid, fd = pty.fork()
        if pid == 0:  # the child: become the app
            os.chdir(REPO)
            os.execvpe(argv[0], argv, env)  # noqa: S606 - argv list
        self.pid, self.fd = pid, fd
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.total = 0
        self.seen = b""

    def pump(self, seconds: float, until: Optional[bytes] = None) -> Optional[float]:
        """Read for `seconds` (or until `until` appears); returns when `until` appeared."""
        deadline = time.perf_counter() + seconds
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                return None
            self.total += len(chunk)
            if until is not None:
                self.seen = (self.seen + chunk)[-4096:]
                if until in self.seen:
                    return time.perf_counter() - self.start

    def send(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def bytes_per_second(self, seconds: float) -> float:
        before = self.total
        self.pump(seconds)
        return (self.total - before) / seconds

    def close(self) -> None:
        self.send(b"q")
        self.pump(1.0)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        os.waitpid(self.pid, 0)
        os.close(self.fd)


def measure(extra_args: tuple[str, ...] = (), window: float = WINDOW) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as demo:
        env = {**os.environ, "TERM": "xterm-256color", "GPUWIZARD_DEMO_ROOT": demo,
               "COLORTERM": ""}
        env.pop("NO_COLOR", None)
        app = PtyApp([sys.executable, "-m", "gpuwizard", "--demo", *extra_args], env)
        try:
            first = app.pump(30.0, until=READY)
            app.pump(SETTLE)
            idle = app.bytes_per_second(window)
            app.send(b"g")
            app.pump(SETTLE)
            panel = app.bytes_per_second(window)
            app.send(b"v")
            app.pump(SETTLE)
            raw = app.bytes_per_second(window)
        finally:
            app.close()
    return {"first_frame": first if first is not None else float("nan"), "idle": idle,
            "panel": panel, "raw": raw}


def run() -> list[Figure]:
    m = measure()
    slow = measure(("--slow-link",))
    return [
        Figure("TUI time to first full frame (80×24 pty, --demo)", m["first_frame"], "s",
               "≤ 1.0 s", "htop ≈ instant; Textual apps ≈ 0.3–0.6 s",
               m["first_frame"] <= 1.0),
        Figure("TUI bytes/s idle on the overview (80×24)", m["idle"], "B/s", "≤ 50 B/s",
               "no clock, no spinner, no animation when idle", m["idle"] <= 50),
        Figure("TUI bytes/s with the GPU panel open (1 Hz)", m["panel"], "B/s", "≤ 300 B/s",
               "only changed cells are repainted", m["panel"] <= 300),
        Figure("TUI bytes/s, raw nvidia-smi view open (1 Hz)", m["raw"], "B/s", "≤ 300 B/s",
               "a full nvidia-smi frame is ≈ 1.9 kB", m["raw"] <= 300),
        Figure("TUI bytes/s with the GPU panel, --slow-link", slow["panel"], "B/s",
               "≤ 300 B/s", f"idle {slow['idle']:.0f} B/s", slow["panel"] <= 300),
    ]


if __name__ == "__main__":
    emit(run(), "--json" in sys.argv)
