"""Wizard overhead on a host with systemd: the Docker half of the guide, one `gpuwizard apply`
against the same edit and `systemctl restart docker` typed by hand.

The sandbox of `overhead.py` has no systemd, so it never takes the path real servers take: the
worker in a unit of its own (a transient scope since 6cc1435, a `systemd-run` service before),
Docker restarted by systemctl. This boots the test suite's trixie root with systemd 257 as PID
1 and Docker 28.5 (tests/systemd_bed.py) and measures there, each side from the same state
(someone's daemon.json, Docker running on it). The apt half is not here: the bed has a private
network, so the signed repository on 127.0.0.1 is out of its reach. Needs root and the bed's
tools; `GPUWIZARD_WORKER_EXEC=1` gives the figure of the old service path beside it.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import REPO, Figure, emit, load_note

DAEMON_JSON = "/etc/docker/daemon.json"
SOMEONES = b'{\n    "log-driver": "json-file"\n}\n'
APPLY = ("apply", "--step", "daemon-config", "--step", "restart", "--yes", "--no-auto-revert")
# what `nvidia-ctk runtime configure --runtime=docker` writes, done with the bed's python3
CTK_EDIT = (
    "import json\n"
    "p='/etc/docker/daemon.json'\n"
    "d=json.load(open(p))\n"
    "d.setdefault('runtimes',{})['nvidia']={'args':[],'path':'nvidia-container-runtime'}\n"
    "open(p,'w').write(json.dumps(d,indent=4)+'\\n')\n"
)


def _fresh(bed: Any) -> None:
    bed.sh("rm -rf /var/lib/gpuwizard; systemctl reset-failed; true")
    bed.path(DAEMON_JSON).write_bytes(SOMEONES)
    bed.run(["systemctl", "restart", "docker"], check=True)
    assert bed.docker_serves()


def _timed(bed: Any, argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    res = bed.run(argv, env=env, timeout=120)
    took = time.perf_counter() - start
    if res.returncode != 0:
        raise RuntimeError(f"{argv} exited {res.returncode}: {res.stdout[-500:]}{res.stderr}")
    return took


def run(pairs: int = 5) -> list[Figure]:
    name = "wizard overhead on systemd: daemon.json + restart vs by hand"
    if os.geteuid() != 0:
        return [Figure(name, None, "×", "≤ 1.10 ×", note="skipped: needs root (nspawn)")]
    tests = REPO / "tests"
    if str(tests) not in sys.path:
        sys.path.insert(0, str(tests))
    import subprocess

    import systemd_bed

    why = systemd_bed._tools_missing()
    if why:
        return [Figure(name, None, "×", "≤ 1.10 ×", note=f"skipped: {why}")]
    top = Path(tempfile.mkdtemp(prefix="gw-bench-bed-", dir="/var/tmp"))
    base = top / "base"
    base.mkdir()
    subprocess.run(["tar", "-C", str(base), "-xf", str(systemd_bed.tarball())], check=True)  # noqa: S603 S607
    times: dict[str, list[float]] = {"scope": [], "service": [], "hand": []}
    try:
        with systemd_bed.booted(base, top / "bed", top / "console.log") as bed:
            _fresh(bed)
            bed.run(["gpuwizard", "plan"], timeout=120)  # byte-compiles, as an install does
            for _ in range(pairs):
                for side in ("scope", "service", "hand"):
                    _fresh(bed)
                    if side == "hand":
                        took = _timed(bed, ["python3", "-c", CTK_EDIT], {})
                        took += _timed(bed, ["systemctl", "restart", "docker"], {})
                    else:
                        env = {"GPUWIZARD_WORKER_EXEC": "1"} if side == "service" else {}
                        took = _timed(bed, ["gpuwizard", *APPLY, "--docker-wait", "30"], env)
                    times[side].append(took)
    finally:
        subprocess.run(["rm", "-rf", str(top)], check=False)  # noqa: S603 S607
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["scope"] / med["hand"]
    runs = {k: ", ".join(f"{x:.2f}" for x in v) for k, v in times.items()}
    return [
        Figure(
            name,
            ratio,
            "×",
            "≤ 1.10 ×",
            f"by hand {med['hand']:.2f} s",
            ratio <= 1.10,
            f"gpuwizard apply {med['scope']:.2f} s (median of {pairs}; runs {runs['scope']} s) "
            f"vs by hand {runs['hand']} s; the old systemd-run worker "
            f"{med['service']:.2f} s ({med['service'] / med['hand']:.2f}×; {runs['service']} s); "
            f"trixie + systemd 257 + Docker 28.5 under systemd-nspawn; {load_note()}",
        )
    ]


if __name__ == "__main__":
    emit(run(), "--json" in sys.argv)
