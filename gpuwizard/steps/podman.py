"""The podman step: Podman reaches the GPU through CDI only.

Podman has no daemon to configure and reads no daemon.json: it needs a CDI spec where it
looks (/etc/cdi, /var/run/cdi), in a schema version it accepts (4.x: up to 0.5.0), and for
rootless users device nodes they may open. The step checks those and runs
`podman run --device nvidia.com/gpu=all IMAGE nvidia-smi -L` as its test (a check, not a
change: nothing to undo).
"""

from __future__ import annotations

import os
import stat
from typing import Any

from gpuwizard.actions.engines import DEFAULT_IMAGE, PodmanGpuTest
from gpuwizard.host import engines as eng
from gpuwizard.host.system import Host
from gpuwizard.options import Options
from gpuwizard.steps import probes
from gpuwizard.steps.base import BLOCKED, PENDING, SKIPPED, Simulation, Step, StepPlan

KIND = "nvidia.com/gpu"
SHIM_NOTE = (
    "`docker` here is the podman-docker shim: it runs Podman, which ignores `--gpus`. "
    "Use `docker run --device nvidia.com/gpu=all …` (the CDI name) instead."
)


def compose_snippet(device: str) -> str:
    """Compose for a CDI device: `driver: cdi` (Docker Compose ≥ 2.30) and the `devices:` list
    that podman-compose passes to `podman run --device`."""
    return (
        "services:\n"
        "  gpu:\n"
        "    image: ubuntu:24.04\n"
        "    command: nvidia-smi -L\n"
        "    deploy:\n"
        "      resources:\n"
        "        reservations:\n"
        "          devices:\n"
        "            - driver: cdi\n"
        f'              device_ids: ["{device}"]\n'
        "    # podman-compose: the same device as a plain list\n"
        "    # devices:\n"
        f"    #   - {device}\n"
    )


def engines_of(host: Host, sim: Simulation) -> eng.Engines:
    """Probe the engines once per plan (several steps ask)."""
    return probes.answer(sim, probes.ENGINES, eng.Engines, lambda: eng.probe_engines(host))


def _newer(a: str, b: str) -> bool:
    return eng.version_tuple(a) > eng.version_tuple(b)


class PodmanStep(Step):
    name = "podman"
    asks = (probes.ENGINES,)
    waits_for = ("driver", "cdi")  # not Docker's steps: Podman has no daemon.json

    def applies(self, host: Host, sim: Simulation) -> bool:
        return engines_of(host, sim).podman.installed

    def plan(self, host: Host, options: Options, sim: Simulation) -> StepPlan:
        found = engines_of(host, sim)
        pod = found.podman
        info: dict[str, Any] = {"podman": _json(pod), "engines": found.lines()}
        warnings: list[str] = []
        if found.docker_is_podman:
            warnings.append(SHIM_NOTE)
        if not pod.installed:
            return self.make(SKIPPED, reason="Podman is not installed", facts=info)
        specs = [s for s in eng.cdi_specs(host, pod.cdi_dirs, sim.files) if s.kind == KIND]
        info["specs"] = [s.path for s in specs]
        if not specs:
            return self.make(
                BLOCKED,
                reason=f"no CDI spec for {KIND} in {' or '.join(pod.cdi_dirs)}",
                remedy="Make one: `sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml` "
                "(Podman reads only /etc/cdi and /var/run/cdi).",
                facts=info,
                warnings=warnings,
            )
        usable = [
            s
            for s in specs
            if not s.error
            and not (pod.cdi_max_version and _newer(s.cdi_version, pod.cdi_max_version))
        ]
        if not usable:
            s = specs[0]
            return self.make(
                BLOCKED,
                reason=s.error
                and f"{s.path}: {s.error}"
                or f"{s.path} is CDI {s.cdi_version}; Podman {pod.version} reads up to "
                f"{pod.cdi_max_version}",
                remedy="Regenerate the spec with a toolkit that writes the lowest version its "
                "content needs (nvidia-ctk does), or upgrade Podman (5.x reads newer specs).",
                facts=info,
                warnings=warnings,
            )
        spec = usable[0]
        names = set().union(*(set(s.devices) for s in usable))
        device = f"{KIND}=all" if "all" in names else f"{KIND}={sorted(names)[0]}"
        info["device"] = device
        info["compose"] = compose_snippet(device)
        info["cdi_version"] = spec.cdi_version
        warnings += _rootless_warnings(host, pod, usable)
        smi = next((m for m in spec.mounts if m.endswith("/nvidia-smi")), "nvidia-smi")
        image = options.podman_image or options.test_image or DEFAULT_IMAGE
        action = PodmanGpuTest(
            podman=pod.path or "podman", image=image, device=device, command=[smi, "-L"]
        )
        return self.make(
            PENDING,
            reason=f"test Podman {pod.version} with {device} ({spec.path}, CDI {spec.cdi_version})",
            actions=[action],
            diffs=action.preview(host),
            facts=info,
            warnings=warnings,
        )


def _rootless_warnings(host: Host, pod: eng.PodmanFacts, specs: list[eng.SpecSummary]) -> list[str]:
    """Rootless Podman opens the spec and the device nodes as the user."""
    out = []
    for s in specs:
        if not s.mode & stat.S_IROTH:
            out.append(f"{s.path} is not world-readable: rootless Podman cannot read it")
    for node in sorted({n for s in specs for n in s.device_nodes}):
        try:
            mode = os.stat(host.path(node)).st_mode
        except OSError:
            out.append(f"{node} (a device node the spec names) does not exist")
            continue
        if (mode & 0o006) != 0o006:
            out.append(
                f"{node} is mode {oct(stat.S_IMODE(mode))}: rootless Podman users cannot open it "
                "(the NVIDIA driver makes its nodes 0666 by default: check NVreg_DeviceFileMode)"
            )
    return out


def _json(facts: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(facts)
