#!/usr/bin/env python3
"""On a machine with a real NVIDIA GPU: the app itself, not the demo.

Prints the time to the first frame of `gpuwizard` on an 80×24 pty, the bytes per second it
writes idle and with the live GPU panel open (real NVML at 1 Hz), and saves SVGs of the
overview and of the panel on this hardware. Skips cleanly where there is no GPU.
Usage: python3 tests/gpu/lead_h200.py OUTDIR [SECONDS]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def have_gpu() -> bool:
    from gpuwizard.host.gpu import probe_gpus
    from gpuwizard.host.system import Host

    return bool(probe_gpus(Host()).ok)


def pty_figures(window: float) -> dict[str, float]:
    from benchmarks.pty_app import PtyApp

    argv = [sys.executable, "-m", "gpuwizard", "--no-mouse"]
    frames = []
    for _ in range(6):
        app = PtyApp(argv)
        app.start()
        try:
            t = app.wait_for(b"Quit", 20)
            if t is not None:
                frames.append(t)
        finally:
            app.stop()
    app = PtyApp(argv)
    app.start()
    try:
        app.wait_for(b"Quit", 20)
        app.quiet_after(0, gap=1.0, timeout=20)
        t0 = time.perf_counter()
        app.pump(window)
        t1 = time.perf_counter()
        idle = app.bytes_between(t0, t1) / (t1 - t0)
        app.send(b"g")
        app.pump(2.0)
        t2 = time.perf_counter()
        app.pump(window)
        t3 = time.perf_counter()
        panel = app.bytes_between(t2, t3) / (t3 - t2)
        tail = app.screen[-3000:].decode(errors="replace")
    finally:
        app.stop()
    return {
        "first_frame_median_s": statistics.median(frames[1:]) if len(frames) > 1 else -1,
        "idle_Bps": idle,
        "panel_Bps": panel,
        "traceback": float("Traceback" in tail),
    }


async def screenshots(out: Path) -> None:
    from gpuwizard.host.system import Host
    from gpuwizard.journal import Journal
    from gpuwizard.options import Options
    from gpuwizard.tui.app import GpuWizardApp

    host = Host()
    app = GpuWizardApp(host, Options(state_dir=str(out / "state")), Journal(out / "state"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(4.0)
        app.save_screenshot("overview_h200.svg", str(out))
        await pilot.press("g")
        await pilot.pause(5.0)
        app.save_screenshot("gpu_panel_h200.svg", str(out))
        await pilot.press("v")
        await pilot.pause(3.5)
        app.save_screenshot("gpu_raw_h200.svg", str(out))


def main() -> int:
    if not have_gpu():
        print("SKIP: no working NVIDIA GPU here")
        return 0
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    window = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
    figures = pty_figures(window)
    for k, v in figures.items():
        print(f"{k}: {v:.3f}")
    asyncio.run(screenshots(out))
    print("screenshots:", sorted(p.name for p in out.glob("*.svg")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
