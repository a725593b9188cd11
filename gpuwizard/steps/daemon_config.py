"""The daemon-config step: add the `nvidia` runtime to the daemon.json dockerd really reads.

Merged, never clobbered (gpuwizard.daemon_json), previewed as the exact bytes to be written,
checked by our own rules first and then by `dockerd --validate` where Docker has it (>= 23).
Needs no running engine: with Docker stopped or a --root image, the file at its default path
is prepared.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any, Optional

from gpuwizard import daemon_json as dj
from gpuwizard.actions.base import ApplyContext
from gpuwizard.actions.files import WriteFile, read_state, target_of
from gpuwizard.errors import WizardError
from gpuwizard.host import docker as engine
from gpuwizard.host.system import Host
from gpuwizard.options import Options
from gpuwizard.steps import probes
from gpuwizard.steps.base import BLOCKED, DONE, FAILED, PENDING, Simulation, Step, StepPlan

MARK_PATH = "daemon-json-path"  # sim.facts: the daemon.json this run configures


def engine_facts(host: Host, options: Options, sim: Simulation) -> engine.EngineFacts:
    """Probe the engine once per plan (three steps ask)."""
    return probes.answer(
        sim,
        probes.ENGINE_FACTS,
        engine.EngineFacts,
        lambda: engine.probe_engine(host, options.docker_host, options.daemon_json),
    )


def dockerd_flags(host: Host, facts: engine.EngineFacts) -> dict[str, str]:
    """daemon.json keys that dockerd's command line will set, each with the flag and where it
    comes from. Under systemd that is what docker.service WILL start (ExecStart with drop-ins,
    $DOCKER_OPTS from its EnvironmentFile), not the running dockerd's argv: /etc/default/docker
    may have changed since it started. Elsewhere, the running argv."""
    unit = engine.unit_args(host) if host.facts.init_system == "systemd" else []
    if unit:
        keys = dj.flag_keys(a for a, _ in unit[1:])
        where = {a.split("=", 1)[0]: src for a, src in unit[1:]}
        return {k: f"{flag}, from {where.get(flag, 'docker.service')}" for k, flag in keys.items()}
    argv = list(facts.dockerd_argv) or [a for a, _ in engine.unit_args(host)]
    return dj.flag_keys(argv[1:])


def engine_unit_argv(host: Host) -> list[str]:
    """ExecStart of docker.service as systemd will run it ($DOCKER_OPTS expanded)."""
    return engine.unit_argv(host)


class DaemonConfigStep(Step):
    name = "daemon-config"
    asks = (probes.ENGINE_FACTS,)

    def plan(self, host: Host, options: Options, sim: Simulation) -> StepPlan:
        facts = engine_facts(host, options, sim)
        info: dict[str, Any] = {"engine": facts.to_json()}
        if facts.desktop:
            return self.make(
                BLOCKED, reason=engine.DESKTOP_CAUSE, remedy=engine.DESKTOP_REMEDY, facts=info
            )
        path = facts.daemon_json
        sim.facts[MARK_PATH] = path
        info.update({"path": path, "found_by": facts.daemon_json_source})
        shown = host.display(path)
        if path in sim.files:
            before = sim.files[path]
        else:
            try:  # refuses a directory, a dangling link
                real, _ = target_of(host, path)  # a link is followed inside the root
                before = read_state(real, str(real)).data
            except WizardError as exc:
                return self.make(FAILED, reason=exc.cause, remedy=exc.remedy, facts=info)
        want = dj.Wanted(
            set_default=options.set_default_runtime,
            enable_cdi=options.enable_cdi,
            replace_runtime=options.replace_runtime,
        )
        flags = dockerd_flags(host, facts)
        try:
            merged = dj.merge(before, want, shown, flags)
        except dj.RuntimeConflict as exc:
            info["conflict"] = {"theirs": exc.theirs, "ours": exc.ours}
            return self.make(BLOCKED, reason=exc.cause, remedy=exc.remedy, facts=info)
        except dj.DaemonJsonError as exc:
            return self.make(
                FAILED, reason=exc.cause, remedy=exc.remedy, facts=info | {"detail": exc.detail}
            )
        info["notes"] = list(merged.notes)
        warnings = list(merged.warnings)
        if facts.snap:
            warnings.append(
                "This is snap's Docker: it reads " + engine.SNAP_DAEMON_JSON + " and "
                "bundles its own NVIDIA support; do not also install the toolkit's "
                "packages on the host (snap Docker 29.2+ breaks with both)."
            )
        if facts.rootless:
            warnings.append(
                "Rootless Docker cannot manage device cgroups: it also needs "
                "`sudo nvidia-ctk config --set nvidia-container-cli.no-cgroups "
                "--in-place`, a host-wide setting that affects rootful containers."
            )
        if not facts.installed and host.is_live:
            warnings.append(
                "Docker is not installed: daemon.json is prepared for it. "
                + engine.install_remedy(host)
            )
        if not merged.changed:
            return self.make(
                DONE,
                reason=f"{shown} already has the nvidia runtime",
                facts=info,
                warnings=warnings,
            )
        validation = validate_with_dockerd(host, facts, merged.after, shown)
        info["validate"] = validation
        if validation.get("ok") is False:
            return self.make(
                FAILED,
                reason="dockerd --validate refuses the merged daemon.json: "
                + validation.get("output", ""),
                remedy="Fix the key it names in " + shown + ", then run again.",
                facts=info,
            )
        if options.enable_cdi and facts.reachable and facts.version_tuple() < (25,):
            warnings.append(
                f"Docker {facts.version} has no CDI support (25.0 and later do): "
                "features.cdi will be ignored."
            )
        action = WriteFile(
            path=path,
            content=merged.after,
            merge_back="daemon-json",
            reason=f"add the nvidia runtime to {shown}",
        )
        return self.make(
            PENDING,
            reason="; ".join(merged.notes),
            actions=[action],
            diffs=action.preview(host),
            facts=info,
            warnings=warnings,
        )

    def verify(self, ctx: ApplyContext, options: Options, plan: StepPlan) -> None:
        path = str(plan.facts.get("path", engine.DEFAULT_DAEMON_JSON))
        doc = dj.parse(ctx.host.path(path).read_bytes(), ctx.host.display(path))
        if doc.get("runtimes", "nvidia") is None:
            raise WizardError(
                f"{path} has no runtimes.nvidia after writing it",
                "Another program rewrote the file; look for one and stop it.",
            )


def validate_with_dockerd(
    host: Host, facts: engine.EngineFacts, data: bytes, shown: str = engine.DEFAULT_DAEMON_JSON
) -> dict[str, Any]:
    """`dockerd --validate` on the merged bytes, where the installed Docker has it (>= 23;
    20.10 says `unknown flag`, so decide by version, not by exit code)."""
    dockerd = _running_dockerd(host, facts) or host.which("dockerd")
    if not dockerd or not facts.version:
        return {"ok": None, "output": "validator skipped: Docker's version is unknown"}
    if not facts.has_validate:
        return {
            "ok": None,
            "output": f"validator unavailable: Docker {facts.version} has no "
            "`dockerd --validate` (23.0 and later do); gpuwizard's own checks ran",
        }
    unit = engine_unit_argv(host) if host.facts.init_system == "systemd" else []
    flags = _without_config_file(list((unit or list(facts.dockerd_argv))[1:]))
    fd, tmp = tempfile.mkstemp(prefix="gpuwizard-daemon-", suffix=".json")
    try:
        os.write(fd, data)
        os.close(fd)
        res = host.run(
            [dockerd, *flags, "--validate", "--config-file", tmp],
            inside=False,
            check=False,
            timeout=30,
        )
    finally:
        os.unlink(tmp)
    out = (res.stderr + res.stdout).strip().replace(tmp, shown)
    return {"ok": res.returncode == 0, "output": out.splitlines()[-1] if out else ""}


def _running_dockerd(host: Host, facts: engine.EngineFacts) -> Optional[str]:
    """The running daemon's own program (its version is the one --validate must match: a
    second dockerd on PATH may be older)."""
    if facts.dockerd_pid is None or not host.is_live:
        return None
    try:
        exe = os.readlink(f"/proc/{facts.dockerd_pid}/exe")
    except OSError:
        return None
    return exe if os.path.isfile(exe) else None


def _without_config_file(argv: list[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--config-file":
            skip = True
            continue
        if arg.startswith("--config-file="):
            continue
        out.append(arg)
    return out


def planned_daemon_json(
    host: Host, sim: Simulation, facts: engine.EngineFacts
) -> Optional[dj.Document]:
    """daemon.json as it will be once the earlier steps ran (None: absent or unreadable)."""
    path = str(sim.facts.get(MARK_PATH, facts.daemon_json))
    try:
        data = sim.read(host, path)
    except OSError:
        return None
    if data is None:
        return None
    try:
        return dj.parse(data, path)
    except dj.DaemonJsonError:
        return None
