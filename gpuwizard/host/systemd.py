"""docker.service as systemd sees it: a read-only probe (works without root).

Used by the restart step (recognise a unit locked out by its start limit before gpuwizard's own
restart) and by faces that report the host's state.
"""

from __future__ import annotations

from gpuwizard.errors import WizardError
from gpuwizard.host.system import Host


def unit_state(host: Host, method: str = "systemd") -> dict[str, str]:
    """docker.service as systemd sees it (ActiveState, SubState, Result, ...); {} without
    systemd. Read-only: works without root."""
    if not method.startswith("systemd") or not host.is_live or not host.which("systemctl"):
        return {}
    user = ["--user"] if method == "systemd-user" else []
    props = ("LoadState", "ActiveState", "SubState", "Result", "NRestarts", "UnitFileState")
    argv = ["systemctl", *user, "show", "docker.service", *(f"--property={p}" for p in props)]
    try:
        res = host.run(argv, check=False, timeout=15)
    except (OSError, WizardError):
        return {}
    if res.returncode != 0:
        return {}
    state = dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)
    if state.get("ActiveState") == "failed":
        # systemd keeps the unit's last Result (exit-code) when it refuses a start for the
        # limit; the socket's Result and the unit's last journal lines say so
        sock = host.run(
            ["systemctl", *user, "show", "docker.socket", "--property=Result", "--value"],
            check=False,
            timeout=15,
        ).stdout.strip()
        last = ""
        if host.which("journalctl"):
            last = host.run(
                ["journalctl", *user, "-u", "docker.service", "-n", "3", "--no-pager", "-q"],
                check=False,
                timeout=15,
            ).stdout
        if (
            state.get("Result") == "start-limit-hit"
            or sock == "service-start-limit-hit"
            or START_LIMIT_LINE in last
        ):
            state["LockedOut"] = "yes"
    return state


START_LIMIT_LINE = "Start request repeated too quickly"


def locked_out(state: dict[str, str]) -> bool:
    """systemd refuses to start docker.service until `reset-failed`: its start limit was hit
    ("Start request repeated too quickly")."""
    return state.get("LockedOut") == "yes"


def describe_unit_state(state: dict[str, str]) -> str:
    if not state:
        return ""
    text = f"docker.service is {state.get('ActiveState', '?')} ({state.get('SubState', '?')})"
    if locked_out(state):
        text += ", locked out by systemd's start limit (Start request repeated too quickly)"
    elif state.get("ActiveState") == "failed":
        text += f", result {state.get('Result', '?')}"
    return text
