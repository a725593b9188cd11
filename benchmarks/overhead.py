"""Wizard overhead: `gpuwizard apply --yes` in the sandbox against the official guide's
commands typed by hand, back to back, each on a fresh sandbox.

Both sides do the same work against the same parts: the debootstrap root, the signed
repository on 127.0.0.1, the private dockerd that reads the root's daemon.json. The wizard
runs as a user runs it (two CLI calls: the apt steps on `--root`, the Docker steps against the
daemon, since a --root image has no running Docker), so its figure includes Python start-up,
the read-only probe, the detached worker, the journal's fsyncs, backups and verification; its
GPU test (two containers) runs through the API, since the CLI refuses it on a machine without
a GPU.
The by-hand side is the guide: curl | gpg --dearmor, the list through tee, apt-get update
(of that list only: nothing but 127.0.0.1 may be contacted here, and the wizard refreshes only
its own list too), apt-get install of the four pinned packages, the daemon.json edit that
`nvidia-ctk runtime configure` makes, the restart, and one `docker run --gpus all`.
"""

from __future__ import annotations

import os
import shlex
import statistics
import subprocess
import sys
import time
from typing import Any

from benchmarks.common import REPO, Figure, compile_tree, emit
from gpuwizard.host import sources
from gpuwizard.host.toolkit import TOOLKIT_PACKAGES

# the guide's paths and packages are gpuwizard's own facts (one place for each)
KEYRING, LIST, PACKAGES = sources.KEYRING, sources.APT_LIST, TOOLKIT_PACKAGES
CTK_EDIT = (
    "import json,sys\n"
    "p=sys.argv[1]\n"
    "d=json.load(open(p))\n"
    "d.setdefault('runtimes',{})['nvidia']={'args':[],'path':'nvidia-container-runtime'}\n"
    "open(p,'w').write(json.dumps(d,indent=4)+'\\n')\n"
)


def _run(argv: list[str], **kw: Any) -> None:
    subprocess.run(
        argv,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,  # noqa: S603
        **kw,
    )


def wizard_side(sb: Any) -> float:
    """The two `gpuwizard apply --yes` calls; wall seconds."""
    py = [sys.executable, "-m", "gpuwizard", "apply", "--yes", "--no-auto-revert"]
    apt = [
        *py,
        "--root",
        str(sb.root),
        "--state-dir",
        str(sb.state / "apt"),
        "--step",
        "repository",
        "--step",
        "packages",
        "--repo-url",
        sb.repo.repo_url,
        "--key-url",
        sb.repo.key_url,
        "--key-fingerprint",
        sb.repo.key.fingerprint,
    ]
    docker = [
        *py,
        "--state-dir",
        str(sb.state / "docker"),
        "--step",
        "daemon-config",
        "--step",
        "restart",
        "--docker-host",
        sb.dockerd.docker_host,
        "--daemon-json",
        str(sb.dockerd.daemon_json),
        "--docker-restart-command",
        shlex.join(sb.dockerd.restart_command()),
        "--docker-wait",
        "20",
    ]
    start = time.perf_counter()
    for argv in (apt, docker):
        _run(argv, cwd=REPO)
    gpu_test(sb)
    return time.perf_counter() - start


def gpu_test(sb: Any) -> None:
    """The GPU test step, through gpuwizard's API as the test suite runs it: the CLI would
    (rightly) refuse it on this machine, whose driver probe finds no GPU; without the driver
    step in the plan, the test containers run against the stand-in hook."""
    from gpuwizard import wizard
    from gpuwizard.journal import Journal
    from gpuwizard.steps.gpu_test import GpuTestStep

    options = sb.options(test_image="local/bb:1", skip_cuda_test=True)
    host = sb.live_host()
    the_plan = wizard.plan(host, options, steps=[GpuTestStep()])
    run = Journal(sb.state / "gpu").start_run(["gpuwizard", "apply", "--step", "gpu-test"])
    wizard.apply(host, options, the_plan, run, emit=lambda e: None, steps=[GpuTestStep()])


def by_hand_side(sb: Any, version: str) -> float:
    """The guide's commands, one after another; wall seconds."""
    root = sb.root
    chroot = ["chroot", str(root)]
    apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    only_ours = [
        "-o",
        "Dir::Etc::sourcelist=sources.list.d/nvidia-container-toolkit.list",
        "-o",
        "Dir::Etc::sourceparts=-",
        "-o",
        "APT::Get::List-Cleanup=0",
    ]
    line = f"deb [signed-by={KEYRING}] {sb.repo.repo_url}/deb/$(ARCH) /\n"
    start = time.perf_counter()
    curl = subprocess.Popen(["curl", "-fsSL", sb.repo.key_url], stdout=subprocess.PIPE)  # noqa: S603 S607
    _run(
        ["gpg", "--batch", "--yes", "--dearmor", "-o", str(root / KEYRING.lstrip("/"))],
        stdin=curl.stdout,
    )
    assert curl.wait() == 0
    _run(["tee", str(root / LIST.lstrip("/"))], input=line.encode())
    _run([*chroot, "apt-get", "update", *only_ours], env=apt_env)
    _run([*chroot, "apt-get", "install", "-y", *(f"{p}={version}" for p in PACKAGES)], env=apt_env)
    _run([sys.executable, "-c", CTK_EDIT, str(sb.dockerd.daemon_json)])
    _run(sb.dockerd.restart_command())
    _run(
        ["docker", "run", "--rm", "--runtime=nvidia", "--gpus", "all", "local/bb:1", "echo", "ok"],
        env=sb.docker_env(),
    )
    return time.perf_counter() - start


def run(pairs: int = 2) -> list[Figure]:
    from benchmarks import sandbox

    why = sandbox.available()
    if why:
        return [
            Figure(
                "wizard overhead: full apply vs the guide by hand",
                None,
                "×",
                "≤ 1.10 ×",
                note=f"skipped: {why}",
            )
        ]
    compile_tree()  # as installed: without it each CLI call compiled every module (0.1 s)
    wizard_t: list[float] = []
    hand_t: list[float] = []
    try:
        version = sandbox.nvidia_repo().versions[-1]
        for _ in range(pairs):
            with sandbox.sandbox() as sb:
                wizard_t.append(wizard_side(sb))
            with sandbox.sandbox() as sb:
                hand_t.append(by_hand_side(sb, version))
    finally:
        sandbox.shutdown()
    w, h = statistics.median(wizard_t), statistics.median(hand_t)
    ratio = w / h
    return [
        Figure(
            "wizard overhead: full apply vs the guide by hand",
            ratio,
            "×",
            "≤ 1.10 ×",
            f"guide by hand {h:.2f} s",
            ratio <= 1.10,
            f"gpuwizard apply {w:.2f} s (median of {pairs}; runs "
            + ", ".join(f"{x:.2f}" for x in wizard_t)
            + " s) vs by hand "
            + ", ".join(f"{x:.2f}" for x in hand_t)
            + " s; fresh sandbox each",
        ),
    ]


if __name__ == "__main__":
    emit(run(), "--json" in sys.argv)
