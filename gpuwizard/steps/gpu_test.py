"""The gpu-test step: prove, live, that containers reach the GPU every way it was configured.

`--gpus` (DeviceRequests), `--runtime nvidia`, a plain `docker run` when nvidia is the default
runtime, CDI names where the engine has CDI, then a CUDA image chosen from the driver's CUDA
version. Reads the driver step's findings only through `sim.facts["gpu_report"]` ({"gpus":
[{"index", "name", "uuid"}], "driver_version", "cuda_version", "nvidia_smi"}) and
`sim.facts["driver-blocked"]` (a reason).
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any, Optional

from gpuwizard.actions.base import Action, ApplyContext
from gpuwizard.actions.containers import DRIVER_ROOT_BINS, RunContainer, parse_gpus
from gpuwizard.actions.images import LoadImage
from gpuwizard.errors import WizardError
from gpuwizard.host import docker as engine
from gpuwizard.host.system import Host
from gpuwizard.options import Options
from gpuwizard.steps import probes
from gpuwizard.steps.base import BLOCKED, PENDING, SKIPPED, Simulation, Step, StepPlan
from gpuwizard.steps.daemon_config import engine_facts, planned_daemon_json

DEFAULT_SMOKE_IMAGE = "ubuntu:24.04"
CDI_ALL = "nvidia.com/gpu=all"
FRAMEWORKS = {
    # image, command: each prints the GPU it sees, or fails
    "pytorch": (
        "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime",
        [
            "python",
            "-c",
            "import torch; assert torch.cuda.is_available(); print(torch.cuda.get_device_name(0))",
        ],
    ),
    "tensorflow": (
        "tensorflow/tensorflow:2.18.0-gpu",
        [
            "python",
            "-c",
            "import tensorflow as tf; "
            "g = tf.config.list_physical_devices('GPU'); assert g; print(g)",
        ],
    ),
}


def visible_devices(gpus: str) -> str:
    """NVIDIA_VISIBLE_DEVICES for the same selection as `--gpus`."""
    req = parse_gpus(gpus)
    if req.get("device_ids"):
        return ",".join(req["device_ids"])
    count = int(req.get("count", -1))
    return "all" if count < 0 else ",".join(str(i) for i in range(count))


def gpu_names(report: Optional[dict[str, Any]]) -> list[str]:
    if not report:
        return []
    return [str(g.get("name")) for g in report.get("gpus") or [] if g.get("name")]


def nvidia_smi_paths(report: Optional[dict[str, Any]]) -> list[str]:
    """Absolute paths to try when the container has nvidia-smi on no PATH."""
    out = []
    if report and report.get("nvidia_smi"):
        out.append(str(report["nvidia_smi"]))
    out += [p for p in DRIVER_ROOT_BINS if p not in out]
    return out


def choose_images(
    options: Options, report: Optional[dict[str, Any]]
) -> tuple[str, Optional[str], str, list[str]]:
    """(smoke image, CUDA image or None, why, fall-back tags) from the driver step's table."""
    cuda_version = (report or {}).get("cuda_version")
    try:
        # the driver step's table of full tags (imported by name: it may land later)
        cuda_images = importlib.import_module("gpuwizard.cuda_images")
        choice = cuda_images.choose_test_images(cuda_version, options)
        return choice.smoke, choice.cuda, choice.reason, list(choice.candidates[1:4])
    except ImportError:
        smoke = options.test_image or DEFAULT_SMOKE_IMAGE
        return (
            smoke,
            options.cuda_image,
            (
                "chosen by you (--cuda-image)"
                if options.cuda_image
                else "no CUDA image table in this build"
            ),
            [],
        )


