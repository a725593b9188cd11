"""How gpuwizard starts itself again as root (the detached worker, the app's sudo).

A plain `python -m gpuwizard` puts the caller's working directory first on `sys.path` and
honours PYTHONPATH, PYTHONSTARTUP and friends: a `gpuwizard/` folder planted in that
directory, or a variable set by a less privileged user, would run as root. So the child runs
isolated (`-I`: no cwd, no user site, no PYTHON* variables), from `/`, with the PYTHON*
variables removed from its environment, and imports gpuwizard from exactly the place the
running code came from (a site-packages folder, a source tree, or the zipapp itself).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Mapping, Optional

# The child's first statement: put the running gpuwizard's own location first, then run it.
_BOOT = "import sys; sys.path.insert(0, sys.argv.pop(1)); from gpuwizard.cli import run; run()"

CHILD_CWD = "/"


def package_parent() -> str:
    """The sys.path entry that holds the gpuwizard package running now."""
    return str(Path(__file__).resolve().parent.parent)


def python_argv(*args: str) -> list[str]:
    """argv that runs `gpuwizard ARGS` with this interpreter, isolated from cwd and env."""
    return [sys.executable, "-I", "-c", _BOOT, package_parent(), *args]


def clean_env(base: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """The environment for a Python child: the caller's, minus every PYTHON* variable."""
    env = dict(os.environ if base is None else base)
    return {k: v for k, v in env.items() if not k.startswith("PYTHON")}
