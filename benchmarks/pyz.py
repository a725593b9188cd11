"""The one-file build against the installed package, side by side: `status --json` wall time and
the app's first frame on an 80×24 pty, each measured alternately on the same busy machine.

`python -m benchmarks pyz` builds gpuwizard.pyz from this checkout (scripts/build_pyz.py) into a
temporary folder, lets it unpack once into a private cache (its first start, reported on its
own: it byte-compiles the payload once), then measures.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import REPO, Figure, emit, load_note, median_wall_cpu, python_cmd, quick


def build(folder: Path) -> Path:
    out = folder / "gpuwizard.pyz"
    subprocess.run(  # noqa: S603
        [sys.executable, str(REPO / "scripts" / "build_pyz.py"), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    return out


def run() -> list[Figure]:
    from benchmarks.startup import first_frame

    runs = 3 if quick() else 10
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.chmod(folder, 0o700)
        pyz = build(folder)
        env = {"GPUWIZARD_PYZ_CACHE": str(folder / "cache")}
        os.environ.update(env)  # the pty child inherits it
        state = str(folder / "state")
        t0 = time.perf_counter()
        subprocess.run(  # noqa: S603
            python_cmd(str(pyz), "status", "--json", "--state-dir", state),
            check=True,
            capture_output=True,
        )
        unpack = time.perf_counter() - t0
        pyz_status, pyz_cpu = median_wall_cpu(
            python_cmd(str(pyz), "status", "--json", "--state-dir", state), runs
        )
        inst_status, inst_cpu = median_wall_cpu(
            python_cmd("-m", "gpuwizard", "status", "--json", "--state-dir", state), runs
        )
        pyz_frame, _ = first_frame(python_cmd(str(pyz), "--state-dir", state), runs)
        inst_frame, _ = first_frame(python_cmd("-m", "gpuwizard", "--state-dir", state), runs)
        size = pyz.stat().st_size
    os.environ.pop("GPUWIZARD_PYZ_CACHE", None)
    note = f"{load_note()}; gpuwizard.pyz {size / 1e6:.1f} MB"
    return [
        Figure(
            f"gpuwizard.pyz `status --json` wall time (median of {runs})",
            pyz_status,
            "s",
            "≤ installed × 1.10",
            f"installed package {inst_status:.3f} s",
            pyz_status <= inst_status * 1.10,
            f"CPU {pyz_cpu:.3f} s vs installed {inst_cpu:.3f} s; {note}",
        ),
        Figure(
            f"gpuwizard.pyz time to first frame (80×24 pty, median of {runs})",
            pyz_frame,
            "s",
            "≤ installed × 1.10",
            f"installed package {inst_frame:.3f} s",
            pyz_frame <= inst_frame * 1.10,
            note,
        ),
        Figure(
            "gpuwizard.pyz first start on a host (unpack + byte-compile, once)",
            unpack,
            "s",
            "once per version",
            "",
            None,
            f"later starts use the cache; {note}",
        ),
    ]


if __name__ == "__main__":
    emit(run(), "--json" in sys.argv)
