#!/usr/bin/env python3
"""The live GPU panel on a real NVIDIA GPU: the readings it draws (real NVML, the one
`nvidia-smi -l` stream), and what it writes to an 80×24 terminal per second with the panel
open, for the app on this real host. Skips cleanly (exit 0) without a GPU.

Usage (on the GPU machine): PYTHONPATH=<deps>:. python3 tests/gpu/tui_panel_on_gpu.py
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as exc:  # no driver, no library, no GPU: nothing to check here
        print(f"SKIP: no usable NVML here ({exc!r})")
        return 0
    from gpuwizard.host.system import Host
    from gpuwizard.tui.gpu_feed import GpuFeed, GpuHistory
    from gpuwizard.tui.widgets.gpu_panel import gpu_line

    feed = GpuFeed(Host())
    history = GpuHistory()
    t = time.perf_counter()
    for _ in range(3):
        readings = feed.sample()
        history.add(readings)
        time.sleep(0.5)
    print(
        f"== 3 samples through real NVML ({(time.perf_counter() - t - 1.5) / 3 * 1000:.1f} ms each)"
    )
    for r in readings:
        print(" ", r)
        print("  panel line:", gpu_line(r, history).plain)
    try:
        frame = None
        for _ in range(40):
            frame = feed.raw_frame()
            if frame:
                break
            time.sleep(0.1)
        print("== raw view (one nvidia-smi -l stream), first lines:")
        for line in (frame or ["(no frame)"])[:12]:
            print(" ", line)
    finally:
        feed.close()

    from benchmarks.pty_app import PtyApp

    with_state = Path("/tmp/gpuwizard-panel-state")
    app = PtyApp(
        [sys.executable, "-m", "gpuwizard", "--state-dir", str(with_state)],
        env={"PYTHONPATH": os.environ.get("PYTHONPATH", "")},
    )
    app.start()
    try:
        first = app.wait_for(b"Quit", 30)
        print(f"== the app on this host: first frame at {first}")
        app.pump(8.0)  # the plan fills in (probes of this real host take a few seconds)
        t0 = time.perf_counter()
        mark = len(app.screen)
        app.pump(10)
        t1 = time.perf_counter()
        print(f"idle on the overview: {app.bytes_between(t0, t1) / (t1 - t0):.0f} B/s")
        print("   written while idle:", bytes(app.screen[mark : mark + 300]))
        app.send(b"g")
        app.pump(2.0)
        t2 = time.perf_counter()
        app.pump(15)
        t3 = time.perf_counter()
        print(f"GPU panel open (real NVML, 1 Hz): {app.bytes_between(t2, t3) / (t3 - t2):.0f} B/s")
        app.send(b"v")
        app.pump(6.0)  # nvidia-smi starts, its first frame lays the view out once
        t4 = time.perf_counter()
        mark = len(app.screen)
        app.pump(15)
        t5 = time.perf_counter()
        print("   raw view output:", bytes(app.screen[mark : mark + 400]))
        print(f"raw nvidia-smi view: {app.bytes_between(t4, t5) / (t5 - t4):.0f} B/s")
        tail = bytes(app.screen[-600:]).decode("utf-8", "replace")
        print("Traceback" in tail and "APP FAILED" or "app alive")
    finally:
        app.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
