"""Steps that plan real file actions on a sandbox root, for drawing the screens.

They are not gpuwizard's steps: they give the screens real `StepPlan`s (real `WriteFile`
actions and diffs, real journal records when applied) without apt or Docker.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gpuwizard.actions.files import WriteFile
from gpuwizard.host.system import Host
from gpuwizard.options import Options
from gpuwizard.steps.base import BLOCKED, DONE, PENDING, Simulation, Step, StepPlan

DAEMON_JSON = '{\n  "log-driver": "json-file",\n  "data-root": "/srv/docker"\n}\n'
LIST = "deb [signed-by=/usr/share/keyrings/nvidia.gpg] https://nvidia.github.io/x /\n"


class Driver(Step):
    name = "driver"
    title = "NVIDIA driver"

    def plan(self, host: Host, options: Options, sim: Simulation) -> StepPlan:
        return self.make(
            DONE,
            reason="NVIDIA H200; driver 580.159.04, CUDA 13.0",
            facts={
                "source": "nvml",
                "gpus": [{"index": 0, "name": "NVIDIA H200", "memory_total_mib": 143771}],
                "driver_version": "580.159.04",
                "cuda_version": "13.0",
            },
        )


class Repository(Step):
    name = "repository"
    title = "Toolkit repository"

    def plan(self, host: Host, options: Options, sim: Simulation) -> StepPlan:
        a = WriteFile(
            path="/etc/apt/sources.list.d/nvidia-container-toolkit.list",
            content=LIST.encode(),
            reason="add NVIDIA's toolkit repository",
        )
        if not a.needed(host):
            return self.make(DONE, facts={"list": a.path})
        return self.make(
            PENDING,
            actions=[a],
            diffs=a.preview(host),
            facts={"key fingerprint": options.key_fingerprint},
        )


class Packages(Step):
    name = "packages"
    title = "Toolkit packages"

    def plan(self, host: Host, options: Options, sim: Simulation) -> StepPlan:
        a = WriteFile(
            path="/var/lib/demo/toolkit-installed",
            content=b"1.17.8\n",
            reason="install nvidia-container-toolkit 1.17.8-1 (4 packages)",
        )
        if not a.needed(host):
            return self.make(DONE)
        return self.make(
            PENDING, actions=[a], diffs=a.preview(host), facts={"toolkit_version": "1.17.8-1"}
        )


def daemon_json_after(options: Options) -> str:
    data: dict[str, Any] = json.loads(DAEMON_JSON)
    data["runtimes"] = {"nvidia": {"args": [], "path": "nvidia-container-runtime"}}
    if options.set_default_runtime:
        data["default-runtime"] = "nvidia"
    if options.enable_cdi:
        data["features"] = {"cdi": True}
    return json.dumps(data, indent=2) + "\n"


class DaemonConfig(Step):
    name = "daemon-config"
    title = "Docker daemon.json"

    def plan(self, host: Host, options: Options, sim: Simulation) -> StepPlan:
        a = WriteFile(
            path="/etc/docker/daemon.json",
            content=daemon_json_after(options).encode(),
            reason="add the nvidia runtime to /etc/docker/daemon.json",
        )
        facts = {
            "engine": {
                "version": "27.5.1",
                "runtimes": ["io.containerd.runc.v2", "runc"],
                "default_runtime": "runc",
            },
            "path": "/etc/docker/daemon.json",
        }
        if not a.needed(host):
            return self.make(DONE, facts=facts)
        return self.make(PENDING, actions=[a], diffs=a.preview(host), facts=facts)


class Restart(Step):
    name = "restart"
    title = "Restart Docker"
    rollback_with = ("daemon-config",)

    def plan(self, host: Host, options: Options, sim: Simulation) -> StepPlan:
        a = WriteFile(
            path="/var/lib/demo/restarted",
            content=b"yes\n",
            reason="restart Docker (systemctl restart docker)",
        )
        if not a.needed(host):
            return self.make(DONE)
        return self.make(
            PENDING,
            actions=[a],
            diffs=a.preview(host),
            warnings=["Restarting Docker stops running containers (live-restore is off)."],
        )


class GpuTest(Step):
    name = "gpu-test"
    title = "GPU test container"

    def plan(self, host: Host, options: Options, sim: Simulation) -> StepPlan:
        if not host.path("/var/lib/demo/restarted").exists() and not sim.files:
            return self.make(
                BLOCKED,
                reason="Docker has not been restarted",
                remedy="Apply the restart step first.",
            )
        return self.make(PENDING, facts={"image": "ubuntu:24.04"})


def steps() -> list[Step]:
    return [Driver(), Repository(), Packages(), DaemonConfig(), Restart(), GpuTest()]


def make_root(base: Path) -> Path:
    root = base / "root"
    for d in ("etc/docker", "etc/apt/sources.list.d", "var/lib"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "etc/os-release").write_text(
        'ID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\nVERSION_CODENAME=noble\n'
        'PRETTY_NAME="Ubuntu 24.04.2 LTS"\n'
    )
    (root / "etc/docker/daemon.json").write_text(DAEMON_JSON)
    return root


def planner(host: Host, options: Options) -> Any:
    from gpuwizard import wizard

    return wizard.plan(host, options, steps=steps())


def pinned_host(root: Path, euid: int = 0) -> Host:
    """A sandbox host whose facts do not depend on the machine running the tests."""
    import dataclasses

    host = Host(root=root, label="sandbox: H200-shaped")
    host.__dict__["facts"] = dataclasses.replace(
        host.facts,
        kernel="6.8.0-60-generic",
        machine="x86_64",
        arch="amd64",
        package_manager="apt",
        init_system="systemd",
        euid=euid,
        in_container=False,
        wsl=False,
    )
    return host


class ReadingsFeed:
    """GPU readings from a list, standing in for the NVML sampler at the panel's one seam."""

    def __init__(self, frames: list[list[Any]], raw: Any = None) -> None:
        self.frames = frames
        self.raw = raw
        self.calls = 0
        self.raw_stopped = 0

    def sample(self) -> list[Any]:
        frame = self.frames[min(self.calls, len(self.frames) - 1)]
        self.calls += 1
        return frame

    def raw_frame(self) -> Any:
        return self.raw

    def stop_raw(self) -> None:
        self.raw_stopped += 1

    def close(self) -> None:
        pass
