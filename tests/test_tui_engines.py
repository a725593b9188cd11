"""The app with a plan that has the other engines' steps: they open, and `n` reaches them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tui_plans
from test_tui_screens import make_app, pilot_test, settle, text_of

from gpuwizard.options import Options
from gpuwizard.steps.base import StepPlan


def _with_podman(host: Any, options: Options) -> Any:
    plan = tui_plans.planner(host, options)
    plan.steps.append(
        StepPlan(
            "podman",
            "Podman (CDI)",
            "pending",
            reason="test Podman 4.3.1 with nvidia.com/gpu=all (/etc/cdi/nvidia.yaml, CDI 0.5.0)",
            facts={"engines": ["Podman 4.3.1 · reads CDI specs up to 0.5.0"]},
        )
    )
    plan.selected = (*plan.selected, "podman")
    return plan


@pilot_test
async def test_the_podman_step_opens_and_is_reached_from_the_gpu_test(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    app._planner = _with_podman
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        assert "Podman 4.3.1" in text_of(app, "#host-gpu")  # the overview's engine line
        assert "Podman (CDI)" in text_of(app, "#plan-steps")
        app.open_step("gpu-test")
        await settle(app, pilot)
        await pilot.press("n")
        await settle(app, pilot)
        assert app.screen.step == "podman"  # type: ignore[attr-defined]
        assert "Podman (CDI)" in text_of(app, "#step-head")
        assert "7/7" in app.screen.screen_title()  # type: ignore[attr-defined]
