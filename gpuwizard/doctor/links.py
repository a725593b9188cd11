"""What a doctor link is: a verdict on one link of the chain, and the report they make."""

from __future__ import annotations

import dataclasses
import enum
import shlex
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

from gpuwizard import failures
from gpuwizard.host.system import Host
from gpuwizard.options import Options
from gpuwizard.states import LinkProgress


class Verdict(str, enum.Enum):
    """A link holds (ok), holds with a worry (warn), is broken, or was not checked."""

    OK = "ok"
    WARN = "warn"
    BROKEN = "broken"
    SKIPPED = "skipped"

    def __str__(self) -> str:
        return self.value

    @property
    def progress(self) -> LinkProgress:
        """The verdict as a doctor link's event says it."""
        return self.value


OK, WARN, BROKEN, SKIPPED = Verdict.OK, Verdict.WARN, Verdict.BROKEN, Verdict.SKIPPED
VERDICTS = tuple(Verdict)
SEVERITY = {BROKEN: 0, WARN: 1, OK: 2, SKIPPED: 3}


@dataclass(frozen=True)
class Link:
    """One link of the chain and what doctor found there."""

    name: str
    verdict: Verdict
    summary: str
    cause: str = ""
    next_command: str = ""
    remedy: str = ""  # what to do, in words, when one command is not the whole answer
    title: str = ""
    code: Optional[str] = None  # the failures table's code, when this is a known failure
    facts: Mapping[str, Any] = field(default_factory=dict)

    @property
    def fix(self) -> str:
        """The remedy under its old name (the JSON report keeps `fix` for scripts)."""
        return self.remedy

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "verdict": self.verdict.value,
            "summary": self.summary,
            "cause": self.cause,
            "remedy": self.remedy,
            "fix": self.remedy,  # the name scripts read before `remedy`
            "next_command": self.next_command,
            "code": self.code,
            "facts": dict(self.facts),
        }


@dataclass(frozen=True)
class DoctorReport:
    """Every link's verdict, in chain order."""

    links: tuple[Link, ...]
    host: str
    system: str
    family: str
    seconds: float
    unknown: tuple[str, ...] = ()  # facts unreadable without root (permission denied)

    @property
    def ok(self) -> bool:
        """True unless a link is broken (warnings do not fail the check)."""
        return not any(link.verdict == BROKEN for link in self.links)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    @property
    def first_broken(self) -> Optional[Link]:
        return next((link for link in self.links if link.verdict == BROKEN), None)

    def link(self, name: str) -> Link:
        for link in self.links:
            if link.name == name:
                return link
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        broken = self.first_broken
        return {
            "ok": self.ok,
            "exit_code": self.exit_code,
            "host": self.host,
            "system": self.system,
            "family": self.family,
            "seconds": round(self.seconds, 3),
            "first_broken": broken.name if broken else None,
            "links": [link.to_json() for link in self.links],
            "unknown_without_permission": list(self.unknown),
        }


@dataclass
class Walk:
    """What the links share: the host, the options, and what earlier links learnt."""

    host: Host
    options: Options
    family: str
    init_system: str
    package_manager: Optional[str]
    gpu: Optional[bool] = None  # None: could not tell
    hook: Optional[str] = None  # where nvidia-container-runtime-hook is
    daemon_config: Optional[dict[str, Any]] = None  # daemon.json's value, when it parsed
    daemon_json: str = "/etc/docker/daemon.json"
    engine: Optional[dict[str, Any]] = None  # the engine's info, when reachable
    client: Any = None  # the engine's client, for the smoke test

    def absent(self, name: str, title: str, summary: str, **kw: Any) -> Link:
        """Something is not set up: broken where a GPU needs it, skipped where there is none."""
        facts = {**kw.pop("facts", {}), "absent": True}
        if self.gpu is False:
            return Link(
                name,
                SKIPPED,
                f"{summary} (not needed without an NVIDIA GPU)",
                title=title,
                facts=facts,
            )
        return Link(name, BROKEN, summary, title=title, facts=facts, **kw)

    def restart_command(self, reload: bool = False) -> str:
        if self.options.restart_command:
            return shlex.join(self.options.restart_command)
        verb = "reload" if reload else "restart"
        if (
            self.host.path("/snap/bin/docker").exists()
            and not self.host.path("/usr/bin/dockerd").exists()
        ):
            return "sudo snap restart docker"
        if self.init_system == "systemd":
            return f"sudo systemctl {verb} docker"
        return f"sudo service docker {verb}"


Probe = Callable[[Walk], Link]


def from_failure(
    name: str,
    code: str,
    summary: str,
    walk: Walk,
    next_command: str = "",
    verdict: Verdict = BROKEN,
    details: Optional[Mapping[str, str]] = None,
    facts: Optional[Mapping[str, Any]] = None,
    cause: str = "",
) -> Link:
    """A link whose problem is a row of the failures table: its cause and fix, in one place."""
    failure = failures.get(code, details or {}, walk.family)
    return Link(
        name,
        verdict,
        summary,
        cause=cause or failure.cause,
        remedy=failure.fix,
        next_command=next_command,
        code=code,
        facts=facts or {},
    )


def worst_first(found: list[Link]) -> Link:
    """One link from several findings: the worst leads, the other problems follow it."""
    found = sorted(found, key=lambda link: SEVERITY.get(link.verdict, 9))
    primary, others = found[0], [f for f in found[1:] if f.verdict in (BROKEN, WARN)]
    if not others:
        return primary
    also = "; ".join(o.summary for o in others)
    return dataclasses.replace(
        primary,
        summary=f"{primary.summary}. Also: {also}",
        facts={**primary.facts, "also": [o.to_json() for o in others]},
    )


def short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
