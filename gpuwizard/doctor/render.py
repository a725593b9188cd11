"""The report as text, and the answer for a pasted error message."""

from __future__ import annotations

import os
import sys
import textwrap
from typing import Optional

from gpuwizard import failures
from gpuwizard.doctor.links import BROKEN, OK, SKIPPED, WARN, DoctorReport
from gpuwizard.errors import WizardError
from gpuwizard.host.system import Host

_MARKS = {OK: "✓", WARN: "!", BROKEN: "✗", SKIPPED: "-"}
_COLOURS = {OK: "\x1b[32m", WARN: "\x1b[33m", BROKEN: "\x1b[31m", SKIPPED: "\x1b[2m"}


def render_report(report: DoctorReport, color: Optional[bool] = None, width: int = 100) -> str:
    """Plain text with ✓ ! ✗ - marks; colour only on a terminal and never under NO_COLOR."""
    if color is None:
        color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    if "NO_COLOR" in os.environ:
        color = False
    pad = max(len(link.name) for link in report.links) + 2
    out = [f"gpuwizard doctor: {report.system} ({report.host})"]
    indent = " " * (pad + 2)
    for link in report.links:
        mark = _MARKS.get(link.verdict, "?")
        summary = textwrap.fill(
            link.summary,
            width,
            initial_indent=" " * (pad + 2),
            subsequent_indent=indent,
            break_on_hyphens=False,
            break_long_words=False,
        )[pad + 2 :]
        if color:
            mark = f"{_COLOURS.get(link.verdict, '')}{mark}\x1b[0m"
        out.append(f"{mark} {link.name.ljust(pad)}{summary}")
        if link.verdict in (BROKEN, WARN):
            for label, text in (("cause:", link.cause), ("fix:", link.remedy)):
                if text:
                    out.append(
                        textwrap.fill(
                            text,
                            width,
                            initial_indent=f"{indent}{label:7}",
                            subsequent_indent=indent + " " * 7,
                            break_on_hyphens=False,
                        )
                    )
            if link.next_command:
                out.append(f"{indent}{'next:':7}$ {link.next_command}")
    broken = [link for link in report.links if link.verdict == BROKEN]
    warns = [link for link in report.links if link.verdict == WARN]
    if broken:
        out.append(
            f"Broken at {broken[0].name}: {len(broken)} broken, {len(warns)} warning(s). "
            "Fix the first broken link first; the later ones often follow from it."
        )
    else:
        out.append(f"All links hold ({len(warns)} warning(s))." if warns else "All links hold.")
    return "\n".join(out)


def explain(text: str, family: Optional[str] = None, host: Optional[Host] = None) -> str:
    """The human answer for a pasted error message (the CLI's `doctor --explain`).

    The fix is given for this machine's distribution unless `family` says otherwise: a
    message is most often explained on the machine that printed it.
    """
    if family is None:
        try:
            family = (host or Host()).facts.family()
        except (OSError, ImportError, WizardError):
            family = None
    return failures.explain(text, family)
