"""`gpuwizard doctor`: walk the chain from the GPU to a container, read-only, link by link.

hardware -> kernel module -> driver -> repository and key -> packages -> the toolkit's
config.toml -> daemon.json -> the engine running with that file -> GPU support registered in
it -> a smoke container (only when asked: it starts a container).
Each link gets a verdict (ok | warn | broken | skipped) and, where broken, the cause and the
next command to run. The links judge facts and never parse: every fact is read by `host/`
(the readers the steps use) and daemon.json by `daemon_json`, so doctor and plan agree. Every
file is read through `host.path()`, so a `--root` sandbox holding a broken state is diagnosed
exactly like a machine. A link that crashes never stops the walk.
"""

from __future__ import annotations

from gpuwizard.doctor.chain import run_doctor
from gpuwizard.doctor.engine import daemon_needs_restart, gpu_runtime_link
from gpuwizard.doctor.links import (
    BROKEN,
    OK,
    SKIPPED,
    VERDICTS,
    WARN,
    DoctorReport,
    Link,
    Verdict,
    Walk,
)
from gpuwizard.doctor.render import explain, render_report
from gpuwizard.host.docker import process_start_time

_Walk = Walk  # the name tests used before the package

__all__ = [
    "BROKEN",
    "OK",
    "SKIPPED",
    "VERDICTS",
    "WARN",
    "DoctorReport",
    "Link",
    "Verdict",
    "Walk",
    "daemon_needs_restart",
    "explain",
    "gpu_runtime_link",
    "process_start_time",
    "render_report",
    "run_doctor",
]
