"""The restart step: restart Docker so it reads daemon.json and finds the NVIDIA hook.

Planned only when something needs it (daemon.json changes, the toolkit's hook is newer than
the running dockerd, or the engine does not list a runtime its file defines). A failed restart
brings daemon.json back with it (rollback_with) and starts Docker once on the old file.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from gpuwizard.actions.services import RestartDocker, detect_method
from gpuwizard.host import docker as engine
from gpuwizard.host.system import Host
from gpuwizard.host.systemd import describe_unit_state, unit_state
from gpuwizard.host.toolkit import HOOK
from gpuwizard.host.toolkit import HOOK_PACKAGES as TOOLKIT_PACKAGES  # the two with the hook
from gpuwizard.options import Options
from gpuwizard.steps import probes
from gpuwizard.steps.base import BLOCKED, DONE, PENDING, SKIPPED, Simulation, Step, StepPlan
from gpuwizard.steps.daemon_config import MARK_PATH, engine_facts, planned_daemon_json


def hook_newer_than_daemon(host: Host, facts: engine.EngineFacts) -> Optional[str]:
    """The toolkit's hook appeared after dockerd started: dockerd cannot have seen it."""
    if facts.dockerd_pid is None:
        return None
    path = _hook_on_dockerd_path(host, facts)
    if not path:
        return None
    started = engine.process_start_time(facts.dockerd_pid)
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        return None
    # a second's margin: file times use the kernel's coarse clock
    if started is not None and mtime > started + 1.0:
        return f"{path} is newer than the running dockerd (pid {facts.dockerd_pid})"
    return None


def _hook_on_dockerd_path(host: Host, facts: engine.EngineFacts) -> Optional[str]:
    """Find the hook on dockerd's own PATH (its environment), not ours."""
    dirs: list[str] = []
    if facts.dockerd_pid is not None:
        try:
            with open(f"/proc/{facts.dockerd_pid}/environ", "rb") as fh:
                env = fh.read().split(b"\0")
            for item in env:
                if item.startswith(b"PATH="):
                    dirs = item[5:].decode().split(":")
        except OSError:
            pass
    return host.which(HOOK, extra_dirs=dirs)


class RestartStep(Step):
    name = "restart"
    asks = (probes.ENGINE_FACTS,)

    def plan(self, host: Host, options: Options, sim: Simulation) -> StepPlan:
        facts = engine_facts(host, options, sim)
        info: dict[str, Any] = {"engine": facts.to_json()}
        if not host.is_live:
            return self.make(
                SKIPPED,
                reason="a --root image has no running Docker; it reads daemon.json when it boots",
                facts=info,
            )
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
        why = self._why(host, sim, facts)
        info["why"] = why
        doc = planned_daemon_json(host, sim, facts)
        runtimes = sorted((doc.get("runtimes") or {}).keys()) if doc else []
        default = doc.get("default-runtime") if doc else None
        if not why:
            return self.make(DONE, reason="Docker already runs with this configuration", facts=info)
        method = options.restart_method or detect_method(host, facts)
        probe_image = self._probe_image(options, facts, sim, host)
        action = RestartDocker(
            method=method,
            command=options.restart_command,
            docker_host=options.docker_host,
            wait=options.docker_wait,
            expect_runtimes=[r for r in runtimes if r == "nvidia"],
            expect_default_runtime=str(default) if default else None,
            gpu_probe_image=probe_image,
            log_file=options.docker_log or facts.dockerd_log,
            reason="restart Docker: " + "; ".join(why),
        )
        warnings = []
        if facts.containers_running and not facts.live_restore:
            warnings.append(
                f"{facts.containers_running} running container(s) will be stopped by the "
                "restart (live-restore is off in daemon.json)"
            )
        if method.startswith("systemd"):
            state = unit_state(host, method)
            info["unit"] = state
            if state.get("ActiveState") == "failed":
                warnings.append(
                    describe_unit_state(state)
                    + ": gpuwizard runs `systemctl reset-failed docker.service` before its restart"
                )
            warnings.append(
                "systemd allows 3 starts of docker.service in 60 s; gpuwizard "
                "restarts once and, on failure, restores daemon.json and starts once"
            )
        info["method"] = method
        return self.make(
            PENDING,
            reason="; ".join(why),
            actions=[action],
            diffs=action.preview(host),
            facts=info,
            warnings=warnings,
        )

    def _why(self, host: Host, sim: Simulation, facts: engine.EngineFacts) -> list[str]:
        why = []
        path = str(sim.facts.get(MARK_PATH, facts.daemon_json))
        if path in sim.files:
            try:
                now: Optional[bytes] = host.path(path).read_bytes()
            except OSError:
                now = None
            if sim.files[path] != now:
                why.append(f"{path} changes")
        if any(p in sim.packages for p in TOOLKIT_PACKAGES) or sim.marks.get("docker-restart"):
            why.append("the NVIDIA Container Toolkit is being installed")
        if not facts.reachable:
            why.append("Docker is not running")
        else:
            newer = hook_newer_than_daemon(host, facts)
            if newer:
                why.append(newer)
            doc = planned_daemon_json(host, sim, facts)
            defined = set((doc.get("runtimes") or {}).keys()) if doc else set()
            missing = sorted(defined - set(facts.runtimes))
            if missing and not any("changes" in w for w in why):
                why.append(
                    "Docker does not list the runtime(s) "
                    + ", ".join(missing)
                    + " its daemon.json defines"
                )
        return why

    def _probe_image(
        self, options: Options, facts: engine.EngineFacts, sim: Simulation, host: Host
    ) -> Optional[str]:
        """A local image for the `--gpus` probe, only once the hook will be there."""
        hook = _hook_on_dockerd_path(host, facts) or any(
            p in sim.packages for p in TOOLKIT_PACKAGES
        )
        if not hook:
            return None
        for image in (options.test_image, *facts.images):
            if image and image in facts.images:
                return image
        return None
