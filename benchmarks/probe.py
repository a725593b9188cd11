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

RUNS = 7


def _probe(sb: Any) -> float:
    from gpuwizard import wizard

    start = time.perf_counter()
    wizard.plan(sb.root_host(), sb.options())
    wizard.plan(sb.live_host(), sb.options(steps=("daemon-config", "restart", "gpu-test")))
    return time.perf_counter() - start


def _apply(sb: Any) -> None:
    from benchmarks.sandbox import APT_STEPS, DOCKER_STEPS
    from gpuwizard import wizard
    from gpuwizard.journal import Journal

    for host, steps in ((sb.root_host(), APT_STEPS), (sb.live_host(), DOCKER_STEPS)):
        opts = sb.options(steps=steps)
        the_plan = wizard.plan(host, opts)
        run = Journal(sb.state).start_run(["benchmark"])
        wizard.apply(host, opts, the_plan, run, emit=lambda e: None)


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
                rows.append(Figure(
                    f"{name}: {label}", t, "s", "≤ 0.15 s", "", t <= 0.15,
                    f"median of {RUNS}; first call {first:.3f} s (lazy imports); all six steps "
                    f"planned; real apt/dpkg/gpg and dockerd; {load_note()}"))
    finally:
        sandbox.shutdown()
    return rows


if __name__ == "__main__":
    emit(run(), "--json" in sys.argv)
