"""The engine, GPU support in it, and a GPU container: judged from host.docker's facts."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Optional

from gpuwizard import failures
from gpuwizard.doctor.daemon_config import dockerd
from gpuwizard.doctor.links import BROKEN, OK, SKIPPED, WARN, Link, Walk, from_failure, short
from gpuwizard.errors import WizardError
from gpuwizard.host import docker as engine
from gpuwizard.host import toolkit


def _url(walk: Walk) -> str:
    return (
        walk.options.docker_host
        or os.environ.get("DOCKER_HOST")
        or f"unix://{engine.DEFAULT_SOCKET}"
    )


def close(client: Any) -> None:
    closer = getattr(client, "close", None)
    if callable(closer):
        closer()


def probe_engine(walk: Walk) -> Link:
    host, options = walk.host, walk.options
    url = _url(walk)
    if not host.is_live and not options.docker_host and host.engine_factory is None:
        return Link(
            "engine",
            SKIPPED,
            f"checking a root folder ({host.root}): no engine to ask "
            "(pass --docker-host to check one)",
        )
    installed = host.which("dockerd") or host.which("docker") or host.engine_factory
    try:
        client = engine.connect(host, options.docker_host, timeout=10)
        info = client.info()
    except Exception as exc:  # the SDK raises many kinds; all mean "unreachable"
        message = (exc.detail or exc.cause) if isinstance(exc, WizardError) else str(exc)
        if not installed:
            install = {
                "debian": "sudo apt-get install -y docker.io",
                "suse": "sudo zypper install -y docker",
            }.get(walk.family, "docker version")
            return walk.absent(
                "engine",
                "",
                "Docker Engine is not installed",
                remedy=engine.install_remedy(host) + " Docker Desktop cannot use this host's GPU.",
                next_command=install,
            )
        if "permission denied" in message.lower():
            return Link(
                "engine",
                BROKEN,
                f"no permission to use {url}",
                cause="Only root and the docker group may talk to the engine.",
                next_command="sudo gpuwizard doctor",
            )
        return walk.absent(
            "engine",
            "",
            f"Docker engine not reachable at {url}",
            cause=f"The engine did not answer: {short(message)}",
            next_command=walk.restart_command().replace("restart", "start"),
            facts={"docker_host": url},
        )
    walk.client = client
    walk.engine = info
    runtimes = sorted((info.get("Runtimes") or {}).keys())
    default = info.get("DefaultRuntime", "")
    facts: dict[str, Any] = {
        "docker_host": url,
        "version": info.get("ServerVersion", ""),
        "runtimes": runtimes,
        "default_runtime": default,
    }
    if any("name=rootless" in str(o) for o in info.get("SecurityOptions") or ()):
        rootless = _rootless_link(walk, facts)
        if rootless is not None:
            return rootless
    file_runtimes = sorted((walk.daemon_config or {}).get("runtimes", {}) or {})
    unloaded = [r for r in file_runtimes if r not in runtimes]
    if unloaded:
        return from_failure(
            "engine",
            "runtime-nvidia-unknown" if "nvidia" in unloaded else "docker-start-failed",
            f"{walk.daemon_json} defines {', '.join(unloaded)} but the running daemon does not "
            "have it: it was not reloaded, or it reads another file",
            walk,
            details={"runtime": unloaded[0]},
            next_command=walk.restart_command(reload=True),
            facts=facts,
        )
    desktop = engine.desktop_context(walk.host, options.docker_host)
    if desktop:
        return from_failure(
            "engine",
            "docker-desktop",
            f"the docker command uses Docker Desktop ({desktop}), not this engine",
            walk,
            verdict=BROKEN if walk.gpu else WARN,
            next_command="docker context use default",
            facts={**facts, "context_file": desktop},
        )
    file_default = (walk.daemon_config or {}).get("default-runtime")
    if file_default and file_default != default:
        return Link(
            "engine",
            WARN,
            f"{walk.daemon_json} sets default-runtime {file_default} but "
            f"the daemon runs with {default}",
            next_command=walk.restart_command(True),
            facts=facts,
        )
    return Link(
        "engine",
        OK,
        f"Docker {facts['version']} at {url}; runtimes: {', '.join(runtimes)}; default {default}",
        facts=facts,
    )


def _rootless_link(walk: Walk, facts: dict[str, Any]) -> Optional[Link]:
    """A rootless engine: its own daemon.json, and no device cgroups for the toolkit."""
    facts["rootless"] = True
    config = toolkit.read_config(walk.host)
    if walk.hook and not (config and config.no_cgroups):
        return from_failure(
            "engine",
            "rootless-cgroups",
            "the engine is rootless but the toolkit still manages device cgroups: GPU "
            "containers fail with `devices.allow: permission denied`",
            walk,
            next_command="sudo nvidia-ctk config --set nvidia-container-cli.no-cgroups --in-place",
            facts=facts,
        )
    if not walk.options.daemon_json and walk.daemon_json == engine.DEFAULT_DAEMON_JSON:
        return Link(
            "engine",
            WARN,
            f"the engine is rootless: it reads "
            f"~/.config/docker/daemon.json, not the {engine.DEFAULT_DAEMON_JSON} checked above",
            next_command="gpuwizard doctor --daemon-json ~/.config/docker/daemon.json",
            facts=facts,
        )
    return None


def dockerd_pid(walk: Walk) -> Optional[int]:
    """The pid of the dockerd that serves our socket: the pidfile option, else /proc."""
    proc = dockerd(walk)
    return proc.pid if proc is not None else None


def daemon_needs_restart(daemon_started: float, hook_mtime: float, slack: float = 1.0) -> bool:
    """dockerd looks for the hook only at start: a hook newer than the daemon is unseen."""
    return hook_mtime > daemon_started + slack


def gpu_runtime_link(
    walk: Walk,
    hook: Optional[str],
    hook_mtime: Optional[float],
    started: Optional[float],
    daemon_path: Optional[list[str]],
) -> Link:
    """The verdict on GPU support in the engine, from recorded facts (testable without one)."""
    info = walk.engine or {}
    runtimes = sorted((info.get("Runtimes") or {}).keys())
    cdi = [
        d.get("ID", "")
        for d in (info.get("DiscoveredDevices") or [])
        if isinstance(d, dict) and str(d.get("ID", "")).startswith("nvidia.com/")
    ]
    facts: dict[str, Any] = {
        "hook": hook,
        "hook_mtime": hook_mtime,
        "daemon_started": started,
        "runtimes": runtimes,
        "cdi_devices": cdi,
    }
    if hook is None:
        if cdi:
            return Link(
                "gpu-runtime", OK, f"CDI devices: {', '.join(cdi)} (no legacy hook)", facts=facts
            )
        return walk.absent(
            "gpu-runtime",
            "",
            f"{toolkit.HOOK} is not installed: `--gpus` has no NVIDIA driver",
            code="gpu-device-driver-missing",
            cause=failures.get("gpu-device-driver-missing").cause,
            next_command="gpuwizard plan",
            facts=facts,
        )
    if started is not None and hook_mtime is not None and daemon_needs_restart(started, hook_mtime):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))
        hook_when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(hook_mtime))
        return from_failure(
            "gpu-runtime",
            "gpu-device-driver-missing",
            f"dockerd started {when}, before {hook} was installed ({hook_when}): it has not "
            "registered the NVIDIA driver; --gpus fails until it restarts",
            walk,
            next_command=walk.restart_command(),
            facts=facts,
        )
    hook_dir = hook.rsplit("/", 1)[0]
    if daemon_path is not None and hook_dir not in daemon_path:
        return from_failure(
            "gpu-runtime",
            "gpu-device-driver-missing",
            f"{hook} is not on dockerd's PATH ({':'.join(daemon_path)})",
            walk,
            next_command="systemctl show docker -p Environment",
            facts=facts,
        )
    parts = [
        f"--gpus: {hook} present when dockerd started"
        if started is not None
        else f"--gpus: {hook} installed (daemon start time unknown)"
    ]
    parts.append(
        "--runtime nvidia: registered"
        if "nvidia" in runtimes
        else "--runtime nvidia: not registered (only --gpus works)"
    )
    if cdi:
        parts.append(f"CDI: {', '.join(cdi)}")
    return Link("gpu-runtime", OK if started is not None else WARN, "; ".join(parts), facts=facts)


def probe_gpu_runtime(walk: Walk) -> Link:
    if walk.engine is None:
        return Link("gpu-runtime", SKIPPED, "engine not reachable: nothing to ask")
    host = walk.host
    pid = dockerd_pid(walk) if host.is_live or walk.options.docker_pidfile else None
    started = engine.process_start_time(pid) if pid else None
    daemon_path = engine.process_path(pid) if pid else None
    hook: Optional[str] = None
    hook_mtime: Optional[float] = None
    if host.is_live and daemon_path is not None:
        # dockerd looks for the hook on its own PATH, which may not be ours
        for d in daemon_path:
            candidate = Path(d or ".") / toolkit.HOOK
            if d and candidate.is_file() and os.access(candidate, os.X_OK):
                hook, hook_mtime = str(candidate), candidate.stat().st_mtime
                break
    else:
        hook = walk.hook or toolkit.hook(host)
        hook_mtime = host.path(hook).stat().st_mtime if hook else None
    return gpu_runtime_link(walk, hook, hook_mtime, started, daemon_path)


def no_smoke_test(walk: Walk) -> Link:
    return Link("smoke-test", SKIPPED, "not run (add --run-test to start a GPU container)")


def probe_smoke_test(walk: Walk) -> Link:
    if walk.client is None:
        return Link("smoke-test", SKIPPED, "engine not reachable: no container to start")
    if walk.gpu is False:
        return Link("smoke-test", SKIPPED, "no NVIDIA GPU: a GPU container cannot start here")
    import docker  # lazy

    image = walk.options.test_image or "ubuntu:24.04"
    request = docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])
    try:
        output = walk.client.containers.run(
            image, ["nvidia-smi", "-L"], remove=True, device_requests=[request], stderr=True
        )
    except Exception as exc:  # every SDK error carries the daemon's message
        text = str(getattr(exc, "explanation", "") or "") + " " + str(exc)
        stderr = getattr(exc, "stderr", None)
        if isinstance(stderr, bytes):
            text += " " + stderr.decode(errors="replace")
        found = failures.classify(text, walk.family)
        command = f"docker run --rm --gpus all {image} nvidia-smi -L"
        if found:
            return Link(
                "smoke-test",
                BROKEN,
                f"{command}: {found.title}",
                cause=found.cause,
                remedy=found.fix,
                next_command=command,
                code=found.code,
                facts={"error": short(text, 400)},
            )
        return Link(
            "smoke-test",
            BROKEN,
            f"{command} failed: {short(text)}",
            next_command=command,
            facts={"error": short(text, 400)},
        )
    lines = output.decode(errors="replace").strip().splitlines() if output else []
    return Link(
        "smoke-test", OK, f"{image}: " + ("; ".join(lines) or "ran"), facts={"output": lines}
    )
