"""Export the approved plan as an artefact people already run: a POSIX shell script, an Ansible
playbook, or a cloud-init #cloud-config (`gpuwizard plan --export FORMAT`).

One recipe (gpuwizard.export.recipe) is taken from the plan; each format renders it in its own
module. A plan that is blocked is not exported: the artefact would promise what cannot run.
"""

from __future__ import annotations

import importlib
from typing import Any

from gpuwizard.errors import WizardError
from gpuwizard.options import Options

FORMATS = {
    "sh": "gpuwizard.export.sh",
    "cloud-init": "gpuwizard.export.cloud_init",
    "ansible": "gpuwizard.export.ansible",
}


def export_plan(the_plan: Any, host: Any, options: Options, fmt: str) -> str:
    """The artefact's text; a WizardError names what stops the export and the way out."""
    if fmt not in FORMATS:
        raise WizardError(
            f"Unknown export format {fmt!r}",
            "Use one of: " + ", ".join(FORMATS) + " (e.g. gpuwizard plan --export sh).",
        )
    from gpuwizard.export.recipe import build

    recipe = build(the_plan, host, options)
    module = importlib.import_module(FORMATS[fmt])
    text: str = module.render(recipe)
    return text


def notes(the_plan: Any, host: Any, options: Options) -> list[str]:
    """What the person should know about the export (left-out parts), for stderr."""
    from gpuwizard.export.recipe import build

    recipe = build(the_plan, host, options)
    return recipe.notes + [f"not exported: {u}" for u in recipe.unsupported]