def bundle_loads(host: Host, options: Options) -> list[LoadImage]:
    """apply --bundle: the bundle's images, loaded (docker load) before the test containers
    run, so none is pulled; an image the engine already has (same id) is not loaded again."""
    out = []
    for img in options.bundle_images if options.bundle else []:
        action = LoadImage(
            image=img["name"],
            path=str(Path(str(options.bundle)) / img["file"]),
            expected_id=img.get("id", ""),
            docker_host=options.docker_host,
        )
        try:
            if not action.needed(host):
                continue
        except WizardError:
            pass  # the engine is not reachable now: the load says so when it runs
        out.append(action)
    return out


def framework_check(options: Options, gpus: str) -> Optional[RunContainer]:
    """The opt-in TensorFlow/PyTorch one-liner (large images: never by default)."""
    if not options.framework:
        return None
    name = options.framework.lower()
    if name not in FRAMEWORKS:
        raise WizardError(
            f"Unknown framework {options.framework!r}",
            "Use --framework pytorch or --framework tensorflow.",
        )
    image, command = FRAMEWORKS[name]
    return RunContainer(
        image=options.framework_image or image,
        command=list(command),
        gpus=gpus,
        docker_host=options.docker_host,
        timeout=1800,
        reason=f"{name} sees the GPU",
    )


