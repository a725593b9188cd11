"""The driver step: is there an NVIDIA GPU with a working driver? It changes nothing.

Installing a driver (kernel modules, Secure Boot keys, reboots) is outside what gpuwizard
can preview and undo, so when the driver is missing or broken the step is `blocked` with the
commands for this distribution, and every later step waits for it.
"""

from __future__ import annotations

from gpuwizard.bundle import DRIVER_NOT_IN_BUNDLE
from gpuwizard.cuda_images import choose_test_images
from gpuwizard.host.gpu import GpuReport, probe_gpus
from gpuwizard.host.system import Host
from gpuwizard.options import Options
from gpuwizard.steps.base import BLOCKED, DONE, Simulation, Step, StepPlan


class DriverStep(Step):
    name = "driver"

    def plan(self, host: Host, options: Options, sim: Simulation) -> StepPlan:
        report = probe_gpus(host)
        # later steps (the GPU test) need the CUDA version and the chosen images
        sim.facts["gpu_report"] = report.to_json()
        sim.facts["cuda_version"] = report.cuda_version
        sim.facts["test_images"] = choose_test_images(report.cuda_version, options).to_json()
        sp = self.plan_from_report(report)
        if options.bundle and sp.state == BLOCKED:
            sp.warnings.append(DRIVER_NOT_IN_BUNDLE)
        return sp

    def plan_from_report(self, report: GpuReport) -> StepPlan:
        notes = [f"{p.cause}. {p.remedy}" for p in report.problems if not p.blocking]
        if report.ok:
            return self.make(DONE, reason=report.summary(), facts=report.to_json(), warnings=notes)
        blocking = report.blocking_problems()
        first = blocking[0] if blocking else None
        others = [f"{p.cause}. {p.remedy}" for p in blocking[1:]]
        return self.make(
            BLOCKED,
            reason=first.cause if first else report.summary(),
            remedy=first.remedy if first else "Check `nvidia-smi` on the host.",
            facts=report.to_json(),
            warnings=others + notes,
        )
