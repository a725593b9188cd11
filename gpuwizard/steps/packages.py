"""The Container Toolkit packages: the four of them pinned to one version (they must match
exactly since 1.18), the legacy nvidia-docker2 / nvidia-container-runtime removed (never
purged: old nvidia-docker2 owns /etc/docker/daemon.json), the package set journaled so that
rollback puts it back.
"""

from __future__ import annotations

from typing import Any, Optional

from gpuwizard.actions.base import Action, ApplyContext
from gpuwizard.actions.packages import InstallPackages, RemovePackages, newest_from
from gpuwizard.errors import WizardError
from gpuwizard.host.packages import (
    LEGACY_PACKAGES,
    SECURITY_FLOOR,
    TOOLKIT_PACKAGES,
    Change,
    below_floor,
    package_manager,
    version_key,
)
from gpuwizard.host.system import Host
from gpuwizard.options import Options
from gpuwizard.steps import probes
from gpuwizard.steps.base import BLOCKED, DONE, PENDING, Simulation, Step, StepPlan
from gpuwizard.steps.repository import PENDING_MARK, refusal_plan

DAEMON_RELOAD_WARNING = (
    "The packages' scripts may run `systemctl daemon-reload`; under the systemd cgroup driver "
    "that can cut running GPU containers off from their GPUs (`Failed to initialize NVML: "
    "Unknown Error`) until they restart. Stop GPU workloads first, or install at a quiet time."
)


def daemon_reload_applies(host: Host, options: Options, sim: Simulation) -> bool:
    """The daemon-reload warning is true only on a running systemd host whose Docker uses (or
    may use: it is not running) the systemd cgroup driver."""
    if not host.is_live or host.facts.init_system != "systemd":
        return False
    from gpuwizard.steps.daemon_config import engine_facts

    try:
        driver = engine_facts(host, options, sim).cgroup_driver
    except (OSError, WizardError):
        driver = ""
    return driver in ("systemd", "")


class PackagesStep(Step):
    """Installs the pinned toolkit packages and retires the legacy ones."""

    name = "packages"
    asks = (probes.ENGINE_FACTS,)

    def plan(self, host: Host, options: Options, sim: Simulation) -> StepPlan:
        pm = package_manager(host)
        refused = refusal_plan(self, host, pm, options.repo_url)
        if refused is not None:
            return refused
        assert pm is not None
        installed = pm.installed([*TOOLKIT_PACKAGES, *LEGACY_PACKAGES])
        repo_pending = bool(sim.marks.get(PENDING_MARK))
        facts: dict[str, Any] = {
            "manager": pm.name,
            "installed": {n: installed.get(n) for n in TOOLKIT_PACKAGES},
            "legacy": {n: v for n, v in installed.items() if n in LEGACY_PACKAGES},
        }
        warnings: list[str] = []
        version: Optional[str] = None
        if options.toolkit_version:
            version = pm.full_version(options.toolkit_version)
            if not repo_pending:
                offered = pm.available("nvidia-container-toolkit")
                if version not in offered:
                    return self.make(
                        BLOCKED,
                        facts=facts,
                        reason=f"nvidia-container-toolkit {version} is not in the configured "
                        "repositories"
                        + (f" (they offer {', '.join(offered[:6])})" if offered else ""),
                        remedy="Pick one of those with --toolkit-version, or check --repo-url.",
                    )
        elif not repo_pending:
            version = newest_from(pm, "nvidia-container-toolkit", options.repo_url)
            if version is None:
                return self.make(
                    BLOCKED,
                    facts=facts,
                    reason="the NVIDIA repository is not configured (or its index is missing): "
                    "no nvidia-container-toolkit version to install",
                    remedy="Run the repository step first: gpuwizard apply --step repository "
                    "--step packages.",
                )
        facts["version"] = version or "newest (resolved after the index refresh)"

        legacy = [] if options.keep_legacy else [n for n in LEGACY_PACKAGES if n in installed]
        toolkit_ok = version is not None and all(
            installed.get(n) == version for n in TOOLKIT_PACKAGES
        )
        if toolkit_ok and not legacy:
            return self.make(
                DONE,
                reason=f"the four packages are at {version}",
                facts=facts,
                warnings=self._version_warnings(version),
            )

        actions: list[Action] = []
        if legacy:
            actions.append(
                RemovePackages(
                    legacy, self._simulate_remove(pm, legacy, warnings), lock_wait=options.lock_wait
                )
            )
        if not toolkit_ok:
            changes: list[Change] = []
            if version is not None and not repo_pending and not legacy:
                try:
                    changes = pm.simulate_install({n: version for n in TOOLKIT_PACKAGES})
                except WizardError as exc:
                    return self.make(BLOCKED, reason=exc.cause, remedy=exc.remedy, facts=facts)
            actions.append(
                InstallPackages(
                    list(TOOLKIT_PACKAGES),
                    version,
                    options.repo_url,
                    changes,
                    lock_wait=options.lock_wait,
                )
            )
            warnings += self._version_warnings(version)
            newer = [
                f"{n} {v}"
                for n, v in installed.items()
                if n in TOOLKIT_PACKAGES and version and version_key(v) > version_key(version)
            ]
            if newer:
                warnings.append("this is a downgrade from " + ", ".join(newer))
            if daemon_reload_applies(host, options, sim):
                warnings.append(DAEMON_RELOAD_WARNING)
            if pm.name == "apt":
                facts["lock"] = f"waits up to {options.lock_wait:.0f} s for the dpkg lock"
        diffs = [d for a in actions for d in a.preview(host)]
        reason = (
            "install " + (version or "the newest version")
            if not toolkit_ok
            else "remove the legacy packages"
        )
        return self.make(
            PENDING, reason=reason, actions=actions, diffs=diffs, facts=facts, warnings=warnings
        )

    @staticmethod
    def _simulate_remove(pm: Any, names: list[str], warnings: list[str]) -> list[Change]:
        try:
            changes: list[Change] = pm.simulate_remove(names)
        except WizardError as exc:
            warnings.append(f"could not simulate removing {', '.join(names)}: {exc.cause}")
            return []
        others = [c.describe() for c in changes if c.name not in names]
        if others:
            warnings.append("removing the legacy packages also changes: " + ", ".join(others))
        return changes

    @staticmethod
    def _version_warnings(version: Optional[str]) -> list[str]:
        if version and below_floor(version):
            return [
                f"{version} is older than {SECURITY_FLOOR}, which fixes known CVEs "
                "(CVE-2025-23266, CVE-2025-23267): install the newest version instead "
                "(leave out --toolkit-version)"
            ]
        return []

    def verify(self, ctx: ApplyContext, options: Options, plan: StepPlan) -> None:
        pm = package_manager(ctx.host)
        if pm is None:
            return
        got = pm.installed(TOOLKIT_PACKAGES)
        versions = {got.get(n) for n in TOOLKIT_PACKAGES}
        if None in versions or len(versions) != 1:
            raise WizardError(
                "The four toolkit packages are not installed at one version: "
                + ", ".join(f"{n} {got.get(n, 'missing')}" for n in TOOLKIT_PACKAGES),
                "Since 1.18 they must match exactly; run gpuwizard again to pin them.",
            )
        if not ctx.host.path("/usr/bin/nvidia-ctk").exists():
            raise WizardError(
                "nvidia-ctk is missing after the install",
                "Reinstall nvidia-container-toolkit-base.",
            )
