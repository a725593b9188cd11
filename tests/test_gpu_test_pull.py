"""Pulling the test image shows per-layer progress, and rollback removes what was pulled."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuwizard.actions.base import ApplyContext
from gpuwizard.actions.containers import RunContainer
from gpuwizard.events import Progress
from gpuwizard.host.system import Host
from gpuwizard.journal import Journal
from gpuwizard.wizard import rollback_records
from tests.dockerd import Dockerd
from tests.registry import Registry

pytestmark = pytest.mark.slow


def test_pull_reports_progress_per_layer_and_rollback_removes_the_pulled_image(
    dockerd: Dockerd, tmp_path: Path
) -> None:
    events: list = []
    journal = Journal(tmp_path / "state")
    run = journal.start_run(["t"])
    ctx = ApplyContext(Host(), run, "gpu-test", events.append)
    with Registry() as reg:
        action = RunContainer(
            image=reg.image,
            command=["echo", "pulled and ran"],
            docker_host=dockerd.docker_host,
            expect=["pulled and ran"],
        )
        action.step = "gpu-test"
        result = action.run(ctx)
    assert result["pulled"] and result["passed"]
    progress = [e for e in events if isinstance(e, Progress)]
    labels = " ".join(e.label for e in progress)
    for layer in reg.layer_ids:
        assert f"{layer}: Downloading" in labels or f"{layer}: Pull complete" in labels
    fractions = [e.fraction for e in progress if e.fraction is not None]
    assert 0 < min(fractions) < 1.0 and max(fractions) == 1.0
    assert fractions == sorted(fractions)  # the bar only grows
    assert dockerd.client().images.list(name=reg.image.rsplit(":", 1)[0])
    rollback_records(Host(), run, journal.read_run(run.run_id))
    assert not dockerd.client().images.list(name=reg.image.rsplit(":", 1)[0])


def test_a_deleted_cuda_tag_falls_back_to_the_next_candidate(
    dockerd: Dockerd, tmp_path: Path
) -> None:
    events: list = []
    ctx = ApplyContext(
        Host(), Journal(tmp_path / "state").start_run(["t"]), "gpu-test", events.append
    )
    with Registry() as reg:
        gone = reg.image.replace(":1", ":11.6-base")  # the seed guide's tag, long deleted
        action = RunContainer(
            image=gone,
            alternatives=[reg.image],
            command=["echo", "ok"],
            docker_host=dockerd.docker_host,
            expect=["ok"],
        )
        result = action.run(ctx)
    assert result["passed"] and action.image == reg.image
    texts = [e.text for e in events if hasattr(e, "text")]
    assert any("no longer exists; trying" in t for t in texts)
    dockerd.client().images.remove(reg.image)
