"""Where systemd runs, the forked worker moves into a transient scope of its own.

The worker must outlive the SSH session that started it: logind may kill every process of a
session's scope at logout (KillUserProcesses=yes). `systemd-run` gave it a unit of its own by
starting a fresh interpreter, which imports gpuwizard again and probes the host again (0.2-0.4
s per run). A scope adopts a running process instead: the worker forked from the CLI, with
gpuwizard imported and the plan in hand, asks systemd for `gpuwizard-RUN.scope` holding its own
pid (what `systemd-run --scope` does for the command it starts), and writes its output to the
journal as a unit's output goes there, so `journalctl -u gpuwizard-RUN.scope` reads as the
service's did. Where either cannot be done, the caller falls back to `systemd-run`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Optional

from gpuwizard.selfexec import clean_env

JOURNAL_STREAM = "/run/systemd/journal/stdout"


def scope_name(run_id: str) -> str:
    return f"gpuwizard-{run_id.lower()}.scope"


def available() -> bool:
    """busctl speaks to systemd over the system bus (systemd ships it)."""
    return shutil.which("busctl") is not None


def enter(unit: str, description: str, wait: float = 3.0) -> Optional[str]:
    """Move this process into a new transient scope `unit`; None once /proc/self/cgroup shows
    it there, else why not (for the worker's log). Bounded (5 s for the bus, `wait` for the
    move) well inside the 15 s the face waits for the worker's first record, so a fallback
    to systemd-run still starts in time."""
    busctl = shutil.which("busctl")
    if busctl is None:
        return "busctl is not installed"
    argv = [
        busctl, "call", "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
        "org.freedesktop.systemd1.Manager", "StartTransientUnit", "ssa(sv)a(sa(sv))",
        unit, "fail", "3",
        "PIDs", "au", "1", str(os.getpid()),
        "CollectMode", "s", "inactive-or-failed",
        "Description", "s", description,
        "0",
    ]  # fmt: skip
    try:
        res = subprocess.run(  # noqa: S603 (an argv list, no shell)
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=5,
            env=clean_env(),
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"busctl: {exc}"
    if res.returncode != 0:
        return f"busctl exited {res.returncode}: {res.stderr.strip()[-300:]}"
    deadline = time.monotonic() + wait
    while True:
        try:
            if f"/{unit}" in Path("/proc/self/cgroup").read_text():
                return None
        except OSError as exc:
            return f"cannot read /proc/self/cgroup: {exc}"
        if time.monotonic() > deadline:
            return f"systemd started {unit}, but this process is not in it after {wait:.0f} s"
        time.sleep(0.005)


def journal_stream(identifier: str) -> Optional[int]:
    """A descriptor whose lines go to the journal, attributed to this process's unit (journald
    reads the unit from the connecting process's cgroup: connect once inside the scope), as a
    service's stdout is; None where journald does not listen."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(JOURNAL_STREAM)
        # identifier, unit id, priority (info), level prefix, to syslog, kmsg, console
        sock.sendall(f"{identifier}\n\n6\n0\n0\n0\n0\n".encode())
        sock.shutdown(socket.SHUT_RD)
    except OSError:
        sock.close()
        return None
    return sock.detach()
