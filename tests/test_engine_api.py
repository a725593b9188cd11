"""The engine's read-only questions go as plain HTTP over its socket (host/engine_api.py), so
planning and the restart's verification never import the Docker SDK: a third of a second in
each of the two processes of a run, which was most of gpuwizard's overhead over the guide
typed by hand. Checked against a real dockerd, answer for answer with the SDK."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from gpuwizard.actions.services import gpu_probe
from gpuwizard.host import engine_api
from gpuwizard.host.system import Host
from tests.dockerd import IMAGE, Dockerd

REPO = Path(__file__).resolve().parent.parent


def test_plain_answers_are_the_sdks(dockerd: Dockerd) -> None:
    plain = engine_api.PlainEngine(dockerd.docker_host)
    sdk = dockerd.client()
    try:
        assert plain.ping()
        info, sdk_info = plain.info(), sdk.info()
        assert info["ID"] == sdk_info["ID"]
        assert sorted(info["Runtimes"]) == sorted(sdk_info["Runtimes"])
        assert info["DefaultRuntime"] == sdk_info["DefaultRuntime"]
        assert plain.version()["ApiVersion"] == sdk.version()["ApiVersion"]
        sdk_tags = sorted(t for img in sdk.images.list() for t in img.tags)
        assert sorted(plain.image_tags()) == sdk_tags and IMAGE in sdk_tags
    finally:
        sdk.close()


def test_no_engine_on_the_socket_is_an_error_naming_it(tmp_path: Path) -> None:
    plain = engine_api.PlainEngine(f"unix://{tmp_path / 'none.sock'}", timeout=2)
    try:
        plain.info()
    except engine_api.EngineAPIError as exc:
        assert "Cannot reach Docker at unix://" in str(exc)
    else:
        raise AssertionError("no engine answered, yet no error")


def test_the_gpus_probe_reads_the_engines_refusal(bare_dockerd: Dockerd) -> None:
    """No toolkit on dockerd's PATH: `--gpus all` fails with the engine's own words."""
    client = bare_dockerd.client()
    try:
        before = {c.id for c in client.containers.list(all=True)}
        err = gpu_probe(Host(), bare_dockerd.docker_host, IMAGE)
        assert err and "could not select device driver" in err, err
        assert {c.id for c in client.containers.list(all=True)} == before
    finally:
        client.close()


def test_the_gpus_probe_passes_with_the_hook(dockerd: Dockerd) -> None:
    assert gpu_probe(Host(), dockerd.docker_host, IMAGE) is None


def test_urls_plain_http_does_not_speak_go_to_the_sdk() -> None:
    assert engine_api.speaks_plainly("unix:///run/docker.sock")
    assert engine_api.speaks_plainly("tcp://127.0.0.1:2375")
    assert not engine_api.speaks_plainly("ssh://user@gpu1")


PLAN_WITHOUT_SDK = """
import json, sys
sys.path.insert(0, {repo!r})
from gpuwizard import wizard
from gpuwizard.host.system import Host
from gpuwizard.options import Options
opts = Options(docker_host={url!r}, steps=("daemon-config", "restart"), skip_cuda_test=True)
plan = wizard.plan(Host(), opts)
print(json.dumps({{"states": [s.state for s in plan.steps if s.step in plan.selected],
                  "sdk": "docker" in sys.modules, "requests": "requests" in sys.modules}}))
"""


def test_planning_the_docker_steps_imports_no_sdk(dockerd: Dockerd) -> None:
    code = PLAN_WITHOUT_SDK.format(repo=str(REPO), url=dockerd.docker_host)
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.splitlines()[-1])
    assert out["states"] and "failed" not in out["states"], out
    assert not out["sdk"] and not out["requests"], "the plan imported the Docker SDK"
