"""Live output into the app: 200,000 lines of apt-like output through the real runner, written
by a worker process to the run's events file exactly as the detached worker writes them, and
followed by the app (headless, 80×24) into its run screen's log view.

Figures: lines per second from the producer's start until the last line is in the log view;
the longest stall of the app's event loop meanwhile (a 10 ms timer that should tick on time: a
longer gap is a frame that could not be drawn); how much the app's memory grew.
"""

from __future__ import annotations

import asyncio
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import REPO, Figure, emit, quick

LINES = 200_000
TICK = 0.01

WORKER = """
import sys
from pathlib import Path
from gpuwizard import events as ev
from gpuwizard.host.runner import SubprocessRunner
from gpuwizard.journal import RunWriter

run_id, folder, lines = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
producer = ("import sys\\nw = sys.stdout.write\\n"
            f"for i in range({lines}):\\n"
            "    w(f'Unpacking libfoo{i % 97} (1.2.{i}-1) over (1.2.{i}-0) ...\\\\n')\\n")
w = RunWriter(run_id, folder)
emit = lambda e: w.write_event(ev.to_json(e))
emit(ev.StepState("packages", "running"))
SubprocessRunner().run([sys.executable, "-c", producer],
                       on_line=lambda s, t: emit(ev.LogLine("packages", t, s)))
emit(ev.StepState("packages", "done"))
emit(ev.RunState(run_id, "finished"))
"""


async def _measure(lines: int) -> dict[str, Any]:
    from gpuwizard.demo import demo_host  # noqa: I001 (the app may not be here yet)
    from gpuwizard.journal import Journal
    from gpuwizard.options import Options
    from gpuwizard.tui.app import GpuWizardApp
    from gpuwizard.tui.widgets.output_log import OutputLog

    n = lines - 1
    last_line = f"Unpacking libfoo{n % 97} (1.2.{n}-1) over (1.2.{n}-0) ..."
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal(Path(tmp) / "state")
        app = GpuWizardApp(demo_host(), Options(), journal, demo=True)
        gaps = {"longest": 0.0, "last": 0.0}

        def tick() -> None:
            now = time.perf_counter()
            if gaps["last"]:
                gaps["longest"] = max(gaps["longest"], now - gaps["last"] - TICK)
            gaps["last"] = now

        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(1.0)
            run = journal.start_run(["benchmark"])
            rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            start = time.perf_counter()
            worker = subprocess.Popen(  # noqa: S603
                [sys.executable, "-c", WORKER, run.run_id, str(run.folder), str(lines)], cwd=REPO
            )
            app.follow_run(run.run_id)
            app.set_interval(TICK, tick)
            done = None
            deadline = start + 120
            while time.perf_counter() < deadline:
                await asyncio.sleep(0.02)
                logs = list(app.screen.query(OutputLog))
                if logs and any(last_line in (log.lines[-3:] if log.lines else []) for log in logs):
                    done = time.perf_counter() - start
                    break
            worker.wait(timeout=60)
            rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            kept = len(getattr(app, "run_events", []))
    return {
        "seconds": done,
        "stall": gaps["longest"],
        "rss_mb": (rss1 - rss0) / 1024,
        "events_kept": kept,
    }


def run() -> list[Figure]:
    from benchmarks.pty_app import app_available

    why = app_available()
    name = "app log view: lines/s ingested (runner -> worker events -> app)"
    if why:
        return [Figure(name, None, "lines/s", "≥ 100,000 lines/s", note=f"not measured: {why}")]
    lines = 50_000 if quick() else LINES
    m = asyncio.run(_measure(lines))
    secs = m["seconds"]
    rate = None if secs is None else lines / secs
    return [
        Figure(
            name,
            rate,
            "lines/s",
            "≥ 100,000 lines/s",
            "runner alone: see above",
            rate is not None and rate >= 100_000,
            f"{lines:,} lines"
            + (f" in {secs:.2f} s" if secs else " NOT all shown in 120 s")
            + "; headless 80×24",
        ),
        Figure(
            "app log view: longest event-loop stall while ingesting",
            m["stall"] * 1000,
            "ms",
            "≤ 100 ms",
            "",
            m["stall"] <= 0.1,
            f"a {TICK * 1000:.0f} ms timer's worst lateness",
        ),
        Figure(
            "app log view: memory growth while ingesting",
            m["rss_mb"],
            "MB",
            "bounded",
            "",
            None,
            f"peak RSS growth of the app process; events kept by the app: {m['events_kept']:,}",
        ),
    ]


if __name__ == "__main__":
    emit(run(), "--json" in sys.argv)
