"""The real-GPU scripts under tests/gpu/ run anywhere: without a GPU they say SKIP and exit 0,
so CI can run them and the GPU machine can record with them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv],
        capture_output=True,
        text=True,  # noqa: S603
        timeout=120,
        cwd=REPO,
        check=False,
    )


def test_check_script_skips_cleanly_without_a_gpu() -> None:
    from gpuwizard.host.gpu import probe_gpus
    from gpuwizard.host.system import Host

    result = run("tests/gpu/check_gpu.py")
    assert result.returncode == 0, result.stderr
    if not probe_gpus(Host()).ok:
        assert "SKIP: no working NVIDIA GPU here" in result.stdout
        assert '"source": ' in result.stdout  # the report is printed first


def test_recording_script_skips_cleanly_and_keeps_the_host_files(tmp_path: Path) -> None:
    from gpuwizard.host.gpu import probe_gpus
    from gpuwizard.host.system import Host

    result = run("tests/gpu/record_h200.py", str(tmp_path))
    assert result.returncode == 0, result.stderr
    files = json.loads((tmp_path / "host_files.json").read_text())
    assert "/proc/driver/nvidia/version" in files
    if not probe_gpus(Host()).ok:
        assert "SKIP" in result.stdout
