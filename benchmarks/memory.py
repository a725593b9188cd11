"""Memory: the app's peak RSS over a full demo run on an 80×24 pty: the overview, the GPU panel
open for a while, "apply all" confirmed and followed to its end (the keep-the-change question
answered), the history, quit. Peak RSS is the app process's own high-water mark (VmHWM, read
before it quits); the detached worker is a process of its own and is not counted."""

from __future__ import annotations

import sys
import tempfile

from benchmarks.common import Figure, emit, quick

SCRIPT: list[tuple[bytes, float]] = [
    (b"g", 5.0),  # the GPU panel, sampling
    (b"g", 1.0),  # closed again
    (b"a", 3.0),  # apply all: the changes, previewed
    (b"y", 15.0),  # confirmed: the run, followed
    (b"y", 5.0),  # keep the new Docker settings (if asked)
    (b"\r", 2.0),  # continue
    (b"h", 2.0),  # the history
]


def run() -> list[Figure]:
    from benchmarks.pty_app import PtyApp, app_available, demo_argv

    why = app_available()
    if why:
        return [
            Figure(
                "peak RSS over a full demo run", None, "MB", "≤ 100 MB", note=f"not measured: {why}"
            )
        ]
    scale = 0.5 if quick() else 1.0
    with tempfile.TemporaryDirectory() as demo_root:
        app = PtyApp(demo_argv(), env={"GPUWIZARD_DEMO_ROOT": demo_root})
        app.start()
        try:
            if app.wait_for(b"Quit", 20) is None:
                raise RuntimeError("the demo app drew no screen")
            app.quiet_after(0, gap=1.0, timeout=20)
            for key, wait in SCRIPT:
                app.send(key)
                app.pump(wait * scale)
            failed = b"Traceback" in app.screen
            rss = app.high_water_mb()
        finally:
            app.stop()
    with_children = app.peak_rss_mb()
    return [
        Figure(
            "peak RSS over a full demo run",
            rss,
            "MB",
            "≤ 100 MB",
            "",
            rss is not None and rss <= 100,
            "the app process's VmHWM on an 80×24 pty; overview, GPU panel, apply all, "
            "follow, history"
            + (
                f"; {with_children:.0f} MB counting the processes it started and reaped (wait4)"
                if with_children
                else ""
            )
            + ("; the app printed a traceback during the run" if failed else ""),
        )
    ]


if __name__ == "__main__":
    emit(run(), "--json" in sys.argv)
