"""`scripts/screenshots.py` is byte-stable: regenerating on a clean checkout changes nothing
(issue 16). Two scenes that used to differ every time (the run id and deadline of the keep
dialog; the moving readings and the clock of the raw nvidia-smi view) are shot again into a
temporary folder and compared, byte for byte, with the committed ones."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

SCENES = ("gpu-panel-nvidia-smi", "keep-change")


def test_regenerated_screenshots_are_the_committed_bytes(tmp_path: Path) -> None:
    env = dict(os.environ, GPUWIZARD_SCREENSHOTS_OUT=str(tmp_path))
    env.pop("GPUWIZARD_DEMO_ROOT", None)
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "screenshots.py"), *SCENES],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for name in SCENES:
        fresh = (tmp_path / f"{name}.svg").read_bytes()
        committed = (REPO / "screenshots" / f"{name}.svg").read_bytes()
        assert fresh == committed, f"{name}.svg differs from the committed one"
