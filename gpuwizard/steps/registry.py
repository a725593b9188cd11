"""Every step's name and title, in plan order: the one place the CLI, the app and the palette
read a step's title from, so a step is called the same everywhere the user meets it.

Names are the ids on the command line (`--step daemon-config`) and in the journal; titles
are what a person reads. Kept free of imports so anything (options, cli, tui) can use it.
"""

from __future__ import annotations

# name -> title, in the order the plan runs them: the core chain, then the other engines
CORE_STEPS: dict[str, str] = {
    "driver": "NVIDIA driver",
    "repository": "Toolkit repository",
    "packages": "Toolkit packages",
    "cdi": "CDI spec",
    "daemon-config": "Docker daemon.json",
    "restart": "Restart Docker",
    "gpu-test": "GPU test container",
}
ENGINE_STEPS: dict[str, str] = {
    "podman": "Podman (CDI)",
    "containerd": "containerd runtime",
    "containerd-restart": "Restart containerd",
}
TITLES: dict[str, str] = {**CORE_STEPS, **ENGINE_STEPS}

STEP_NAMES: tuple[str, ...] = tuple(CORE_STEPS)
ENGINE_STEP_NAMES: tuple[str, ...] = tuple(ENGINE_STEPS)
ALL_STEP_NAMES: tuple[str, ...] = STEP_NAMES + ENGINE_STEP_NAMES


def title(name: str) -> str:
    """A step's title; an unknown name (a journal from another version) reads as itself."""
    return TITLES.get(name, name)
