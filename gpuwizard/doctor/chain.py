"""The walk: every link in chain order, each judged on its own; one crashing stops nothing."""

from __future__ import annotations

import dataclasses
import time
from typing import Optional

from gpuwizard.doctor import (
    cdi,
    daemon_config,
    engine,
    hardware,
    packages,
    repository,
    toolkit_config,
)
from gpuwizard.doctor.links import BROKEN, OK, WARN, DoctorReport, Link, Probe, Walk
from gpuwizard.errors import WizardError
from gpuwizard.events import EventSink, StepState
from gpuwizard.host.system import Host
from gpuwizard.options import Options


def chain(run_test: bool) -> list[tuple[str, str, Probe]]:
    """The links, looked up when the walk starts (so a test can swap one)."""
    return [
        ("hardware", "NVIDIA GPU on the PCI bus", hardware.probe_hardware),
        ("kernel-module", "NVIDIA kernel module", hardware.probe_kernel_module),
        ("driver", "Driver userspace (NVML, nvidia-smi)", hardware.probe_driver),
        ("repository", "Toolkit repository and signing key", repository.probe_repository),
        ("packages", "Toolkit packages", packages.probe_packages),
        ("toolkit-config", "The toolkit's config.toml", toolkit_config.probe_toolkit_config),
        ("daemon-config", "Docker's daemon.json", daemon_config.probe_daemon_config),
        ("engine", "Docker engine running with that file", engine.probe_engine),
        ("gpu-runtime", "GPU support registered in the engine", engine.probe_gpu_runtime),
        ("cdi", "CDI specs (/etc/cdi, /var/run/cdi)", cdi.probe_cdi),
        (
            "smoke-test",
            "A GPU container",
            engine.probe_smoke_test if run_test else engine.no_smoke_test,
        ),
    ]


def run_doctor(
    host: Host, options: Options, run_test: bool = False, emit: Optional[EventSink] = None
) -> DoctorReport:
    """Check every link of the chain on `host`; never changes anything."""
    started = time.monotonic()
    try:
        facts = host.facts
        family, init, pm = facts.family(), facts.init_system, facts.package_manager
        system = facts.pretty_name
    except (OSError, ImportError, WizardError) as exc:  # no os-release, no `distro`: walk on
        family, init, pm, system = "other", "none", None, f"unknown ({exc})"
    walk = Walk(host=host, options=options, family=family, init_system=init, package_manager=pm)
    links = []
    for name, title, probe in chain(run_test):
        if emit:
            emit(StepState(step=f"doctor:{name}", state="running"))
        try:
            link = probe(walk)
        except PermissionError as exc:
            what = f"{name}: cannot read {exc.filename or 'a file'} (permission denied)"
            host.note_unknown(what)
            link = Link(
                name,
                WARN,
                f"unknown without root: {exc.filename or 'a file'} is not readable",
                cause="a normal user cannot read it; the other links are still checked.",
                remedy="Run `sudo gpuwizard doctor` to check this link.",
            )
        except Exception as exc:  # a link's bug must not hide the other links
            link = Link(
                name,
                WARN,
                f"could not be checked: {type(exc).__name__}: {exc}",
                cause="doctor's own probe failed; the other links are still checked.",
            )
        if not link.title:
            link = dataclasses.replace(link, title=title)
        links.append(link)
        if emit:
            emit(StepState(step=f"doctor:{name}", state=link.verdict.progress, reason=link.summary))
    if walk.client is not None:
        engine.close(walk.client)
    return DoctorReport(
        links=tuple(settle(links)),
        host=host.label or str(host.root),
        system=system,
        family=family,
        seconds=time.monotonic() - started,
        unknown=tuple(getattr(host, "unknown", ())),
    )


def settle(links: list[Link]) -> list[Link]:
    """Verdicts one link can only give knowing another's: a toolkit installed from a vendor's
    repository (Lambda Stack, a cloud image) needs no NVIDIA repository to work."""
    by_name = {link.name: link for link in links}
    repo, pkgs = by_name.get("repository"), by_name.get("packages")
    if (
        repo
        and pkgs
        and repo.verdict == BROKEN
        and repo.facts.get("absent")
        and pkgs.verdict in (OK, WARN)
    ):
        settled = Link(
            "repository",
            WARN,
            f"{repo.summary}: the toolkit came from elsewhere",
            remedy="Upgrades will come from wherever it came from; add NVIDIA's "
            "repository to get 1.20.x.",
            next_command="apt-cache policy nvidia-container-toolkit",
            title=repo.title,
            facts=repo.facts,
        )
        links = [settled if link is repo else link for link in links]
    return links
