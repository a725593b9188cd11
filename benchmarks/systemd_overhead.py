"""Wizard overhead on a host with systemd, where one `gpuwizard apply` does all of it.

The sandbox of `overhead.py` has no systemd and no Docker inside its root, so the wizard runs
there as two CLI calls and never takes the path real servers take: the worker in a unit of its
own (a transient scope since 6cc1435, a `systemd-run` service before), Docker restarted by
systemctl. This boots the test suite's trixie root with systemd 257 as PID 1 and Docker 28.5
(tests/systemd_bed.py) and measures there, each side from the same state, in two figures:

- the Docker half: one `gpuwizard apply --step daemon-config --step restart` against the
  same edit and `systemctl restart docker` typed by hand (someone's daemon.json, Docker
  running on it); `GPUWIZARD_WORKER_EXEC=1` gives the old service path beside it;
- the whole guide but its GPU test: one `gpuwizard apply` of the repository, packages,
  daemon.json and restart steps against the guide's commands pasted into one shell (curl |
  gpg --dearmor, the list through tee, apt-get update of that list, apt-get install of the
  four pinned packages, the edit `nvidia-ctk runtime configure` makes, the restart). The
  signed repository is served inside the bed on its own 127.0.0.1 (the bed has a private
  network). The GPU test is on neither side: the bed has no GPU, and the CLI refuses the
  test there (overhead.py runs it through the API against the stand-in hook).

Needs root and the bed's tools.
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
from gpuwizard.host import sources
from gpuwizard.host.toolkit import TOOLKIT_PACKAGES

DAEMON_JSON = "/etc/docker/daemon.json"
# the guide's paths and packages are gpuwizard's own facts (one place for each)
KEYRING, LIST, PACKAGES = sources.KEYRING, sources.APT_LIST, TOOLKIT_PACKAGES
PORT = 8765  # the bed's own loopback: nothing outside it is reached
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


def _fresh_full(bed: Any) -> None:
    """Before the toolkit: no NVIDIA key, list, index, package or cached .deb; someone's
    daemon.json, Docker running on it."""
    bed.sh(
        f"dpkg --purge {' '.join(PACKAGES)} >/dev/null 2>&1; "
        f"rm -f {KEYRING} {LIST} /var/lib/apt/lists/127.0.0.1_* /var/cache/apt/archives/*.deb; "
        "find /usr/bin -maxdepth 1 -name 'nvidia*' -xtype l -delete; true"
    )
    _fresh(bed)


def _guide(version: str) -> str:
    """The guide's commands, as a user pastes them into a root shell."""
    base = f"http://127.0.0.1:{PORT}"
    only_ours = (
        f"-o Dir::Etc::sourcelist={LIST.split('/etc/apt/', 1)[1]} -o Dir::Etc::sourceparts=- "
        "-o APT::Get::List-Cleanup=0"
    )
    pinned = " ".join(f"{p}={version}" for p in PACKAGES)
    return (
        "set -e\n"
        f"curl -fsSL {base}/gpgkey | gpg --batch --yes --dearmor -o {KEYRING}\n"
        f"echo 'deb [signed-by={KEYRING}] {base}/stable/deb/$(ARCH) /' | tee {LIST} >/dev/null\n"
        f"apt-get update -q {only_ours} >/dev/null\n"
        f"DEBIAN_FRONTEND=noninteractive apt-get install -y -q {pinned} >/dev/null\n"
        "python3 /root/ctk-edit.py\n"
        "systemctl restart docker\n"
    )


