"""Live output: 200,000 lines of apt-like output through the real runner, counted as they
arrive (the TUI's log view adds its own figure in tui_log.py)."""

from __future__ import annotations

import resource
import sys
import time
from typing import Optional

from benchmarks.common import Figure, emit

LINES = 200_000
PRODUCER = (
    "import sys\n"
    "w = sys.stdout.write\n"
    f"for i in range({LINES}):\n"
    "    w(f'Unpacking libfoo{i % 97} (1.2.{i}-1) over (1.2.{i}-0) ...\\n')\n"
)


def run() -> list[Figure]:
    from gpuwizard.host.runner import SubprocessRunner

    count = 0
    longest = 0.0
    last: Optional[float] = None  # gaps count from the first line (not the producer's start)

    def on_line(stream: str, text: str) -> None:
        nonlocal count, last, longest
        count += 1
        now = time.perf_counter()
        if last is not None and now - last > longest:
            longest = now - last
        last = now

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    SubprocessRunner().run([sys.executable, "-c", PRODUCER], on_line=on_line)
    elapsed = time.perf_counter() - start
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rate = count / elapsed
    return [
        Figure(
            "runner: lines/s streamed to a callback",
            rate,
            "lines/s",
            "≥ 100,000 lines/s",
            "",
            rate >= 100_000,
            f"{count} lines in {elapsed:.2f} s; longest gap "
            f"{longest * 1000:.1f} ms; RSS grew {(rss_after - rss_before) / 1024:.1f} MB",
        ),
    ]


if __name__ == "__main__":
    emit(run(), "--json" in sys.argv)
