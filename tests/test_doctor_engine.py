"""doctor against a real private dockerd: what it says about the engine is what `docker run`
then does.

Uses the docker helper's fixture module (tests/dockerd.py: a private dockerd with its own
data root, socket and pidfile, and the test suite's stand-in NVIDIA hook); skips until it is
there, and without root or dockerd.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from gpuwizard.doctor import BROKEN, OK, SKIPPED, run_doctor
from gpuwizard.failures import classify
from gpuwizard.host.system import Host
from gpuwizard.options import Options

dockerd_fixture = pytest.importorskip("dockerd", reason="tests/dockerd.py is not here yet")

pytestmark = pytest.mark.slow


@pytest.fixture
def fresh_dockerd() -> Iterator[Any]:
    """A private dockerd started WITHOUT the NVIDIA hook on its PATH (no toolkit yet)."""
    if not dockerd_fixture._have_dockerd():
        pytest.skip("needs dockerd and root")
    d = dockerd_fixture.make_dockerd(stand_ins=False)
    try:
        d.start()
        d.import_busybox()
        yield d
    finally:
        dockerd_fixture.cleanup(d)


def _options(d: Any) -> Options:
    return Options(
        docker_host=d.docker_host,
        docker_pidfile=str(d.base / "docker.pid"),
        daemon_json=str(d.daemon_json),
        restart_command=d.restart_command(),
        test_image=dockerd_fixture.IMAGE,
    )


def _restart(d: Any) -> None:
    """Stop and start the daemon; once more if the first start loses a race with the old
    containerd (other helpers' daemons share this small machine)."""
    d.stop()
    try:
        d.start()
    except RuntimeError:
        d.stop()
        time.sleep(1)
        d.start()


def _gpu_run(d: Any, *extra: str) -> Any:
    return d.docker("run", "--rm", *extra, dockerd_fixture.IMAGE, "true", check=False)


def test_toolkit_installed_after_docker_started_is_named_as_docker_run_then_fails(
    fresh_dockerd: Any,
) -> None:
    d = fresh_dockerd
    before = run_doctor(Host(), _options(d))
    assert before.link("engine").verdict == OK, before.link("engine")
    assert before.link("gpu-runtime").verdict in (SKIPPED, BROKEN)  # BROKEN on a GPU host
    assert "not installed" in before.link("gpu-runtime").summary
    refused = _gpu_run(d, "--gpus", "all")
    assert refused.returncode != 0
    assert classify(refused.stderr).code == "gpu-device-driver-missing"  # type: ignore[union-attr]

    time.sleep(1.5)  # the toolkit arrives a moment after the daemon started
    d.install_stand_ins()
    stale = run_doctor(Host(), _options(d))
    link = stale.link("gpu-runtime")
    assert link.verdict == BROKEN, link
    assert link.code == "gpu-device-driver-missing"
    assert "before" in link.summary and str(d.bin) in link.summary
    assert link.next_command == shlex.join(d.restart_command())
    # and indeed: the daemon has not seen the hook, so --gpus still fails the same way
    still = _gpu_run(d, "--gpus", "all")
    assert still.returncode != 0
    assert classify(still.stderr).code == link.code  # type: ignore[union-attr]

    _restart(d)
    after = run_doctor(Host(), _options(d))
    assert after.link("gpu-runtime").verdict == OK, after.link("gpu-runtime")
    assert _gpu_run(d, "--gpus", "all").returncode == 0


def test_a_runtime_added_to_daemon_json_is_unknown_to_docker_until_a_reload(
    fresh_dockerd: Any,
) -> None:
    d = fresh_dockerd
    d.install_stand_ins()
    d.daemon_json.write_text(
        json.dumps(
            {"runtimes": {"nvidia": {"path": f"{d.bin}/nvidia-container-runtime", "args": []}}}
        )
    )
    report = run_doctor(Host(), _options(d))
    link = report.link("engine")
    assert link.verdict == BROKEN and link.code == "runtime-nvidia-unknown"
    refused = _gpu_run(d, "--runtime", "nvidia")
    assert refused.returncode != 0
    assert classify(refused.stderr).code == link.code  # type: ignore[union-attr]

    os.kill(d.pid(), signal.SIGHUP)  # what `systemctl reload docker` does
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if run_doctor(Host(), _options(d)).link("engine").verdict == OK:
            break
        time.sleep(0.2)
    assert run_doctor(Host(), _options(d)).link("engine").verdict == OK
    assert Path(d.daemon_json).exists()


def test_the_smoke_container_error_is_named_by_the_same_table(
    fresh_dockerd: Any, tmp_path: Path
) -> None:
    import driver_roots

    # a GPU host's files (the H200's PCI entry) with the real private engine beside it
    root = driver_roots.make_root(tmp_path, "debian")
    driver_roots.add_pci_gpu(root)
    d = fresh_dockerd
    report = run_doctor(Host(root), _options(d), run_test=True)
    smoke = report.link("smoke-test")
    assert smoke.verdict == BROKEN
    assert smoke.code == "gpu-device-driver-missing", smoke
    assert smoke.next_command.startswith("docker run --rm --gpus all local/bb:1")

    d.install_stand_ins()
    _restart(d)
    # the stand-in hook now runs and drops its nvidia-smi into the container, as the real
    # hook mounts the driver's
    smoke = run_doctor(Host(root), _options(d), run_test=True).link("smoke-test")
    assert smoke.verdict == OK, smoke
    assert "NVIDIA H200 (stand-in)" in smoke.summary
    # a driver whose nvidia-smi is mounted at a path on no PATH (the project's GPU machine)
    (d.bin / "standin-offpath").write_text("")
    smoke = run_doctor(Host(root), _options(d), run_test=True).link("smoke-test")
    assert smoke.verdict == BROKEN
    assert smoke.code == "nvidia-smi-missing-in-container", smoke
    assert "/usr/local/nvidia/bin/nvidia-smi" in smoke.fix