def _timed(bed: Any, argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    res = bed.run(argv, env=env, timeout=120)
    took = time.perf_counter() - start
    if res.returncode != 0:
        raise RuntimeError(f"{argv} exited {res.returncode}: {res.stdout[-500:]}{res.stderr}")
    return took


DOCKER_HALF = "wizard overhead on systemd: daemon.json + restart vs by hand"
FULL = "wizard overhead on systemd: one apply (repository to restart) vs the guide by hand"


def run(pairs: int = 5) -> list[Figure]:
    if os.geteuid() != 0:
        why = "skipped: needs root (nspawn)"
        return [Figure(n, None, "×", "≤ 1.10 ×", note=why) for n in (DOCKER_HALF, FULL)]
    tests = REPO / "tests"
    if str(tests) not in sys.path:
        sys.path.insert(0, str(tests))
    import subprocess

    import debroot
    import systemd_bed

    why = systemd_bed._tools_missing()
    if why:
        return [
            Figure(n, None, "×", "≤ 1.10 ×", note=f"skipped: {why}") for n in (DOCKER_HALF, FULL)
        ]
    top = Path(tempfile.mkdtemp(prefix="gw-bench-bed-", dir="/var/tmp"))
    base = top / "base"
    base.mkdir()
    subprocess.run(["tar", "-C", str(base), "-xf", str(systemd_bed.tarball())], check=True)  # noqa: S603 S607
    repo = debroot.build_nvidia_repo(top / "repo")
    try:
        with systemd_bed.booted(base, top / "bed", top / "console.log") as bed:
            _fresh(bed)
            bed.run(["gpuwizard", "plan"], timeout=120)  # byte-compiles, as an install does
            half = _docker_half(bed, pairs)
            full = _full_apply(bed, repo, pairs)
    finally:
        debroot.stop_gpg_agents(str(top))
        subprocess.run(["rm", "-rf", str(top)], check=False)  # noqa: S603 S607
    return [half, full]


def _summary(
    times: dict[str, list[float]], ours: str
) -> tuple[dict[str, float], dict[str, str], float]:
    """Each side's median and runs as shown, and our median over the hand's."""
    med = {k: statistics.median(v) for k, v in times.items()}
    runs = {k: ", ".join(f"{x:.2f}" for x in v) for k, v in times.items()}
    return med, runs, med[ours] / med["hand"]


def _docker_half(bed: Any, pairs: int) -> Figure:
    times: dict[str, list[float]] = {"scope": [], "service": [], "hand": []}
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
    med, runs, ratio = _summary(times, "scope")
    return Figure(
        DOCKER_HALF,
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


def _full_apply(bed: Any, repo: Any, pairs: int) -> Figure:
    import shutil
    import subprocess

    shutil.copytree(repo.server.folder, bed.path("/srv/nvidia-repo"))
    bed.path("/root/ctk-edit.py").write_text(CTK_EDIT)
    server = bed.popen(
        ["python3", "-m", "http.server", "--bind", "127.0.0.1", "--directory",
         "/srv/nvidia-repo", str(PORT)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    version = repo.versions[-1]
    base = f"http://127.0.0.1:{PORT}"
    wizard = [
        "gpuwizard", "apply", "--yes", "--no-auto-revert",
        "--step", "repository", "--step", "packages", "--step", "daemon-config",
        "--step", "restart", "--repo-url", f"{base}/stable", "--key-url", f"{base}/gpgkey",
        "--key-fingerprint", repo.key.fingerprint, "--docker-wait", "30",
    ]  # fmt: skip
    times: dict[str, list[float]] = {"wizard": [], "hand": []}
    try:
        bed.sh(f"for i in $(seq 50); do curl -fsS -o /dev/null {base}/gpgkey && exit 0; "
               "sleep 0.1; done; exit 1")  # fmt: skip
        for _ in range(pairs):
            for side in ("wizard", "hand"):
                _fresh_full(bed)
                argv = wizard if side == "wizard" else ["sh", "-c", _guide(version)]
                times[side].append(_timed(bed, argv, {}))
                got = bed.sh("dpkg-query -W -f '${Version}' nvidia-container-toolkit")
                assert got == version, f"{side}: the toolkit is {got!r} after the run"
    finally:
        server.terminate()
        server.wait(timeout=10)
    med, runs, ratio = _summary(times, "wizard")
    return Figure(
        FULL,
        ratio,
        "×",
        "≤ 1.10 ×",
        f"the guide by hand {med['hand']:.2f} s",
        ratio <= 1.10,
        f"one gpuwizard apply {med['wizard']:.2f} s (median of {pairs}; runs {runs['wizard']} s) "
        f"vs the guide's commands in one shell {runs['hand']} s; repository on the bed's "
        f"127.0.0.1, no GPU test on either side; trixie + systemd 257 + Docker 28.5 under "
        f"systemd-nspawn; {load_note()}",
    )


if __name__ == "__main__":
    emit(run(), "--json" in sys.argv)
