"""Test containers over plain HTTP (host/engine_run.py) against a real dockerd: the same
exit status, output (per stream, in order), runtime and refusal words as through the Docker
SDK, case for case; and a GPU test run that never imports the SDK."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gpuwizard.actions.base import ApplyContext
from gpuwizard.actions.containers import RunContainer, plain_run
from gpuwizard.events import LogLine
from gpuwizard.host import docker as engine
from gpuwizard.host.system import Host
from gpuwizard.journal import Journal
from tests.dockerd import IMAGE, Dockerd

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent


def _both(
    d: Dockerd, tmp_path: Path, action: RunContainer
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The container run once through each client: (exit, out lines, err lines, runtime)."""
    answers = []
    for way in ("plain", "sdk"):
        seen: list[LogLine] = []
        ctx = ApplyContext(
            Host(),
            Journal(tmp_path / way).start_run(["t"]),
            "gpu-test",
            seen.append,  # type: ignore[arg-type]
        )
        if way == "plain":
            plain = plain_run(Host(), d.docker_host, 60)
            assert plain is not None
            code, _, runtime = action._run_once_plain(ctx, plain, list(action.command))
        else:
            client = engine.connect(Host(), d.docker_host)
            code, _, runtime = action._run_once(ctx, client, list(action.command))
        out = [e.text for e in seen if e.stream == "out"]
        err = [e.text for e in seen if e.stream == "err"]
        answers.append((code, out, err, runtime))
    return answers[0], answers[1]


CASES = {
    "exit status and both streams": dict(
        command=["sh", "-c", "echo one; echo two >&2; echo three; exit 3"]
    ),
    "--gpus all through the stand-in hook": dict(command=["nvidia-smi", "-L"], gpus="all"),
    "--runtime nvidia": dict(
        command=["nvidia-smi", "-L"], runtime="nvidia", env={"NVIDIA_VISIBLE_DEVICES": "all"}
    ),
    "an unknown runtime (refused at create)": dict(command=["true"], runtime="no-such-runtime"),
    "a missing program (refused at start)": dict(command=["no-such-program"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_container_over_plain_http_answers_as_through_the_sdk(
    case: str, dockerd: Dockerd, tmp_path: Path
) -> None:
    action = RunContainer(image=IMAGE, docker_host=dockerd.docker_host, **CASES[case])
    plain, sdk = _both(dockerd, tmp_path, action)
    assert plain == sdk, (plain, sdk)
    assert not [
        c for c in dockerd.client().containers.list(all=True) if c.name.startswith("gpuwizard-")
    ]


def test_without_the_toolkit_the_engines_refusal_reads_the_same(
    bare_dockerd: Dockerd, tmp_path: Path
) -> None:
    action = RunContainer(image=IMAGE, command=["true"], gpus="all")
    plain, sdk = _both(bare_dockerd, tmp_path, action)
    assert plain == sdk, (plain, sdk)
    assert plain[0] == 126 and any("could not select device driver" in e for e in plain[2])


GPU_TEST_WITHOUT_SDK = """
import json, sys
sys.path.insert(0, {repo!r})
sys.path.insert(0, {tests!r})
import harness
from gpuwizard.host.system import Host
from gpuwizard.options import Options
from gpuwizard.steps.gpu_test import GpuTestStep
opts = Options(docker_host={url!r}, steps=("gpu-test",), test_image={image!r},
               skip_cuda_test=True)
out = harness.plan_and_apply(Host(), opts, __import__("pathlib").Path({state!r}), [GpuTestStep()])
print(json.dumps({{"error": str(out.error) if out.error else None,
                  "sdk": "docker" in sys.modules, "requests": "requests" in sys.modules}}))
"""


def test_the_gpu_test_runs_its_containers_without_the_sdk(dockerd: Dockerd, tmp_path: Path) -> None:
    code = GPU_TEST_WITHOUT_SDK.format(
        repo=str(REPO),
        tests=str(REPO / "tests"),
        url=dockerd.docker_host,
        image=IMAGE,
        state=str(tmp_path / "state"),
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.splitlines()[-1])
    assert out["error"] is None, out
    assert not out["sdk"] and not out["requests"], "the GPU test imported the Docker SDK"
