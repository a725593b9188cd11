"""Run every benchmark, print a table (or --json), and rewrite benchmarks/RESULTS.md.

`python -m benchmarks [names] [--json] [--quick]`: --quick uses the short variants (10 s pty
windows, fewer runs) and leaves RESULTS.md alone.
"""

from __future__ import annotations

import importlib
import sys
import traceback

from benchmarks.common import Figure, emit, write_results

MODULES = [
    "startup",
    "live_output",
    "tui_bytes",
    "tui_log",
    "probe",
    "memory",
    "overhead",
    "systemd_overhead",
    "sampler_cost",
    "pyz",
]


def main() -> int:
    figures: list[Figure] = []
    only = [a for a in sys.argv[1:] if not a.startswith("-")]
    for name in MODULES:
        if only and name not in only:
            continue
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except ModuleNotFoundError:
            continue
        try:
            figures += module.run()
        except Exception as exc:  # a broken benchmark is a row, not a crash of all
            traceback.print_exc()
            figures.append(Figure(name, None, "", "", note=f"failed: {exc!r}"))
    emit(figures, "--json" in sys.argv)
    if not only and "--quick" not in sys.argv:  # RESULTS.md holds the full measurements only
        write_results(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
