"""actions/: the reversible vocabulary. Importing this package registers every kind."""

from gpuwizard.actions import (  # noqa: F401
    cdi,
    commands,
    containers,
    engines,
    files,
    images,
    packages,
    services,
)
from gpuwizard.actions.base import Action, ApplyContext, Diff, action_class, register
from gpuwizard.actions.commands import RunCommand
from gpuwizard.actions.files import RemoveFile, WriteFile

__all__ = [
    "Action",
    "ApplyContext",
    "Diff",
    "RemoveFile",
    "RunCommand",
    "WriteFile",
    "action_class",
    "register",
]
