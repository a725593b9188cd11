"""The full probe: every fact of a sandbox host, read-only, as `gpuwizard status` and the app's
overview gather them. The sandbox is the test suite's: a debootstrap root with the signed
repository on 127.0.0.1 and a private dockerd (tests/debroot.py, tests/dockerd.py). One probe
is `wizard.plan` of every step on the root plus the Docker steps against the daemon (a --root
image has no running Docker). Timed in-process, after start-up: the figure is what the probe
adds to it; the first call (lazy imports: the Docker SDK, gpg, NVML) is in the note.
Measured on a fresh root and on one the wizard has set up (apt's caches then answer)."""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

from benchmarks.common import Figure, emit, load_note
from benchmarks.sandbox import APT_STEPS, DOCKER_STEPS, step_objects

RUNS = 7


def _probe(sb: Any) -> float:
    from gpuwizard import wizard

    start = time.perf_counter()
    root = sb.root_host()
    # each part alone, so that no step stops at "waits for driver" before probing: the driver
    # (no GPU here), the apt side on the root, the Docker side against the daemon
    wizard.plan(root, sb.options(), steps=step_objects(("driver",)))
    wizard.plan(root, sb.options(), steps=step_objects(APT_STEPS))
    wizard.plan(sb.live_host(), sb.options(), steps=step_objects(DOCKER_STEPS))
    return time.perf_counter() - start


def _apply(sb: Any) -> None:
    from gpuwizard import wizard
    from gpuwizard.journal import Journal

    for host, names in ((sb.root_host(), APT_STEPS), (sb.live_host(), DOCKER_STEPS)):
        steps = step_objects(names)
        the_plan = wizard.plan(host, sb.options(), steps=steps)
        run = Journal(sb.state).start_run(["benchmark"])
        wizard.apply(host, sb.options(), the_plan, run, emit=lambda e: None, steps=steps)


def run() -> list[Figure]:
    from benchmarks import sandbox

    name = "full probe of a sandbox host (beyond start-up)"
    why = sandbox.available()
    if why:
        return [Figure(name, None, "s", "≤ 0.15 s", note=f"skipped: {why}")]
    rows = []
    try:
        with sandbox.sandbox() as sb:
            for label in ("fresh host", "host already set up"):
                if label != "fresh host":
                    _apply(sb)
                first = _probe(sb)
                times = [_probe(sb) for _ in range(RUNS)]
                t = statistics.median(times)
                rows.append(
                    Figure(
                        f"{name}: {label}",
                        t,
                        "s",
                        "≤ 0.15 s",
                        "",
                        t <= 0.15,
                        f"median of {RUNS}; first call {first:.3f} s (lazy imports); all six steps "
                        "planned, none blocked by another; real apt/dpkg/gpg and dockerd; "
                        + load_note(),
                    )
                )
    finally:
        sandbox.shutdown()
    return rows


if __name__ == "__main__":
    emit(run(), "--json" in sys.argv)
