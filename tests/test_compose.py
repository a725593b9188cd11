"""Snippets: both Compose forms of the seed guide, generated for this host, are valid YAML that
`docker-compose config` accepts, and run with Debian's docker-compose against a real dockerd."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from gpuwizard import snippets
from gpuwizard.host.system import Host
from tests.dockerd import IMAGE, Dockerd, plan_and_apply, wizard_options

CUDA = "nvidia/cuda:13.0.2-base-ubuntu24.04"


@pytest.mark.parametrize("form", snippets.FORMS)
@pytest.mark.parametrize("gpus", ["all", "1", "device=0,2"])
def test_compose_snippet_is_valid_yaml_without_version_key(form: str, gpus: str) -> None:
    text = snippets.render_compose(form, CUDA, gpus)
    doc = yaml.safe_load(text)
    assert "version" not in doc
    svc = doc["services"]["gpu-test"]
    assert svc["image"] == CUDA and "11.6-base" not in text
    if form == "runtime":
        assert svc["runtime"] == "nvidia"
    else:
        dev = svc["deploy"]["resources"]["reservations"]["devices"][0]
        assert dev["driver"] == "nvidia" and dev["capabilities"] == ["gpu"]
        if gpus == "device=0,2":
            assert dev["device_ids"] == ["0", "2"]
        else:
            assert dev["count"] == ("all" if gpus == "all" else 1)


def test_docker_run_snippets_for_each_way_to_the_gpu() -> None:
    assert (
        snippets.render_docker_run(CUDA, "all") == f"docker run --rm --gpus all {CUDA} nvidia-smi"
    )
    assert (
        snippets.render_docker_run(CUDA, "device=0,2")
        == f'docker run --rm --gpus "device=0,2" {CUDA} nvidia-smi'
    )
    assert (
        snippets.render_docker_run(CUDA, "all", "runtime")
        == f"docker run --rm --runtime nvidia -e NVIDIA_VISIBLE_DEVICES=all {CUDA} nvidia-smi"
    )
    assert (
        snippets.render_docker_run(CUDA, "all", "cdi")
        == f"docker run --rm --device nvidia.com/gpu=all {CUDA} nvidia-smi"
    )
    assert set(snippets.snippets(CUDA, cdi=True)) == {
        "docker run --gpus",
        "docker run --runtime nvidia",
        "docker run --device (CDI)",
        "compose: deploy.resources",
        "compose: runtime: nvidia",
    }


@pytest.mark.skipif(not shutil.which("docker-compose"), reason="needs docker-compose")
@pytest.mark.parametrize("form", snippets.FORMS)
def test_compose_config_accepts_the_snippet(form: str) -> None:
    host = Host()
    assert snippets.compose_tool(host) is not None
    res = snippets.validate_compose(host, snippets.render_compose(form, CUDA, "all"))
    assert "nvidia" in res.stdout


def test_missing_compose_says_how_to_get_it(sandbox: Path) -> None:
    host = Host(root=sandbox)
    assert snippets.compose_tool(host) is None
    with pytest.raises(Exception) as err:
        snippets.validate_compose(host, "services: {}\n")
    assert "docker-compose" in getattr(err.value, "remedy", "")


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("docker-compose"), reason="needs docker-compose")
def test_both_compose_forms_run_with_docker_compose_against_the_daemon(
    dockerd: Dockerd, tmp_path: Path
) -> None:
    plan_and_apply(wizard_options(dockerd, steps=("daemon-config", "restart")), tmp_path / "s")
    for form in snippets.FORMS:
        dockerd.clear_calls()
        folder = tmp_path / form
        folder.mkdir()
        (folder / "docker-compose.yaml").write_text(snippets.render_compose(form, IMAGE, "1"))
        res = subprocess.run(  # noqa: S603
            ["docker-compose", "-p", f"gw{form}", "run", "--rm", "gpu-test"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "DOCKER_HOST": dockerd.docker_host},
        )
        assert res.returncode == 0, res.stderr
        assert "NVIDIA H200 (stand-in)" in res.stdout
        assert dockerd.calls("nvidia-container-runtime-hook"), form
        if form == "runtime":
            assert dockerd.calls("nvidia-container-runtime")
        subprocess.run(
            ["docker-compose", "-p", f"gw{form}", "down"],  # noqa: S603
            cwd=folder,
            capture_output=True,
            timeout=60,
            env={**os.environ, "DOCKER_HOST": dockerd.docker_host},
        )


def test_snippet_for_host_uses_the_chosen_image_and_gpu_selection(sandbox: Path) -> None:
    from gpuwizard.options import Options

    text = snippets.render_for_host(
        Host(root=sandbox), Options(cuda_image=CUDA, gpus="2"), kind="compose"
    )
    assert "count: 2" in text and "runtime: nvidia" in text and CUDA in text
    run = snippets.render_for_host(Host(root=sandbox), Options(cuda_image=CUDA), kind="run")
    assert f"docker run --rm --gpus all {CUDA} nvidia-smi" in run
    assert "11.6-base" not in text + run
