"""A step is called the same in the CLI, the app and the palette: one registry of titles."""

from __future__ import annotations

import importlib

from gpuwizard.options import ALL_STEP_NAMES
from gpuwizard.steps.registry import STEPS, TITLES


def test_every_step_class_takes_its_title_from_the_registry() -> None:
    assert tuple(s.name for s in STEPS) == ALL_STEP_NAMES == tuple(TITLES)
    for info in STEPS:
        module, _, cls = info.target.partition(":")
        step = getattr(importlib.import_module(module), cls)
        assert step.name == info.name
        assert step.title == TITLES[info.name], f"{info.name}: the CLI says {step.title!r}"


def test_the_cli_plan_prints_the_registry_titles(capsys) -> None:  # type: ignore[no-untyped-def]
    from gpuwizard import cli

    rc = cli.main(["--demo", "plan"])
    out = capsys.readouterr().out
    assert rc in (0, 2)
    for name in ("driver", "repository", "packages", "daemon-config", "restart", "gpu-test"):
        assert TITLES[name] in out, f"{TITLES[name]!r} not in the CLI plan:\n{out}"
