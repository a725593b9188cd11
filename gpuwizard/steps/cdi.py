"""The cdi step: a CDI spec for the GPUs, made by the installed toolkit, previewed and undoable.

CDI is the path the field has moved to (toolkit 1.18 made it the default; Docker 28.2 turns it
on; Podman knows nothing else), and it is the one that works where the legacy hook cannot: no
libnvidia-container, or a driver under a non-standard root such as /usr/local/nvidia. The spec
is what `nvidia-ctk cdi generate` writes. gpuwizard runs it into a private folder first, shows
the devices it names (`nvidia-ctk cdi list`), then writes the file like every other file
(journaled, restored byte-exact on rollback). On systemd hosts whose toolkit ships the
`nvidia-cdi-refresh` units (>= 1.18) those units are preferred: they regenerate the spec after a
driver upgrade, which a static file does not.

Optionally (`--runtime-mode cdi`) the NVIDIA runtime's `mode` in
/etc/nvidia-container-runtime/config.toml is set through `nvidia-ctk config --set … --in-place`
(run on a copy, so the change is a previewed diff and undone byte-exact).
"""

from __future__ import annotations

import os
from typing import Any, Optional

from gpuwizard.actions.base import Action
from gpuwizard.actions.cdi import (
    ALL_DEVICES,
    RUNTIME_CONFIG,
    GenerateCdiSpec,
    SetRuntimeMode,
    driver_root,
)
from gpuwizard.errors import WizardError
from gpuwizard.host import cdi as cdi_probe
from gpuwizard.host.system import Host
from gpuwizard.options import Options
from gpuwizard.steps import daemon_config, probes
from gpuwizard.steps.base import BLOCKED, DONE, PENDING, SKIPPED, Simulation, Step, StepPlan

__all__ = ["ALL_DEVICES", "RUNTIME_CONFIG", "CdiStep", "GenerateCdiSpec", "SetRuntimeMode"]


def _report(sim: Simulation) -> Optional[dict[str, Any]]:
    report = sim.facts.get("gpu_report")
    if report is not None and hasattr(report, "to_json"):
        report = report.to_json()
    return report


def _toolkit_planned(host: Host, sim: Simulation) -> bool:
    return bool(sim.packages.get("nvidia-container-toolkit-base")) or bool(
        sim.packages.get("nvidia-container-toolkit")
    )


class CdiStep(Step):
    name = "cdi"
    asks = (probes.ENGINE_FACTS,)

    def plan(self, host: Host, options: Options, sim: Simulation) -> StepPlan:
        report = _report(sim)
        blocked = sim.facts.get("driver-blocked") or (
            report.get("summary", "no working NVIDIA driver")
            if report and report.get("ok") is False
            else None
        )
        engine_facts = daemon_config.engine_facts(host, options, sim) if host.is_live else None
        version = getattr(engine_facts, "version", "") or ""
        state = cdi_probe.probe(
            host,
            driver_version=(report or {}).get("driver_version"),
            engine_version=version,
            cdi_enabled=getattr(engine_facts, "cdi_enabled", None),
            gpu_present=bool(report and report.get("gpus")),
            extra_dirs=(os.path.dirname(options.cdi_spec),) if options.cdi_spec else (),
        )
        sim.facts["cdi_state"] = state.to_json()
        info: dict[str, Any] = {"cdi": state.to_json()}
        if blocked:
            return self.make(
                BLOCKED,
                reason=f"no working driver: {blocked}",
                remedy="Fix the driver first (see the driver step).",
                facts=info,
            )
        ctk = host.which("nvidia-ctk")
        if ctk is None and not _toolkit_planned(host, sim):
            return self.make(
                SKIPPED,
                reason="nvidia-ctk is not installed and the packages step will not install it",
                remedy="Select the packages step (it installs the toolkit and its nvidia-ctk).",
                facts=info,
            )
        # The driver's root goes on nvidia-ctk's PATH, as on the project's H200 (driver under
        # /usr/local/nvidia): `--driver-root=/usr/local/nvidia` there makes nvidia-ctk look for
        # /dev under it too and fail ("invalid device, empty device edits"). --cdi-driver-root
        # passes the flag for roots that hold a whole tree (/run/nvidia/driver).
        root = options.cdi_driver_root or driver_root(report)
        flags = []
        if version and cdi_probe.vtuple(version) < cdi_probe.SCHEMA_070_NEEDS["docker"]:
            flags.append("no-additional-gids-for-device-nodes")
        info.update({"driver_root": root, "feature_flags": flags})
        actions: list[Action] = []
        warnings = [f"{p.title}: {p.cause} {p.remedy}" for p in state.problems]
        stale = {p.code for p in state.problems} & {"cdi-spec-stale", "cdi-schema-too-new"}
        healthy = state.has(ALL_DEVICES) and not stale
        if not healthy or options.cdi_regenerate:
            existing = [s.path for s in state.nvidia_specs()]
            path = options.cdi_spec or (existing[0] if existing else cdi_probe.STATIC_SPEC)
            gen = GenerateCdiSpec(
                path=path,
                ctk=ctk or "nvidia-ctk",
                driver_root=root,
                pass_driver_root=bool(options.cdi_driver_root),
                feature_flags=flags,
                reason=f"write the CDI spec {path} (nvidia-ctk cdi generate"
                + (f", driver found under {root}" if root != "/" else "")
                + ")",
            )
            if ctk is not None and host.is_live:
                try:
                    gen.content, gen.listed = gen.generate(host)
                except WizardError as exc:
                    return self.make(BLOCKED, reason=exc.cause, remedy=exc.remedy, facts=info)
            if gen.needed(host):
                actions.append(gen)
        if options.runtime_mode:
            mode = SetRuntimeMode(
                path=RUNTIME_CONFIG,
                ctk=ctk or "nvidia-ctk",
                runtime_mode=options.runtime_mode,
                reason=f'set the NVIDIA runtime\'s mode = "{options.runtime_mode}" in '
                f"{RUNTIME_CONFIG}",
            )
            if ctk is not None and host.path(RUNTIME_CONFIG).exists():
                mode.content = mode.edit(host)
            if mode.needed(host):
                actions.append(mode)
        for a in actions:
            a.simulate(sim)
        sim.facts["cdi_names"] = sorted(set(state.names()) | ({ALL_DEVICES} if actions else set()))
        if not actions:
            return self.make(
                DONE,
                reason=f"{ALL_DEVICES} is defined ("
                + ", ".join(s.path for s in state.nvidia_specs())
                + ")",
                facts=info,
                warnings=warnings,
            )
        return self.make(
            PENDING,
            reason="; ".join(a.describe() for a in actions),
            actions=actions,
            diffs=[d for a in actions for d in a.preview(host)],
            facts=info,
            warnings=warnings,
        )
