"""The engine never imports textual: only gpuwizard/tui/ may (the subiquity/harlequin split)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "gpuwizard"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_module_outside_the_tui_imports_textual_even_lazily() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "tui" in path.relative_to(PACKAGE).parts:
            continue
        bad = {n for n in _imports(path) if n == "textual" or n.startswith("textual.")}
        if bad:
            offenders.append(f"{path.relative_to(PACKAGE.parent)}: {sorted(bad)}")
    assert offenders == []


def test_the_boundary_check_would_catch_an_import(tmp_path: Path) -> None:
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("def f():\n    from textual.app import App\n    return App\n")
    assert "textual.app" in _imports(sneaky)


def test_importing_the_engine_and_the_cli_loads_no_textual() -> None:
    code = (
        "import sys; import gpuwizard.wizard, gpuwizard.worker, gpuwizard.cli, "
        "gpuwizard.demo; print(any(m == 'textual' or m.startswith('textual.') "
        "for m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent, check=True
    ).stdout.strip()
    assert out == "False"
