"""Plan and facts as short lines for the screens: the host summary and a step's findings.

The steps' facts are JSON-able dicts; this module picks the few a person needs at a glance
and shows the rest as `key: value`.
"""

from __future__ import annotations

from typing import Any, Iterable


def _find(plan: Any, key: str, steps: Iterable[str]) -> Any:
    """A fact by key, from the first of `steps` that has it (top level or under `engine`)."""
    for name in steps:
        sp = next((s for s in plan.steps if s.step == name), None)
        if sp is None:
            continue
        for facts in (sp.facts, sp.facts.get("engine") or {}):
            value = facts.get(key) if isinstance(facts, dict) else None
            if value not in (None, "", [], {}):
                return value
    return None


def show_value(value: Any) -> str:
    if isinstance(value, dict):
        if "name" in value:
            return str(value["name"])
        shown = [f"{k} {show_value(v)}" for k, v in value.items() if v not in (None, "", [], {})]
        return ", ".join(shown) or "none"
    if isinstance(value, (list, tuple)):
        return ", ".join(show_value(v) for v in value) or "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def gpu_names(gpus: Any) -> str:
    """`1 × NVIDIA H200`, `2 × A100, 1 × T4`: models and counts."""
    if not isinstance(gpus, (list, tuple)):
        return show_value(gpus)
    counts: dict[str, int] = {}
    for g in gpus:
        name = str(g.get("name", "GPU")) if isinstance(g, dict) else str(g)
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{n} × {name}" for name, n in counts.items())


def host_lines(plan: Any) -> list[str]:
    """GPUs, driver/CUDA, Docker and its runtimes, from the plan's facts."""
    gpus = _find(plan, "gpus", ("driver", "gpu-test"))
    parts = [f"GPUs: {gpu_names(gpus)}" if gpus else "GPUs: none found"]
    driver = _find(plan, "driver_version", ("driver",))
    cuda = _find(plan, "cuda_version", ("driver",))
    if driver:
        parts.append(f"driver {driver}" + (f" · CUDA {cuda}" if cuda else ""))
    version = _find(plan, "version", ("daemon-config", "restart", "gpu-test"))
    if version:
        docker = f"Docker {version}"
        runtimes = _find(plan, "runtimes", ("daemon-config", "restart", "gpu-test"))
        if runtimes:
            docker += f" · runtimes {show_value(runtimes)}"
        default = _find(plan, "default_runtime", ("daemon-config",))
        if default:
            docker += f" · default {default}"
    else:
        error = _find(plan, "error", ("daemon-config",))
        docker = "Docker: " + (str(error) if error else "not found")
    out = [" · ".join(parts), docker]
    # the other engines (Podman, containerd, CRI-O), one line each, from their steps' facts
    others = _find(plan, "engines", ("podman", "containerd"))
    if isinstance(others, list):
        out += [str(x) for x in others if not str(x).startswith("Docker")]
    return out


_HIDDEN = {"summary", "ok", "problems"}


def fact_lines(facts: dict[str, Any], limit: int = 24) -> list[tuple[str, str]]:
    """A step's facts as (label, value) pairs; nested records one level deep, empties left out."""
    out: list[tuple[str, str]] = []
    for key, value in facts.items():
        if key in _HIDDEN or value in (None, "", [], {}):
            continue
        if isinstance(value, dict) and "name" not in value:
            for sub, subvalue in value.items():
                if subvalue not in (None, "", [], {}):
                    out.append((f"{key} {sub}".replace("_", " "), show_value(subvalue)))
        elif key == "gpus":
            out.append(("gpus", gpu_names(value)))
        else:
            out.append((key.replace("_", " "), show_value(value)))
    return out[:limit]
