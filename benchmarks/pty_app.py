"""The app in a real pseudo-terminal, as an SSH session gives it: what it writes, and when.

A child process runs `python -m gpuwizard --demo` on an 80×24 pty; this side reads every byte
the app writes (what would cross the SSH connection), timestamps it, answers the terminal's
queries the way a terminal emulator does not need to (Textual asks nothing it waits for), and
sends keys. Memory: the child's peak RSS from wait4().
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
import termios
import time
from dataclasses import dataclass, field
from typing import Optional

from benchmarks.common import REPO


def app_available() -> Optional[str]:
    """None where the Textual app is in this checkout, else why not."""
    if not (REPO / "gpuwizard" / "tui" / "app.py").exists():
        return "the Textual app (gpuwizard/tui) is not on this branch yet"
    return None


@dataclass
class PtyApp:
    """One app process on its own pty."""

    argv: list[str]
    cols: int = 80
    rows: int = 24
    env: dict[str, str] = field(default_factory=dict)
    pid: int = 0
    fd: int = -1
    started: float = 0.0
    chunks: list[tuple[float, int]] = field(default_factory=list)  # (time, bytes)
    screen: bytearray = field(default_factory=bytearray)
    rusage: Optional[object] = None
    status: Optional[int] = None

    def start(self) -> None:
        self.started = time.perf_counter()
        pid, fd = pty.fork()
        if pid == 0:  # the child: the app, on the pty
            env = {
                **os.environ,
                "TERM": "xterm-256color",
                "COLUMNS": str(self.cols),
                "LINES": str(self.rows),
                **self.env,
            }
            os.chdir(REPO)
            try:
                os.execvpe(self.argv[0], self.argv, env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", self.rows, self.cols, 0, 0))

    def pump(self, seconds: float) -> int:
        """Read what the app writes for this long; returns the bytes read."""
        end = time.perf_counter() + seconds
        total = 0
        while True:
            left = end - time.perf_counter()
            if left <= 0:
                return total
            r, _, _ = select.select([self.fd], [], [], left)
            if not r:
                continue
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                return total
            if not data:
                return total
            now = time.perf_counter()
            self.chunks.append((now, len(data)))
            self.screen += data
            if len(self.screen) > 1 << 20:
                del self.screen[: len(self.screen) - (1 << 19)]
            total += len(data)

    def wait_for(self, needle: bytes, timeout: float) -> Optional[float]:
        """Seconds since start when `needle` first appeared in the output (None: never)."""
        end = time.perf_counter() + timeout
        seen = 0
        while time.perf_counter() < end:
            self.pump(0.02)
            if needle in self.screen[max(0, seen - len(needle)) :]:
                for t, _ in reversed(self.chunks):
                    return t - self.started
            seen = len(self.screen)
        return None

    def quiet_after(self, since: float, gap: float = 0.3, timeout: float = 10.0) -> float:
        """Read until the app has written nothing for `gap` seconds; the time of its last
        write since start (the first full screen has been painted by then)."""
        end = time.perf_counter() + timeout
        while time.perf_counter() < end:
            if self.pump(gap) == 0:
                break
        last = [t for t, _ in self.chunks if t - self.started >= since]
        return (last[-1] - self.started) if last else since

    def send(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def bytes_between(self, t0: float, t1: float) -> int:
        return sum(n for t, n in self.chunks if t0 <= t < t1)

    def stop(self) -> None:
        """Quit the app (q, then signals), reap it, keep its rusage."""
        if self.pid <= 0:
            return
        for action in (b"q", signal.SIGTERM, signal.SIGKILL):
            if isinstance(action, bytes):
                with contextlib.suppress(OSError):
                    self.send(action)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, action)
            end = time.perf_counter() + 3
            while time.perf_counter() < end:
                self.pump(0.05)
                done, status, rusage = os.wait4(self.pid, os.WNOHANG)
                if done:
                    self.status, self.rusage = status, rusage
                    self.pid = 0
                    os.close(self.fd)
                    return

    def high_water_mb(self) -> Optional[float]:
        """The app process's own peak RSS so far (VmHWM), while it runs. (wait4's figure after
        it ends also counts the children it reaped, such as a detached worker it started.)"""
        try:
            with open(f"/proc/{self.pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except (OSError, ValueError):
            pass
        return None

    def peak_rss_mb(self) -> Optional[float]:
        return None if self.rusage is None else self.rusage.ru_maxrss / 1024  # type: ignore[attr-defined]


def demo_argv(*extra: str) -> list[str]:
    return [sys.executable, "-m", "gpuwizard", "--demo", *extra]
