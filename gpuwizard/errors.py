"""One exception family: every error carries a cause and a remedy a person can act on."""

from __future__ import annotations

from typing import Any


class WizardError(Exception):
    """An error a user can meet: what went wrong, and the next thing to do."""

    def __init__(self, cause: str, remedy: str, detail: str = "") -> None:
        super().__init__(cause)
        self.cause = cause
        self.remedy = remedy
        self.detail = detail

    def __str__(self) -> str:
        text = f"{self.cause}\n  -> {self.remedy}"
        if self.detail:
            text += f"\n  {self.detail}"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "error": type(self).__name__,
            "cause": self.cause,
            "remedy": self.remedy,
            "detail": self.detail,
        }


class CommandFailed(WizardError):
    """A program we ran exited non-zero; keeps the tail of its output."""

    def __init__(
        self, argv: list[str], returncode: int, output_tail: str, remedy: str = ""
    ) -> None:
        cmd = " ".join(argv)
        super().__init__(
            f"`{cmd}` exited with status {returncode}",
            remedy or "Read the output above; fix the cause and run gpuwizard again.",
            output_tail,
        )
        self.argv = argv
        self.returncode = returncode
        self.output_tail = output_tail


class CommandTimeout(WizardError):
    """A program we ran did not finish in time; it was stopped."""


class LockHeld(WizardError):
    """Another gpuwizard run holds the lock."""


class JournalError(WizardError):
    """The journal cannot be read or written."""


class PlanChanged(WizardError):
    """The host changed between the preview and the apply."""


class RollbackConflict(WizardError):
    """A file changed since gpuwizard wrote it; restoring it would lose someone's edit."""


class NeedsRoot(WizardError):
    """The operation changes the system and we are not root."""
