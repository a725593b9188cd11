"""containerd 1.7.24 (trixie) and 2.1.9 (sid) reach the STAND-IN GPU through CDI, via the CRI
API, after `gpuwizard apply`; `gpuwizard rollback` returns their files and service.

Each version runs in tests/containerd_cri_scenario.py under `unshare -m` (a private /etc with
the stand-in spec in /etc/cdi); the binaries come from tests/docker_versions.py's cache.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare"
    ),
]


def _scenario(version: str, tmp_path: Path) -> dict:
    pytest.importorskip("grpc_tools", reason="grpcio-tools (the test extra) compiles api.proto")
    out = tmp_path / "result.json"
    res = subprocess.run(  # noqa: S603
        [
            "unshare",
            "-m",
            sys.executable,
            str(HERE / "containerd_cri_scenario.py"),
            version,
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert out.exists(), res.stdout + res.stderr
    data = json.loads(out.read_text())
    assert "crash" not in data, data["crash"] + data.get("log_tail", "")
    return data


def test_containerd_1_7_needs_enable_cdi_and_gets_it_then_loses_it_on_rollback(
    tmp_path: Path,
) -> None:
    d = _scenario("1.7", tmp_path)
    assert "1.7.24" in d["said"]
    # before: CDI is off in 1.7, so the spec's nvidia-smi is not mounted
    assert "/usr/bin/nvidia-smi" in d["before"].get("error", ""), d["before"]
    # the plan has one section per engine on this host (Docker, Podman, containerd)
    for title in (
        "daemon.json",
        "Restart Docker",
        "Podman (CDI)",
        "containerd runtime",
        "Restart containerd",
    ):
        assert title in d["plan"], d["plan"]
    assert "nvidia" in d["before_nvidia_runtime"].get("error", ""), d["before_nvidia_runtime"]
    assert d["apply_rc"] == 0, d["apply"]
    assert "enable_cdi = true" in d["dropin"]
    assert "runtimes.nvidia]" in d["dropin"] and "runtimes.runc]" in d["dropin"]
    assert d["after"] == {"exit_code": 0, "output": "GPU 0: Stand-in GPU (UUID: GPU-stand-in-0)"}
    # a pod on the `nvidia` runtime handler: containerd found the runtime gpuwizard added
    assert d["after_nvidia_runtime"].get("exit_code") == 0, d["after_nvidia_runtime"]
    assert d["rollback_rc"] == 0, d["rollback"]
    assert d["config_restored"] and not d["dropin_after_rollback"]
    assert "/usr/bin/nvidia-smi" in d["rolled_back"].get("error", ""), d["rolled_back"]


def test_containerd_2_1_has_cdi_by_default_and_gets_the_nvidia_runtime(tmp_path: Path) -> None:
    d = _scenario("2.1", tmp_path)
    assert "2.1.9" in d["said"]
    assert d["before"].get("exit_code") == 0, d["before"]  # CDI on by default in 2.x
    assert d["apply_rc"] == 0, d["apply"]
    assert "version = 3" in d["dropin"] and "io.containerd.cri.v1.runtime" in d["dropin"]
    assert "(on by default in 2.x)" in d["apply"]
    assert d["after"].get("exit_code") == 0 and "Stand-in GPU" in d["after"]["output"]
    assert d["after_nvidia_runtime"].get("exit_code") == 0, d["after_nvidia_runtime"]
    assert d["rollback_rc"] == 0, d["rollback"]
    assert d["config_restored"] and not d["dropin_after_rollback"]
