"""Root is never borrowed by the caller's working directory or environment (issue 13, item 2).

`sudo gpuwizard` keeps the user's working directory. The detached worker (and the app's sudo
re-exec) used to be started as `python -m gpuwizard` from there, which puts that directory
first on sys.path: a `gpuwizard/` folder planted in it ran as root.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpuwizard.selfexec import clean_env, python_argv

PLANTED = """
import pathlib
pathlib.Path({marker!r}).write_text("planted code ran")
"""


def _plant(cwd: Path, marker: Path) -> None:
    pkg = cwd / "gpuwizard"
    pkg.mkdir(parents=True)
    for name in ("__init__.py", "__main__.py", "cli.py", "worker.py"):
        (pkg / name).write_text(PLANTED.format(marker=str(marker)))


@pytest.mark.slow
def test_a_gpuwizard_folder_in_the_working_directory_never_runs_in_the_worker(
    tmp_path: Path,
) -> None:
    hostile, marker = tmp_path / "hostile", tmp_path / "marker"
    _plant(hostile, marker)
    script = Path(sys.executable).parent / "gpuwizard"  # the console script, as `sudo gpuwizard`
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["GPUWIZARD_DEMO_ROOT"] = str(tmp_path / "demo")
    env["PYTHONSTARTUP"] = str(hostile / "gpuwizard" / "cli.py")  # ignored by any Python child
    res = subprocess.run(
        [str(script), "--demo", "apply", "--yes", "--auto-revert", "0"],
        cwd=hostile,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "GPU test: 3 of 3 passed" in res.stdout
    assert not marker.exists(), "the planted gpuwizard/ ran"


def test_the_child_python_is_isolated_and_imports_this_gpuwizard(tmp_path: Path) -> None:
    argv = python_argv("--version")
    assert argv[:2] == [sys.executable, "-I"]
    hostile = tmp_path / "cwd"
    _plant(hostile, tmp_path / "marker")
    env = clean_env({**os.environ, "PYTHONPATH": str(hostile), "PYTHONINSPECT": "1"})
    assert not [k for k in env if k.startswith("PYTHON")]
    probe = [
        argv[0],
        "-I",
        "-c",
        "import sys; sys.path.insert(0, sys.argv[1]); import gpuwizard; print(gpuwizard.__file__)",
        argv[4],
    ]
    out = subprocess.run(probe, cwd=hostile, env=env, capture_output=True, text=True, check=True)
    assert Path(out.stdout.strip()).parent.parent == Path(argv[4])
    assert not (tmp_path / "marker").exists()
