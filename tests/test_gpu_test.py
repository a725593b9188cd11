"""The gpu-test step and its test containers against a real dockerd with the stand-in toolkit:
every configured way of reaching the GPU is tried, output is streamed live, failures are named."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from gpuwizard import wizard
from gpuwizard.actions.base import ApplyContext
from gpuwizard.actions.containers import RunContainer, parse_gpus
from gpuwizard.errors import WizardError
from gpuwizard.events import LogLine
from gpuwizard.host.system import Host
from gpuwizard.journal import Journal
from gpuwizard.options import Options
from gpuwizard.steps.base import Simulation
from gpuwizard.steps.gpu_test import GpuTestStep, framework_check, visible_devices
from tests.dockerd import IMAGE, Dockerd, docker_steps, plan_and_apply, wizard_options

STAND_IN_GPU = "NVIDIA H200 (stand-in)"


def run_action(action: RunContainer, tmp_path: Path) -> tuple[dict, list[tuple[float, LogLine]]]:
    seen: list[tuple[float, LogLine]] = []

    def sink(event: object) -> None:
        if isinstance(event, LogLine):
            seen.append((time.monotonic(), event))

    ctx = ApplyContext(Host(), Journal(tmp_path / "state").start_run(["t"]), "gpu-test", sink)
    result = action.run(ctx)
    return result, seen


# -- GPU selection, without a daemon ----------------------------------------------------------


@pytest.mark.parametrize(
    "spec,expected",
    [
        ("all", {"count": -1, "capabilities": [["gpu"]]}),
        ("2", {"count": 2, "capabilities": [["gpu"]]}),
        ('"device=0,2"', {"device_ids": ["0", "2"], "capabilities": [["gpu"]]}),
        (
            "device=GPU-3b5c,GPU-77aa",
            {"device_ids": ["GPU-3b5c", "GPU-77aa"], "capabilities": [["gpu"]]},
        ),
        (
            "all,driver=nvidia.runtime-hook",
            {"count": -1, "driver": "nvidia.runtime-hook", "capabilities": [["gpu"]]},
        ),
    ],
)
def test_gpu_selection_maps_to_device_requests(spec: str, expected: dict) -> None:
    assert parse_gpus(spec) == expected


def test_gpu_selection_gives_the_same_visible_devices() -> None:
    assert visible_devices("all") == "all"
    assert visible_devices("2") == "0,1"
    assert visible_devices('"device=0,2"') == "0,2"


def test_unknown_gpu_selection_is_a_clear_error() -> None:
    with pytest.raises(WizardError) as err:
        parse_gpus("gpu0")
    assert "device=0,2" in err.value.remedy


def test_framework_check_is_opt_in_and_builds_its_command() -> None:
    assert framework_check(Options(), "all") is None
    action = framework_check(Options(framework="pytorch", framework_image="mirror/pt:1"), "2")
    assert action is not None
    assert action.cli() == (
        "docker run --rm --gpus 2 mirror/pt:1 python -c import torch; "
        "assert torch.cuda.is_available(); "
        "print(torch.cuda.get_device_name(0))"
    )
    tf = framework_check(Options(framework="tensorflow"), "all")
    assert (
        tf is not None
        and tf.image.startswith("tensorflow/tensorflow:")
        and "latest" not in tf.image
    )
    with pytest.raises(WizardError):
        framework_check(Options(framework="jax"), "all")


def test_gpu_test_is_blocked_when_the_driver_step_is(sandbox: Path) -> None:
    sim = Simulation(facts={"driver-blocked": "no NVIDIA driver loaded"})
    sp = GpuTestStep().plan(Host(), Options(docker_host="unix:///nonexistent.sock"), sim)
    assert sp.state == "blocked" and "no NVIDIA driver loaded" in sp.reason


# -- against the daemon -----------------------------------------------------------------------

pytestmark_slow = pytest.mark.slow


@pytest.mark.slow
@pytest.mark.parametrize(
    "gpus,devices", [("all", "all"), ("1", "0"), ('"device=0"', "0"), ("device=0,2", "0,2")]
)
def test_gpus_flag_reaches_the_stand_in_hook(
    dockerd: Dockerd, tmp_path: Path, gpus: str, devices: str
) -> None:
    action = RunContainer(
        image=IMAGE,
        command=["nvidia-smi"],
        gpus=gpus,
        docker_host=dockerd.docker_host,
        expect=[re.escape(STAND_IN_GPU)],
    )
    result, lines = run_action(action, tmp_path)
    assert result["passed"], result
    calls = dockerd.calls("nvidia-container-runtime-hook")
    assert calls and calls[-1]["argv"] == ["prestart"]
    assert calls[-1]["visible_devices"] == devices
    assert any(STAND_IN_GPU in e.text for _, e in lines)


@pytest.mark.slow
def test_runtime_nvidia_reaches_the_stand_in_runtime(tmp_path: Path, dockerd: Dockerd) -> None:
    plan_and_apply(wizard_options(dockerd, steps=("daemon-config", "restart")), tmp_path / "s")
    dockerd.clear_calls()
    action = RunContainer(
        image=IMAGE,
        command=["nvidia-smi"],
        runtime="nvidia",
        env={"NVIDIA_VISIBLE_DEVICES": "all"},
        expect_runtime="nvidia",
        docker_host=dockerd.docker_host,
        expect=[re.escape(STAND_IN_GPU)],
    )
    result, _ = run_action(action, tmp_path)
    assert result["passed"] and result["runtime"] == "nvidia"
    assert any("create" in c["argv"] for c in dockerd.calls("nvidia-container-runtime"))
    assert dockerd.calls("nvidia-container-runtime-hook")


@pytest.mark.slow
def test_whole_flow_with_default_runtime_verifies_every_way_to_the_gpu(
    dockerd: Dockerd, tmp_path: Path
) -> None:
    opts = wizard_options(
        dockerd, steps=("daemon-config", "restart", "gpu-test"), set_default_runtime=True
    )
    events: list = []
    the_plan, _ = plan_and_apply(opts, tmp_path / "state", events)
    gpu = the_plan.step("gpu-test")
    assert [a.reason for a in gpu.actions] == [
        "smoke test: --gpus all",
        "smoke test: --runtime nvidia",
        "a plain docker run gets the NVIDIA runtime (default-runtime)",
    ]
    assert dockerd.client().info()["DefaultRuntime"] == "nvidia"
    runtime_calls = dockerd.calls("nvidia-container-runtime")
    # --runtime nvidia and the plain run both went through the runtime; all three saw a GPU
    assert sum(1 for c in runtime_calls if "create" in c["argv"]) >= 2
    assert len(dockerd.calls("nvidia-container-runtime-hook")) >= 3
    assert sum(1 for e in events if isinstance(e, LogLine) and STAND_IN_GPU in e.text) >= 3


@pytest.mark.slow
def test_container_output_is_streamed_line_by_line_as_produced(
    dockerd: Dockerd, tmp_path: Path
) -> None:
    script = "for i in 1 2 3 4 5 6; do echo tick $i; sleep 0.2; done"
    action = RunContainer(
        image=IMAGE,
        command=["sh", "-c", script],
        docker_host=dockerd.docker_host,
        expect=["tick 6"],
    )
    _, lines = run_action(action, tmp_path)
    ticks = [(t, e.text) for t, e in lines if e.text.startswith("tick")]
    assert [text for _, text in ticks] == [f"tick {i}" for i in range(1, 7)]
    gaps = [b[0] - a[0] for a, b in zip(ticks, ticks[1:])]
    assert ticks[-1][0] - ticks[0][0] > 0.8  # not all delivered at the end
    assert min(gaps) > 0.1, gaps


@pytest.mark.slow
def test_nvidia_smi_off_path_is_retried_with_the_driver_root_path(
    dockerd: Dockerd, tmp_path: Path
) -> None:
    (dockerd.bin / "standin-offpath").touch()  # like the project's GPU machine
    action = RunContainer(
        image=IMAGE,
        command=["nvidia-smi"],
        gpus="all",
        docker_host=dockerd.docker_host,
        expect=[re.escape(STAND_IN_GPU)],
        nvidia_smi_paths=["/usr/bin/nvidia-smi", "/usr/local/nvidia/bin/nvidia-smi"],
    )
    result, lines = run_action(action, tmp_path)
    texts = [e.text for _, e in lines]
    assert any("executable file not found in $PATH" in t for t in texts)
    assert any("trying /usr/local/nvidia/bin/nvidia-smi" in t for t in texts)
    assert result["passed"]


@pytest.mark.slow
def test_gpus_without_toolkit_is_a_named_failure_with_remedy(
    bare_dockerd: Dockerd, tmp_path: Path
) -> None:
    action = RunContainer(
        image=IMAGE, command=["nvidia-smi"], gpus="all", docker_host=bare_dockerd.docker_host
    )
    with pytest.raises(WizardError) as err:
        run_action(action, tmp_path)
    assert "no GPU device driver" in err.value.cause or "device driver" in err.value.cause
    assert "restart Docker" in err.value.remedy or "Restart" in err.value.remedy
    assert not bare_dockerd.client().containers.list(all=True)  # removed afterwards


@pytest.mark.slow
def test_gpu_test_plan_names_the_commands(dockerd: Dockerd) -> None:
    opts = wizard_options(dockerd, steps=("gpu-test",), gpus="2")
    sp = wizard.plan(Host(), opts, steps=docker_steps()).step("gpu-test")
    assert sp.facts["commands"][0] == f"docker run --rm --gpus 2 {IMAGE} nvidia-smi"


@pytest.mark.slow
def test_every_way_to_the_gpu_is_tried_and_the_step_names_each_failure(
    bare_dockerd: Dockerd, tmp_path: Path
) -> None:
    """No toolkit at all: the runtime is configured but neither the hook nor the runtime
    exists. Both test containers run; the step fails with the first cause and names the
    other."""
    opts = wizard_options(bare_dockerd, steps=("daemon-config", "restart", "gpu-test"))
    events: list = []
    with pytest.raises(WizardError) as err:
        plan_and_apply(opts, tmp_path / "state", events)
    assert "smoke test: --gpus all failed: Docker has no NVIDIA device driver" in err.value.cause
    assert "smoke test: --runtime nvidia" in err.value.detail
    texts = [e.text for e in events if isinstance(e, LogLine)]
    assert "GPU test: 0 of 2 passed" in texts
    assert any(t.startswith("$ docker run --rm --runtime nvidia") for t in texts)
