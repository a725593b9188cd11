"""Plan and facts as short lines for the screens: the host summary and a step's findings.

The steps' facts are JSON-able dicts; this module picks the few a person needs at a glance
and shows the rest as `key: value`.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

# keys worth a line in the host summary, looked up in every step's facts, first hit wins
_SUMMARY_KEYS = {
    "gpus": ("gpus", "gpu_names", "gpu_models", "gpu"),
    "driver": ("driver_version", "driver"),
    "cuda": ("cuda_version", "cuda_driver_version", "cuda"),
    "docker": ("docker_version", "server_version", "engine_version"),
    "runtimes": ("runtimes", "docker_runtimes"),
    "daemon_json": ("daemon_json", "daemon_json_path", "path"),
}


def _first(plan: Any, keys: Iterable[str], steps: Optional[Iterable[str]] = None) -> Any:
    wanted = set(steps) if steps else None
    for sp in plan.steps:
        if wanted is not None and sp.step not in wanted:
            continue
        for key in keys:
            value = sp.facts.get(key)
            if value not in (None, "", [], {}):
                return value
    return None


def show_value(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(str(k) for k in value) or "none"
    if isinstance(value, (list, tuple)):
        return ", ".join(show_value(v) for v in value) or "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def host_lines(plan: Any) -> list[str]:
    """GPUs, driver/CUDA, Docker and its runtimes, from the plan's facts."""
    lines = []
    gpus = _first(plan, _SUMMARY_KEYS["gpus"], ("driver",))
    driver = _first(plan, _SUMMARY_KEYS["driver"], ("driver",))
    cuda = _first(plan, _SUMMARY_KEYS["cuda"], ("driver",))
    gpu_text = show_value(gpus) if gpus is not None else "no GPU found"
    extra = []
    if driver:
        extra.append(f"driver {driver}")
    if cuda:
        extra.append(f"CUDA {cuda}")
    lines.append(" · ".join([f"GPUs: {gpu_text}", *extra]))
    docker = _first(plan, _SUMMARY_KEYS["docker"])
    runtimes = _first(plan, _SUMMARY_KEYS["runtimes"])
    docker_text = f"Docker {docker}" if docker else "Docker: not found"
    if runtimes is not None:
        docker_text += f" · runtimes: {show_value(runtimes)}"
    lines.append(docker_text)
    return lines


def fact_lines(facts: dict[str, Any], limit: int = 40) -> list[tuple[str, str]]:
    """A step's facts as (label, value) pairs, in the order the step gave them."""
    out = []
    for key, value in list(facts.items())[:limit]:
        out.append((key.replace("_", " "), show_value(value)))
    return out
