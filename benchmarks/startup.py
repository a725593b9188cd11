"""`gpuwizard status --json` wall time: what a script or a monitoring check pays."""

from __future__ import annotations

import sys
import tempfile

from benchmarks.common import Figure, emit, median_wall, python_cmd


def run() -> list[Figure]:
    with tempfile.TemporaryDirectory() as state:
        t = median_wall(python_cmd("-m", "gpuwizard", "status", "--json", "--state-dir", state))
    imports = median_wall(python_cmd("-c", "import textual.app"))
    bare = median_wall(python_cmd("-c", "pass"))
    return [
        Figure(
            "`gpuwizard status --json` wall time (median of 10)",
            t,
            "s",
            "≤ 0.30 s",
            f"python -c pass {bare:.3f} s; import textual.app {imports:.3f} s",
            t <= 0.30,
        ),
    ]


if __name__ == "__main__":
    emit(run(), "--json" in sys.argv)
