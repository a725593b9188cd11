"""The Docker version matrix for the daemon-config, restart and GPU-test steps: 20.10 (the
host's bookworm docker.io), 26.1 (trixie's) and 28.5 (sid's), each a real private dockerd
(tests/docker_versions.py) with the suite's stand-in NVIDIA programs on its PATH.

What differs by version and is checked here: `dockerd --validate` exists from 23 (20.10 has
no such flag: gpuwizard's own checks are all there is), and the version that validates is the
running daemon's own, not another dockerd on PATH.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.docker_versions import ALL_VERSIONS
from tests.dockerd import plan_and_apply, wizard_options

pytestmark = pytest.mark.slow

USER_JSON = b'{\n    "log-level": "warn",\n    "max-concurrent-downloads": 3\n}\n'


CDI_STAND_IN = {
    "cdiVersion": "0.5.0",
    "kind": "nvidia.com/gpu",
    "devices": [{"name": "all", "containerEdits": {"env": ["GPUWIZARD_TEST_CDI_STAND_IN=1"]}}],
    "containerEdits": {},
}


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_daemon_config_restart_and_gpu_test_on_each_docker_version(
    versioned_dockerd, version: str, tmp_path: Path
) -> None:
    user = USER_JSON
    if version == "28.5":
        # CDI is on by default from 28.x, so the GPU test also runs `--device
        # nvidia.com/gpu=all`: a stand-in spec (env only: there is no GPU) in a private folder
        specs = tmp_path / "cdi"
        specs.mkdir()
        smi = tmp_path / "nvidia-smi"  # STAND-IN, like the stand-in hook's (no real GPU)
        smi.write_text(
            "#!/bin/sh\n# STAND-IN nvidia-smi mounted by the test suite's stand-in CDI spec\n"
            'echo "GPU 0: NVIDIA H200 (stand-in) (UUID: GPU-00000000-0000-0000-0000-'
            '000000000000)"\n'
        )
        smi.chmod(0o755)
        spec = json.loads(json.dumps(CDI_STAND_IN))
        spec["devices"][0]["containerEdits"]["mounts"] = [
            {
                "hostPath": str(smi),
                "containerPath": "/usr/bin/nvidia-smi",
                "options": ["ro", "bind"],
            }
        ]
        (specs / "nvidia-stand-in.json").write_text(json.dumps(spec))
        doc = json.loads(USER_JSON)
        doc["cdi-spec-dirs"] = [str(specs)]
        user = (json.dumps(doc, indent=4) + "\n").encode()
    d = versioned_dockerd(version, daemon_json=user)
    assert d.docker("version", "--format", "{{.Server.Version}}").stdout.startswith(version)
    opts = wizard_options(d, steps=("daemon-config", "restart", "gpu-test"))
    events: list = []
    the_plan, run = plan_and_apply(opts, tmp_path / "state", events)
    validate = the_plan.step("daemon-config").facts["validate"]
    print(version, validate)
    if version == "20.10":
        assert validate["ok"] is None and "no `dockerd --validate`" in validate["output"]
    else:
        assert validate["ok"] is True, validate  # this version's dockerd validated it
    info = d.client().info()
    assert info["ServerVersion"].startswith(version)
    assert "nvidia" in info["Runtimes"]
    written = json.loads(d.daemon_json.read_bytes())
    assert written["log-level"] == "warn" and written["max-concurrent-downloads"] == 3
    if version == "28.5":
        commands = the_plan.step("gpu-test").facts["commands"]
        assert any("--device nvidia.com/gpu=all" in c for c in commands), commands
    states = {e.step: e.state for e in events if getattr(e, "kind", "") == "step"}
    print(version, states)
    assert states.get("gpu-test") == "done", states
    # the stand-in hook ran: dockerd's real --gpus path, on this version
    assert d.calls("nvidia-container-runtime-hook")


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_a_file_dockerd_would_refuse_is_refused_before_the_restart_on_each_version(
    versioned_dockerd, version: str, tmp_path: Path
) -> None:
    bad = b'{\n    "runtimes": {"x": {"path": "/bin/x", "runtimeType": "io.x.v1"}}\n}\n'
    d = versioned_dockerd(version, daemon_json=USER_JSON, image=False)
    d.daemon_json.write_bytes(bad)  # edited since dockerd started; it would not start on it
    from gpuwizard import wizard
    from gpuwizard.host.system import Host
    from tests.dockerd import docker_steps

    opts = wizard_options(d, steps=("daemon-config", "restart"))
    pid = d.pid()
    the_plan = wizard.plan(Host(), opts, steps=docker_steps())
    step = the_plan.step("daemon-config")
    print(version, step.state, step.reason)
    assert step.state == "failed" and "both `path` and `runtimeType`" in step.reason
    assert d.pid() == pid  # nothing was restarted
