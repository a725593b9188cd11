"""Where an export goes: stdout (so `> gpu-setup.sh` works) or -o FILE; notes go to stderr."""

from __future__ import annotations

import os
import sys
from typing import Any, Optional

from gpuwizard.errors import WizardError
from gpuwizard.export import export_plan, notes
from gpuwizard.options import Options

RUN_HINT = {
    "sh": "review it, then run it as root on the target: sudo sh {file}",
    "cloud-init": "pass it as user data (e.g. --user-data file://{file}); it runs the script once",
    "ansible": "review it, then: ansible-playbook -i INVENTORY {file} (--check --diff first)",
}


def write_export(
    the_plan: Any, host: Any, options: Options, fmt: str, output: Optional[str]
) -> int:
    text = export_plan(the_plan, host, options, fmt)
    for note in notes(the_plan, host, options):
        print(f"gpuwizard: {note}", file=sys.stderr)
    if not output or output == "-":
        sys.stdout.write(text)
        return 0
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):
        raise WizardError(
            f"Cannot write {output}: the folder {folder} does not exist",
            "Create it, or give -o a path in an existing folder (or leave -o out for stdout).",
        )
    try:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
        if fmt == "sh":
            os.chmod(output, 0o755)
    except OSError as exc:
        raise WizardError(
            f"Cannot write {output}: {exc.strerror}", "Pick a path you can write to."
        ) from None
    lines = text.count("\n")
    print(
        f"wrote {output} ({lines} lines, {len(text)} bytes): " + RUN_HINT[fmt].format(file=output),
        file=sys.stderr,
    )
    return 0
