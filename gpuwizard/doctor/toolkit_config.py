"""The toolkit's own config.toml: judged from host.toolkit's reading."""

from __future__ import annotations

from typing import Any

from gpuwizard.doctor.links import OK, SKIPPED, WARN, Link, Walk, from_failure
from gpuwizard.host import toolkit


def probe_toolkit_config(walk: Walk) -> Link:
    host = walk.host
    path = toolkit.CONFIG
    config = toolkit.read_config(host)
    if config is None:
        if walk.hook is None:
            return Link("toolkit-config", SKIPPED, f"no {path} (toolkit not installed)")
        return Link(
            "toolkit-config",
            WARN,
            f"no {path}: the toolkit runs on defaults",
            next_command=f"sudo nvidia-ctk config --config-file={path} --in-place",
        )
    facts: dict[str, Any] = {"ldconfig": config.ldconfig}
    binary = config.ldconfig_binary
    if binary and not host.path(binary).exists():
        return from_failure(
            "toolkit-config",
            "ldcache-error",
            f'ldconfig = "{config.ldconfig}" but {binary} does not exist here',
            walk,
            details={"path": binary},
            next_command=f"grep -n ldconfig {path}",
            facts=facts,
        )
    specs = toolkit.cdi_specs(host)
    facts.update(mode=config.mode, cdi_specs=specs)
    if config.mode == "cdi":
        return from_failure(
            "toolkit-config",
            "cdi-mode-gpus-flag",
            "runtime mode is cdi: `docker run --gpus` fails; use --runtime nvidia",
            walk,
            verdict=WARN,
            next_command=f"grep -n mode {path}",
            facts=facts,
        )
    parts = [f"mode {config.mode}"]
    if config.ldconfig:
        parts.append(f"ldconfig {config.ldconfig}")
    parts.append(f"CDI spec: {', '.join(specs)}" if specs else "no CDI spec")
    return Link("toolkit-config", OK, "; ".join(parts), facts=facts)
