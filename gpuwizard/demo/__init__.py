"""Demo mode: the whole flow on any machine, with nothing on it changed.

The package: `recorded` (the recorded host, as data in gpuwizard/data/demo_host.json),
`machine` (the private folder and the Host on it), `runner` and `engine` (the stand-ins for the
machine's programs and its Docker).

In the spirit of subiquity's dry-run, demo mode swaps the host's seams, never the steps:

- the root is a folder holding files recorded on the project's H200 machine (Ubuntu 24.04,
  driver 580.159.04, a daemon.json with someone's settings);
- the runner is a `DemoRunner`: it records each argv, answers with short plausible output and
  applies the command's effect to the demo root only (a package "installed" by apt-get is
  written to the demo root's dpkg status), so later steps and their checks see it;
- `nvml_backend` is the recorded H200 backend and `engine_factory` gives recorded Docker facts
  (both from the driver and docker layers, when present).

The demo root lives in one private folder per user and install —
`$XDG_RUNTIME_DIR/gpuwizard-demo-<install>`, else `~/.cache/gpuwizard-demo-<install>`, else a
fresh `mkdtemp` folder (`<install>` hashes the install's folder and version, so two installs
never share a demo machine); `GPUWIZARD_DEMO_ROOT` overrides it
and is set for the detached worker, a separate process, so it finds the same demo machine.
Never a predictable name under /tmp: another local user could pre-create it, or plant links
in it, and make `sudo gpuwizard --demo` write anywhere. Every folder is checked (lstat: a real
folder, owned by us, not writable by others) before anything is written in it.
"""

from __future__ import annotations

from gpuwizard.demo.machine import (
    demo_folder,
    demo_host,
    demo_options,
    folder_name,
    recorded_demo_key,
)
from gpuwizard.demo.recorded import DEMO_FINGERPRINT, DEMO_LABEL, RECORDED_FILES, ROOT_ENV
from gpuwizard.demo.runner import DemoRunner

__all__ = [
    "DEMO_FINGERPRINT",
    "DEMO_LABEL",
    "RECORDED_FILES",
    "ROOT_ENV",
    "DemoRunner",
    "demo_folder",
    "demo_host",
    "demo_options",
    "folder_name",
    "recorded_demo_key",
]