class GpuTestStep(Step):
    name = "gpu-test"
    asks = (probes.ENGINE_FACTS,)

    def plan(self, host: Host, options: Options, sim: Simulation) -> StepPlan:
        facts = engine_facts(host, options, sim)
        report = sim.facts.get("gpu_report")
        if report is not None and hasattr(report, "to_json"):
            report = report.to_json()  # the driver step's GpuReport, or its JSON
        info: dict[str, Any] = {"engine": facts.to_json(), "gpu_report": report}
        blocked = sim.facts.get("driver-blocked") or (
            report.get("summary", "no working NVIDIA driver")
            if report and report.get("ok") is False
            else None
        )
        if blocked:
            return self.make(
                BLOCKED,
                reason=f"no working driver: {blocked}",
                remedy="Fix the driver first (see the driver step).",
                facts=info,
            )
        if not host.is_live:
            return self.make(SKIPPED, reason="a --root image has no running Docker", facts=info)
        if not facts.installed:
            return self.make(
                BLOCKED,
                reason="Docker is not installed (no dockerd)",
                remedy=engine.install_remedy(host),
                facts=info,
            )
        if facts.desktop:
            return self.make(
                BLOCKED, reason=engine.DESKTOP_CAUSE, remedy=engine.DESKTOP_REMEDY, facts=info
            )
        gpus = options.gpus or "all"
        smoke, cuda, why, fallbacks = choose_images(options, report)
        names = gpu_names(report)
        expect = ["|".join(re.escape(n) for n in names)] if names else [r"GPU|NVIDIA"]
        paths = nvidia_smi_paths(report)
        doc = planned_daemon_json(host, sim, facts)
        runtimes = set((doc.get("runtimes") or {}).keys()) if doc else set(facts.runtimes)
        default = (doc.get("default-runtime") if doc else None) or facts.default_runtime
        env = {"NVIDIA_VISIBLE_DEVICES": visible_devices(gpus)}
        common: dict[str, Any] = {
            "docker_host": options.docker_host,
            "expect": expect,
            "nvidia_smi_paths": paths,
            "must_pass": False,
        }
        cdi_names = set(sim.facts.get("cdi_names") or ()) | set(facts.cdi_devices)
        has_spec = CDI_ALL in cdi_names
        cdi_on = (doc.get("features", "cdi") if doc else None) is True or bool(facts.cdi_enabled)
        has_runtime = "nvidia" in runtimes or "nvidia" in facts.runtimes
        routes_skipped: dict[str, str] = {}
        # every route is tried even when one fails, so the user sees them all; verify() judges
        actions: list[RunContainer] = [
            RunContainer(
                image=smoke,
                command=["nvidia-smi"],
                gpus=gpus,
                route="gpus",
                reason=f"smoke test: --gpus {gpus}",
                **common,
            )
        ]
        if has_runtime:
            actions.append(
                RunContainer(
                    image=smoke,
                    command=["nvidia-smi"],
                    runtime="nvidia",
                    env={"NVIDIA_VISIBLE_DEVICES": CDI_ALL} if has_spec else env,
                    expect_runtime="nvidia",
                    route="runtime",
                    reason="smoke test: --runtime nvidia"
                    + (f" with NVIDIA_VISIBLE_DEVICES={CDI_ALL} (CDI)" if has_spec else ""),
                    **common,
                )
            )
        else:
            routes_skipped["runtime"] = "no nvidia runtime in daemon.json"
        if default == "nvidia":
            actions.append(
                RunContainer(
                    image=smoke,
                    command=["nvidia-smi"],
                    env={"NVIDIA_VISIBLE_DEVICES": CDI_ALL} if has_spec else env,
                    expect_runtime="nvidia",
                    route="default-runtime",
                    reason="a plain docker run gets the NVIDIA runtime (default-runtime)",
                    **common,
                )
            )
        if facts.version_tuple() < (25,):
            routes_skipped["cdi"] = f"Docker {facts.version or '?'} has no CDI (needs >= 25)"
        elif not cdi_on:
            routes_skipped["cdi"] = (
                f"CDI is off in Docker {facts.version} (daemon.json features.cdi; "
                "--enable-cdi sets it)"
            )
        elif not has_spec and not facts.cdi_devices:
            routes_skipped["cdi"] = f"no CDI spec defines {CDI_ALL} (the cdi step writes one)"
        else:
            actions.append(
                RunContainer(
                    image=smoke,
                    command=["nvidia-smi"],
                    cdi_devices=[CDI_ALL],
                    route="cdi",
                    reason=f"CDI: --device {CDI_ALL}",
                    **common,
                )
            )
        if cuda and not options.skip_cuda_test:
            actions.append(
                RunContainer(
                    image=cuda,
                    command=["nvidia-smi"],
                    gpus=gpus,
                    alternatives=fallbacks,
                    reason=f"CUDA image {cuda} ({why})",
                    **common,
                )
            )
        extra = framework_check(options, gpus)
        if extra is not None:
            actions.append(extra)
        info.update(
            {
                "smoke_image": smoke,
                "cuda_image": cuda,
                "cuda_reason": why,
                "gpus": gpus,
                "commands": [a.cli() for a in actions],
                "routes_skipped": routes_skipped,
            }
        )
        warnings = []
        if facts.cgroup_driver == "systemd" and not cdi_on:
            warnings.append(
                "Docker uses the systemd cgroup driver: a container started with "
                "--gpus can lose its GPU after `systemctl daemon-reload` (`Failed to "
                "initialize NVML: Unknown Error`); CDI avoids it."
            )
        if not report:
            warnings.append("no GPU report from the driver step: the test accepts any GPU line")
        from gpuwizard.host import cuda as cuda_check

        cu = cuda_check.check(host, (report or {}).get("nvidia_smi"))
        info["cuda_init"] = cu.to_json()
        if cu.code not in (None, 0):
            warnings.append(
                f"{cu.summary()} on the host: nvidia-smi can pass while CUDA fails. {cu.fix}"
            )
        off = [i for i, m in cu.persistence.items() if m.lower() == "disabled"]
        if off:
            warnings.append(
                "persistence mode is off on GPU " + ", ".join(off) + ": containers can fail with "
                "`driver rpc error: timed out` on a cold driver (sudo nvidia-smi -pm 1, or "
                "nvidia-persistenced)"
            )
        loads = bundle_loads(host, options)
        if loads:
            info["bundle_images"] = [a.image for a in loads]
        steps: list[Action] = [*loads, *actions]
        return self.make(
            PENDING,
            reason=f"{len(actions)} test container(s)"
            + (f"; {len(loads)} image(s) loaded from the bundle first" if loads else ""),
            actions=steps,
            diffs=[d for a in steps for d in a.preview(host)],
            facts=info,
            warnings=warnings,
        )

    def verify(self, ctx: ApplyContext, options: Options, plan: StepPlan) -> None:
        """The step passes when at least one route reaches the GPU (and the CUDA image and
        framework checks, when asked for, pass). It names the line that works here, its
        Compose form, and why each other route does not."""
        ran = [a for a in plan.actions if isinstance(a, RunContainer) and a.verdict is not None]
        routes = [a for a in ran if a.route]
        others = [a for a in ran if not a.route]
        passed = [a for a in routes if a.verdict is not None and a.verdict.passed]
        cu = plan.facts.get("cuda_init") or {}
        if cu.get("ok") or cu.get("code") is not None:
            name = cu.get("name") or ""
            ctx.log(f"host: cuInit -> {cu.get('code')} {name}".rstrip())
        ok = [a for a in ran if a.verdict is not None and a.verdict.passed]
        ctx.log(f"GPU test: {len(ok)} of {len(ran)} passed")
        ctx.log(f"{len(passed)} of {len(routes)} way(s) to the GPU work on this host")
        why_not: dict[str, str] = {}
        for a in routes:
            if a.verdict is not None and not a.verdict.passed:
                why_not[a.route] = a.verdict.title + (
                    f" ({a.verdict.cause})" if a.verdict.cause else ""
                )
        for route, reason in (plan.facts.get("routes_skipped") or {}).items():
            why_not.setdefault(route, f"not tried: {reason}")
        if passed:
            best = min(passed, key=lambda a: ROUTE_PREFERENCE.index(a.route))
            line = best.cli_for_user()
            compose = compose_for_route(best)
            ctx.log(f"use: {line}")
            for text in compose.splitlines():
                ctx.log("  " + text)
            for a in passed:
                if a is not best:
                    ctx.log(f"also works: {a.cli_for_user()}")
            for route, reason in why_not.items():
                ctx.log(f"not {ROUTE_LABEL.get(route, route)}: {reason}")
            ctx.run.append(
                "gpu-route",
                {
                    "step": self.name,
                    "route": best.route,
                    "docker_run": line,
                    "compose": compose,
                    "working": [a.route for a in passed],
                    "why_not": why_not,
                },
            )
        failed_checks = [a for a in others if a.verdict is not None and not a.verdict.passed]
        if passed and not failed_checks:
            return
        failed = (
            failed_checks if passed else [a for a in ran if not a.verdict or not a.verdict.passed]
        )
        first = failed[0].verdict
        assert first is not None
        rest = "; ".join(
            f"{a.describe()}: {a.verdict.title}" for a in failed[1:] if a.verdict is not None
        )
        raise WizardError(
            f"{failed[0].describe()} failed: {first.title}"
            + (f" ({first.cause})" if first.cause else ""),
            first.remedy,
            f"also failed: {rest}" if rest else "",
        )


# which working route to recommend: the engine's own CDI, then the runtime's, then --gpus
ROUTE_PREFERENCE = ("cdi", "runtime", "gpus", "default-runtime")
ROUTE_LABEL = {
    "gpus": "--gpus",
    "runtime": "--runtime nvidia",
    "cdi": "--device nvidia.com/gpu=all",
    "default-runtime": "the default runtime",
}


def compose_for_route(a: RunContainer) -> str:
    """The Compose service for the route that worked."""
    lines = ["services:", "  gpu:", f"    image: {a.image}"]
    if a.route == "cdi":
        lines += ["    devices:", f"      - {a.cdi_devices[0] if a.cdi_devices else CDI_ALL}"]
    elif a.route in ("runtime", "default-runtime"):
        if a.route == "runtime":
            lines.append("    runtime: nvidia")
        lines += ["    environment:"] + [f"      - {k}={v}" for k, v in a.env.items()]
    else:
        lines += [
            "    deploy:",
            "      resources:",
            "        reservations:",
            "          devices:",
            "            - driver: nvidia",
            "              count: all",
            "              capabilities: [gpu]",
        ]
    return "\n".join(lines)
