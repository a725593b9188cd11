"""CDI: the probe (one reader for steps and doctor), the cdi step (a spec from nvidia-ctk,
previewed, journaled, undone byte-exact; the runtime's mode), and the GPU test's routes on
Docker 20.10, 26.1 and 28.5. The only stand-ins are nvidia-ctk, the runtime/hook and the GPU
(tests/stand_ins/); the engines' own CDI code applies the spec."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from gpuwizard.host import cdi
from gpuwizard.host.system import Host
from tests.dockerd import wizard_options

H200_SPEC = Path(__file__).parent / "fixtures" / "h200" / "cdi-nvidia.yaml"


def test_the_h200_spec_is_read_without_a_yaml_library() -> None:
    """The spec nvidia-ctk 1.20.0 wrote on the H200 (recorded): kind, version, the three
    device names, the driver version from the libraries it mounts, its device nodes."""
    spec = cdi.parse_spec("/etc/cdi/nvidia.yaml", H200_SPEC.read_text())
    assert spec.kind == "nvidia.com/gpu" and spec.cdi_version == "0.5.0"
    assert spec.devices[0] == "0" and spec.devices[-1] == "all" and len(spec.devices) == 3
    assert spec.devices[1].startswith("GPU-")
    assert spec.driver_version == "580.159.04"
    assert "/dev/nvidia-uvm" in spec.device_nodes and "/dev/nvidiactl" in spec.device_nodes


def _root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    for d in ("etc/cdi", "var/run/cdi", "dev"):
        (root / d).mkdir(parents=True)
    return root


def test_probe_names_each_cdi_problem_with_cause_remedy_and_repair(tmp_path: Path) -> None:
    root = _root(tmp_path)
    (root / "etc/cdi/nvidia.yaml").write_text(H200_SPEC.read_text())
    newer = H200_SPEC.read_text().replace("cdiVersion: 0.5.0", "cdiVersion: 0.7.0")
    (root / "var/run/cdi/nvidia.yaml").write_text(newer)
    (root / "var/run/cdi/broken.json").write_text("{}")
    (root / "dev/nvidiactl").write_text("")  # the uvm nodes are missing
    state = cdi.probe(
        Host(root=root),
        driver_version="590.44.01",
        engine_version="25.0.3",
        cdi_enabled=False,
    )
    codes = {p.code for p in state.problems}
    assert codes == {
        "cdi-spec-unreadable",
        "cdi-spec-stale",
        "cdi-kind-twice",
        "cdi-device-nodes-missing",
        "cdi-schema-too-new",
        "cdi-feature-off",
    }
    by = {p.code: p for p in state.problems}
    assert "580.159.04" in by["cdi-spec-stale"].title and "590.44.01" in by["cdi-spec-stale"].title
    assert "create-device-nodes --control-devices" in by["cdi-device-nodes-missing"].remedy
    assert "/dev/nvidia-uvm" in by["cdi-device-nodes-missing"].title
    assert "no-additional-gids-for-device-nodes" in by["cdi-schema-too-new"].remedy
    assert '"cdi": true' in by["cdi-feature-off"].remedy
    assert all(p.cause and p.remedy for p in state.problems)
    # each points at an explain entry that exists
    from gpuwizard import failures

    known = {row.code for row in failures.table()}
    assert {p.failure for p in state.problems if p.failure} <= known


def test_a_healthy_spec_on_a_new_engine_has_no_problems(tmp_path: Path) -> None:
    root = _root(tmp_path)
    (root / "etc/cdi/nvidia.yaml").write_text(H200_SPEC.read_text())
    for n in cdi.CONTROL_NODES:
        (root / n.lstrip("/")).write_text("")
    state = cdi.probe(Host(root=root), "580.159.04", engine_version="28.5.2", cdi_enabled=True)
    assert state.problems == ()
    assert state.has("nvidia.com/gpu=all")


# -- the route matrix --------------------------------------------------------------------------


def _steps() -> list[Any]:
    from gpuwizard.steps.cdi import CdiStep
    from gpuwizard.steps.daemon_config import DaemonConfigStep
    from gpuwizard.steps.gpu_test import GpuTestStep
    from gpuwizard.steps.restart import RestartStep

    return [CdiStep(), DaemonConfigStep(), RestartStep(), GpuTestStep()]


def _apply(d: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> tuple:
    """Plan and apply cdi, daemon-config, restart and gpu-test against this daemon, with the
    stand-in nvidia-ctk found on PATH and the spec in a private folder the engine reads."""
    from gpuwizard import wizard
    from gpuwizard.journal import Journal

    engine = d.engine.path_prefix() if d.engine is not None else ""  # its dockerd --validate
    monkeypatch.setenv("PATH", f"{d.bin}:{engine}{os.environ['PATH']}")
    spec_dir = d.base / "cdi"
    spec_dir.mkdir(exist_ok=True)
    (d.bin / "standin-cdi-dirs").write_text(f"{spec_dir}\n")
    names = ("cdi", "daemon-config", "restart", "gpu-test")
    opts = wizard_options(d, steps=names, cdi_spec=str(spec_dir / "nvidia.yaml"), **kw)
    host = Host()
    the_plan = wizard.plan(host, opts, steps=_steps())
    journal = Journal(tmp_path / "state")
    run = journal.start_run(["test"])
    events: list = []
    error = None
    try:
        wizard.apply(host, opts, the_plan, run, emit=events.append, steps=_steps())
    except Exception as exc:  # a failed GPU test is a WizardError: the test judges it
        error = exc
    route = None
    for rec in journal.read_run(run.run_id).records:
        if rec.type == "gpu-route":
            route = rec.data
    return the_plan, events, route, error, journal, host


def _results(the_plan: Any) -> dict[str, bool]:
    return {
        a.route: bool(a.verdict and a.verdict.passed)
        for a in the_plan.step("gpu-test").actions
        if getattr(a, "route", "")
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    ("version", "daemon_json", "expect"),
    [
        # 20.10: no CDI in the engine; the runtime applies the spec (CDI names)
        ("20.10", {}, {"gpus": True, "runtime": True}),
        # 26.1: CDI only with features.cdi
        ("26.1", {}, {"gpus": True, "runtime": True}),
        ("26.1", {"features": {"cdi": True}}, {"gpus": True, "runtime": True, "cdi": True}),
        # 28.5: CDI on by default
        ("28.5", {}, {"gpus": True, "runtime": True, "cdi": True}),
    ],
    ids=["20.10", "26.1", "26.1-cdi-on", "28.5"],
)
def test_every_route_on_each_docker_version(
    versioned_dockerd: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    version: str,
    daemon_json: dict,
    expect: dict[str, bool],
) -> None:
    d = versioned_dockerd(version)
    conf = {**daemon_json, "cdi-spec-dirs": [str(d.base / "cdi")]} if version != "20.10" else {}
    d.daemon_json.write_text(json.dumps(conf) + "\n")
    d.stop()
    d.start()
    the_plan, events, route, error, _, _ = _apply(d, tmp_path, monkeypatch)
    assert error is None, error
    cdi_plan = the_plan.step("cdi")
    assert cdi_plan.state == "pending"
    # previewed: the real spec (from nvidia-ctk) and what cdi list said, before anything ran
    diff = cdi_plan.diffs[0]
    assert '"kind": "nvidia.com/gpu"' in (diff.after or "")
    assert "nvidia.com/gpu=all" in diff.summary
    assert _results(the_plan) == expect
    assert route is not None
    best = "cdi" if expect.get("cdi") else "runtime"
    assert route["route"] == best
    if best == "cdi":
        assert route["docker_run"].startswith("docker run --rm --device nvidia.com/gpu=all ")
        assert "devices:\n      - nvidia.com/gpu=all" in route["compose"]
    else:
        assert (
            "--runtime nvidia -e NVIDIA_VISIBLE_DEVICES=nvidia.com/gpu=all" in route["docker_run"]
        )
        assert "cdi" in route["why_not"]
        assert "not tried" in route["why_not"]["cdi"]
    texts = [getattr(e, "text", "") for e in events]
    assert any(t.startswith("use: docker run --rm") for t in texts)
    assert any(t.strip() == "nvidia.com/gpu=all" for t in texts)  # cdi list, before the write
    # the engine really used the spec: the stand-in runtime saw CDI names (runtime route)
    calls = [c for c in d.calls("nvidia-container-runtime") if c.get("visible_devices")]
    assert any("nvidia.com/gpu=all" in c["visible_devices"] for c in calls)


@pytest.mark.slow
def test_the_runtime_route_fails_named_without_a_spec_and_snippet_follows_the_route(
    versioned_dockerd: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    gpuwizard_cmd: list[str],
) -> None:
    """No hook for --gpus (like the H200: no libnvidia-container), Docker 28.5: only CDI works;
    the step passes, names the line, and `gpuwizard snippet run` prints it first."""
    import subprocess

    d = versioned_dockerd("28.5")
    (d.bin / "nvidia-container-runtime-hook").unlink()
    d.daemon_json.write_text(json.dumps({"cdi-spec-dirs": [str(d.base / "cdi")]}) + "\n")
    d.stop()
    d.start()
    the_plan, events, route, error, journal, host = _apply(d, tmp_path, monkeypatch)
    assert error is None, error
    res = _results(the_plan)
    assert res["gpus"] is False and res["cdi"] is True
    assert route is not None and route["route"] == "cdi"
    assert "gpus" in route["why_not"]
    out = subprocess.run(
        [*gpuwizard_cmd, "snippet", "run", "--state-dir", str(tmp_path / "state")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    first = out.split("\n\n")[0]
    assert "works on this host" in first
    assert route["docker_run"] in first
    # rollback: the spec goes (it did not exist), daemon.json comes back byte-exact
    from gpuwizard import wizard

    spec = d.base / "cdi" / "nvidia.yaml"
    assert spec.exists()
    wizard.rollback(host, journal, all_runs=True)
    assert not spec.exists()
    assert json.loads(d.daemon_json.read_text()) == {"cdi-spec-dirs": [str(d.base / "cdi")]}


def test_runtime_mode_is_previewed_and_undone_byte_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--runtime-mode cdi`: the edit is nvidia-ctk's own (the stand-in) on a copy, shown as a
    diff; rollback puts the original bytes back."""
    from gpuwizard import wizard
    from gpuwizard.actions.cdi import SetRuntimeMode
    from gpuwizard.journal import Journal

    stand_ins = Path(__file__).parent / "stand_ins"
    monkeypatch.setenv("PATH", f"{stand_ins}:{os.environ['PATH']}")
    original = b'#accept-nvidia-visible-devices-as-volume-mounts = false\n\n[nvidia-container-runtime]\nlog-level = "info"\nmode = "auto"\n\n[nvidia-container-runtime.modes.cdi]\ndefault-kind = "nvidia.com/gpu"\n'  # noqa: E501
    cfg = tmp_path / "config.toml"
    cfg.write_bytes(original)
    action = SetRuntimeMode(path=str(cfg), ctk=str(stand_ins / "nvidia-ctk"), runtime_mode="cdi")
    host = Host()
    action.content = action.edit(host)
    diff = action.preview(host)[0]
    assert '-mode = "auto"' in diff.unified() and '+mode = "cdi"' in diff.unified()
    journal = Journal(tmp_path / "state")
    run = journal.start_run(["test"])
    from gpuwizard.actions.base import ApplyContext

    action.step = "cdi"
    action.run(ApplyContext(host, run, "cdi"))
    assert b'mode = "cdi"' in cfg.read_bytes() and b"log-level" in cfg.read_bytes()
    wizard.rollback(host, journal, all_runs=True)
    assert cfg.read_bytes() == original
    stale = [c for c in (stand_ins / "standin-calls.log",) if c.exists()]
    for c in stale:
        c.unlink()


def test_doctor_reads_the_same_probe(tmp_path: Path) -> None:
    """doctor's cdi link: the probe's first problem with its cause, remedy and explain code."""
    from gpuwizard.doctor.cdi import probe_cdi
    from gpuwizard.doctor.links import OK, WARN, Walk
    from gpuwizard.options import Options

    root = _root(tmp_path)
    newer = H200_SPEC.read_text().replace("cdiVersion: 0.5.0", "cdiVersion: 0.7.0")
    (root / "etc/cdi/nvidia.yaml").write_text(newer)
    walk = Walk(Host(root=root), Options(), "debian", "none", "apt", gpu=True)
    walk.engine = {"ServerVersion": "25.0.3"}
    link = probe_cdi(walk)
    assert link.verdict == WARN and link.code == "cdi-unresolvable"
    assert "0.7.0" in link.summary and "no-additional-gids-for-device-nodes" in link.remedy
    walk.engine = {"ServerVersion": "28.5.2"}
    link = probe_cdi(walk)
    assert link.verdict == OK and "nvidia.com/gpu=all" in link.summary
