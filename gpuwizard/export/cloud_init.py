"""The plan as cloud-init user data: a #cloud-config that writes the exported shell script
(gpuwizard.export.sh, unchanged) and runs it once at first boot.

The script goes into write_files (root-only, 0700) and runcmd runs it with sh; its output lands
in cloud-init's log (/var/log/cloud-init-output.log). The same idempotence holds: a re-run
(cloud-init clean, or by hand) changes nothing that is in place.
"""

from __future__ import annotations

from gpuwizard.export import sh
from gpuwizard.export.recipe import Recipe

SCRIPT_PATH = "/usr/local/sbin/gpuwizard-gpu-setup.sh"


def render(r: Recipe) -> str:
    script = sh.render(r)
    lines = [
        "#cloud-config",
        f"# exported by gpuwizard (`gpuwizard plan --export cloud-init`) from the plan on "
        f"{r.exported_from}",
        f"# (plan digest {r.digest[:16]}). It writes the exported shell script to {SCRIPT_PATH}",
        "# and runs it once; read the script below: it is the same as `--export sh`.",
        "write_files:",
        f"  - path: {SCRIPT_PATH}",
        "    owner: root:root",
        "    permissions: '0700'",
        "    content: |",
    ]
    lines += [("      " + line).rstrip() for line in script.splitlines()]
    lines += [
        "runcmd:",
        f"  - [sh, {SCRIPT_PATH}]",
    ]
    return "\n".join(lines) + "\n"
