"""daemon.json: parsed and checked by gpuwizard.daemon_json (the rules the plan applies), so
doctor and plan never disagree about one file; doctor adds what only a running host shows."""

from __future__ import annotations

from typing import Any, Optional

from gpuwizard import daemon_json as dj
from gpuwizard.doctor.links import BROKEN, OK, WARN, Link, Walk, from_failure
from gpuwizard.host import docker as engine
from gpuwizard.host import toolkit


def dockerd(walk: Walk) -> Optional[engine.DockerdProcess]:
    """The running dockerd that serves our socket, or the one named by --docker-pidfile.
    Live processes only: a root folder has none."""
    if walk.options.docker_pidfile:
        pid = engine.pidfile_pid(walk.options.docker_pidfile)
        if pid is None:
            return None
        return engine.DockerdProcess(pid=pid, argv=engine.process_argv(pid), exe="", log_file=None)
    if not walk.host.is_live:
        return None
    return engine.find_dockerd(walk.options.docker_host)


def dockerd_argv(walk: Walk) -> list[str]:
    """dockerd's command line: the running daemon's, else its unit's ExecStart."""
    proc = dockerd(walk)
    if proc is not None and proc.argv:
        return list(proc.argv)
    return engine.unit_argv(walk.host)


def _next_command(exc: dj.DaemonJsonError, path: str, empty: bool) -> str:
    if empty:
        return f"ls -l {path}"
    if isinstance(exc, dj.SyntaxFailure):
        return f"python3 -m json.tool {path}"
    if isinstance(exc, dj.UndefinedDefaultRuntime):
        return f"grep -n -e default-runtime -e runtimes {path}"
    if isinstance(exc, dj.FlagConflict):
        return "systemctl cat docker | grep ExecStart"
    return f"cat {path}"


def probe_daemon_config(walk: Walk) -> Link:
    host = walk.host
    proc = dockerd(walk)
    path, why = engine.daemon_json_path(host, proc, False, walk.options.daemon_json)
    walk.daemon_json = path
    raw = host.path(path)
    if not raw.exists():
        walk.daemon_config = {}
        return Link(
            "daemon-config",
            OK,
            f"{path} absent: fine for --gpus; --runtime nvidia would need runtimes.nvidia",
            facts={"path": path, "exists": False, "chosen_because": why},
        )
    data = raw.read_bytes()
    facts: dict[str, Any] = {"path": path, "exists": True, "chosen_because": why}
    flags = dj.flag_keys(dockerd_argv(walk)[1:])
    try:
        doc = dj.parse(data, path)
        errors = dj.check(doc, path, flags)
    except dj.DaemonJsonError as refused:
        errors, doc = [refused], None
    if doc is not None:
        walk.daemon_config = dict(doc.value)
        runtimes = doc.get("runtimes") or {}
        facts.update(runtimes=sorted(runtimes), default_runtime=doc.get("default-runtime"))
    if errors:
        first = errors[0]
        if first.line is not None:
            facts.update(line=first.line, column=first.column)
        if first.detail:
            facts["detail"] = first.detail
        details = {"file": path}
        if isinstance(first, dj.UndefinedDefaultRuntime):
            details["runtime"] = str(doc.get("default-runtime") if doc else "")
        if isinstance(first, dj.FlagConflict):
            details["keys"] = ", ".join(k for k in sorted(flags) if doc and k in doc.value)
        others = "; ".join(e.cause for e in errors[1:])
        return from_failure(
            "daemon-config",
            first.code,
            first.cause + (f". Also: {others}" if others else ""),
            walk,
            details=details,
            next_command=_next_command(first, path, not data.strip()),
            facts=facts | {"remedy": first.remedy},
        )
    assert doc is not None
    runtimes = doc.get("runtimes") or {}
    default = doc.get("default-runtime")
    nvidia = runtimes.get(dj.RUNTIME_NAME)
    if nvidia is not None:
        rpath = str(nvidia.get("path", "")) if isinstance(nvidia, dict) else ""
        exists = (
            (host.path(rpath).exists() if rpath.startswith("/") else host.which(rpath) is not None)
            if rpath
            else False
        )
        facts["nvidia_runtime_path"] = rpath
        if not exists:
            return from_failure(
                "daemon-config",
                "nvidia-runtime-binary-missing",
                f"runtimes.nvidia points at {rpath or '(no path)'}, which is not installed"
                + (
                    ": every container fails (it is the default runtime)"
                    if default == "nvidia"
                    else ""
                ),
                walk,
                verdict=BROKEN if default == "nvidia" or walk.gpu else WARN,
                details={"binary": rpath or "nvidia-container-runtime"},
                next_command=f"command -v {rpath or 'nvidia-container-runtime'}",
                facts=facts,
            )
    parts = [f"runtimes: {', '.join(sorted(runtimes)) or 'none'}"]
    if default:
        parts.append(f"default-runtime: {default}")
    features = doc.get("features")
    if isinstance(features, dict) and "cdi" in features:
        parts.append(f"features.cdi: {str(features['cdi']).lower()}")
        if features["cdi"] is True and not toolkit.cdi_specs(host):
            return from_failure(
                "daemon-config",
                "cdi-unresolvable",
                f"{path} turns CDI on but no NVIDIA CDI spec exists: --device "
                "nvidia.com/gpu=all will fail",
                walk,
                verdict=WARN,
                next_command="sudo nvidia-ctk cdi generate --output=/var/run/cdi/nvidia.yaml",
                facts=facts,
            )
    for warning in dj.warnings(doc):
        parts.append(warning)
    return Link("daemon-config", OK, f"{path}: " + "; ".join(parts), facts=facts)
