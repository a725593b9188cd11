"""The fleet view: many hosts' gpuwizard results from one Ansible run, in one table.

The gpuwizard.gpu collection's `fleet` callback writes one JSON file at the end of a play
(gpuwizard-fleet.json): per host, Ansible's verdict (ok, changed, failed, unreachable), its
message, and what the gpuwizard module reported (the GPU, the driver, the toolkit, each step's
state after the run). This module only reads that file and draws it: 80 columns for eight
servers at a glance, and the same facts as JSON. It never imports Ansible, so the control node
needs only gpuwizard (or the one-file build) to look.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from gpuwizard.errors import WizardError
from gpuwizard.options import ALL_STEP_NAMES

FORMAT = 1  # the callback's "gpuwizard_fleet" value this reader understands
WIDTH = 80

# a step's state after the run, as one mark (the CLI's marks)
MARKS = {
    "done": "✓",
    "pending": "•",
    "blocked": "✗",
    "failed": "✗",
    "skipped": "-",
    "rolled-back": "↺",
}
SHORT = {
    "driver": "drv",
    "repository": "rep",
    "packages": "pkg",
    "cdi": "cdi",
    "daemon-config": "cfg",
    "restart": "rst",
    "gpu-test": "tst",
    "podman": "pod",
    "containerd": "ctd",
    "containerd-restart": "crs",
}
LEGEND = "✓ done  • to do  ✗ blocked  - skipped  ? unknown"


@dataclass
class HostRow:
    """One host's line: Ansible's verdict and what gpuwizard said about the host."""

    name: str
    result: str  # ok | changed | failed | unreachable
    msg: str = ""
    gpus: list[str] = field(default_factory=list)
    driver: Optional[str] = None
    cuda: Optional[str] = None
    toolkit: Optional[str] = None
    os: Optional[str] = None
    steps: dict[str, str] = field(default_factory=dict)  # step -> state
    run: Optional[str] = None
    run_status: Optional[str] = None
    known: bool = True  # gpuwizard reported on this host (not so when it was unreachable)

    def gpu_text(self) -> str:
        if not self.known:
            return "?"
        if not self.gpus:
            return "none"
        names = [g.replace("NVIDIA ", "") for g in self.gpus]
        first = names[0]
        if all(n == first for n in names):
            return f"{len(names)}× {first}"
        return f"{len(names)}× mixed"

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.name,
            "result": self.result,
            "msg": self.msg,
            "gpus": self.gpus,
            "driver": self.driver,
            "cuda": self.cuda,
            "toolkit": self.toolkit,
            "os": self.os,
            "steps": self.steps,
            "run": self.run,
            "run_status": self.run_status,
            "known": self.known,
        }


@dataclass
class FleetView:
    source: str
    playbook: str
    hosts: list[HostRow]

    def failed(self) -> list[HostRow]:
        return [h for h in self.hosts if h.result in ("failed", "unreachable")]

    def step_names(self) -> list[str]:
        """The steps any host reported, in the wizard's order."""
        seen = {s for h in self.hosts for s in h.steps}
        return [s for s in ALL_STEP_NAMES if s in seen]

    def to_json(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for h in self.hosts:
            counts[h.result] = counts.get(h.result, 0) + 1
        return {
            "source": self.source,
            "playbook": self.playbook,
            "hosts": [h.to_json() for h in self.hosts],
            "counts": counts,
            "steps": self.step_names(),
        }


def _bad(path: str, why: str) -> WizardError:
    return WizardError(
        f"{path} is not a gpuwizard fleet file: {why}",
        "Give the file the gpuwizard.gpu.fleet callback wrote (gpuwizard-fleet.json by "
        "default; enable it with callbacks_enabled = gpuwizard.gpu.fleet in ansible.cfg).",
    )


def _text(value: Any) -> Optional[str]:
    return None if value is None else str(value)


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _row(name: str, data: Any, path: str) -> HostRow:
    if not isinstance(data, dict):
        raise _bad(path, f"host {name!r} is not an object")
    gw = _obj(data.get("gpuwizard"))
    host = _obj(gw.get("host"))
    run = _obj(gw.get("run"))
    steps = _list(gw.get("steps"))
    gpus = _list(host.get("gpus"))
    return HostRow(
        name=str(name),
        result=str(data.get("result", "unknown")),
        msg=str(data.get("msg") or ""),
        gpus=[str(g) for g in gpus],
        driver=_text(host.get("driver")),
        cuda=_text(host.get("cuda")),
        toolkit=_text(host.get("toolkit")),
        os=_text(host.get("os")),
        steps={
            str(s.get("step")): str(s.get("state"))
            for s in steps
            if isinstance(s, dict) and s.get("step")
        },
        run=_text(run.get("run")),
        run_status=_text(run.get("status")),
        known=bool(host),
    )


def load(path: str) -> FleetView:
    """Read the callback's file; a wrong or damaged one is an error naming the fix."""
    try:
        raw = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WizardError(
            f"There is no fleet file {path}",
            "Run the play with the gpuwizard.gpu.fleet callback enabled (ansible/ansible.cfg "
            "does), then give the file it names at the end.",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise WizardError(f"Cannot read {path}: {exc}", "Check the path and its rights.") from None
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise _bad(path, f"not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("gpuwizard_fleet") != FORMAT:
        raise _bad(path, 'no "gpuwizard_fleet": 1 in it')
    hosts = data.get("hosts")
    if not isinstance(hosts, dict):
        raise _bad(path, 'no "hosts" object')
    rows = [_row(name, hosts[name], path) for name in sorted(hosts)]
    return FleetView(path, str(data.get("playbook", "")), rows)


def _host_names(names: list[str], width: int) -> dict[str, str]:
    """Names that fit the column and still tell hosts apart: the short name (up to the first
    dot) where those are unique, then cut in the middle, where the numbers usually are not."""
    out = {n: n for n in names}
    if any(len(n) > width for n in names):
        short = {n: n.split(".", 1)[0] for n in names}
        if len(set(short.values())) == len(names):
            out = short
    for n, text in out.items():
        if len(text) > width:
            keep = width - 1
            out[n] = text[: keep - keep // 2] + "…" + text[len(text) - keep // 2 :]
    return out


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def render(view: FleetView, width: int = WIDTH) -> str:
    """The table: host, GPU, driver, toolkit, one mark per step, Ansible's verdict; then the
    cause and remedy of every host that failed."""
    steps = view.step_names()
    fixed = {"gpu": 8, "driver": 10, "toolkit": 8, "result": 7}
    step_w = 4 * len(steps)
    host_w = max(8, min(max((len(h.name) for h in view.hosts), default=4), 20))
    spare = width - (host_w + 1 + fixed["gpu"] + 1 + fixed["driver"] + 1 + fixed["toolkit"])
    spare -= 1 + step_w + fixed["result"]
    if spare < 0:
        host_w = max(6, host_w + spare)
    head = (
        f"{'HOST':<{host_w}} {'GPU':<{fixed['gpu']}} {'DRIVER':<{fixed['driver']}} "
        f"{'TOOLKIT':<{fixed['toolkit']}} " + "".join(f"{SHORT[s]:<4}" for s in steps) + "RESULT"
    )
    lines = [head.rstrip()]
    shown = _host_names([h.name for h in view.hosts], host_w)
    for h in view.hosts:
        marks = "".join(f"{MARKS.get(h.steps.get(s, ''), '?'):<4}" for s in steps)
        none = "-" if h.known else "?"
        result = {"failed": "FAILED", "unreachable": "UNREACH"}.get(h.result, h.result)
        lines.append(
            (
                f"{shown[h.name]:<{host_w}} "
                f"{_cut(h.gpu_text(), fixed['gpu']):<{fixed['gpu']}} "
                f"{_cut(h.driver or none, fixed['driver']):<{fixed['driver']}} "
                f"{_cut(h.toolkit or none, fixed['toolkit']):<{fixed['toolkit']}} "
                f"{marks}{result}"
            ).rstrip()
        )
    counts = view.to_json()["counts"]
    lines.append("")
    lines.append(
        f"{len(view.hosts)} host(s): " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    )
    lines.append(LEGEND)
    if steps:
        lines += _entries("steps:", [f"{SHORT[s]}={s}" for s in steps], width)
    for h in view.failed():
        lines.append("")
        lines.append(f"{h.name}: {h.result}")
        for part in (h.msg or "no message").splitlines():
            lines.append(f"  {part}")
    return "\n".join(_wrap(line, width) for line in lines)


def _entries(head: str, items: list[str], width: int) -> list[str]:
    """Items on as few lines as fit the width, never broken inside one."""
    out, line = [], head
    for item in items:
        if len(line) + 1 + len(item) > width:
            out.append(line)
            line = " " * len(head)
        line += " " + item
    return out + [line]


def _wrap(line: str, width: int) -> str:
    """Lines longer than the width break at spaces, indented under their start."""
    if len(line) <= width:
        return line
    import textwrap

    indent = " " * (len(line) - len(line.lstrip()) + 2)
    return "\n".join(textwrap.wrap(line, width, subsequent_indent=indent, break_on_hyphens=False))
