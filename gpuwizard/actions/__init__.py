"""actions/: the reversible vocabulary. Importing this package registers every kind."""

from gpuwizard.actions import cdi, commands, containers, files, packages, services  # noqa: F401
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
