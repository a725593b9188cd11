"""The benchmarks stay runnable: every module imports, and the start-up one prints JSON that a
script can read. (The figures themselves are not checked: CI machines differ.)"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.__main__ import MODULES  # noqa: E402


@pytest.mark.parametrize("name", MODULES)
def test_each_benchmark_module_imports_and_has_run(name: str) -> None:
    module = importlib.import_module(f"benchmarks.{name}")
    assert callable(module.run)


def test_startup_benchmark_prints_figures_as_json() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks", "startup", "--json", "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    figures = json.loads(out.stdout)
    status = next(f for f in figures if "status --json" in f["name"])
    assert status["unit"] == "s" and status["value"] > 0
    assert {"name", "value", "unit", "target", "anchor", "meets", "note"} <= set(status)
