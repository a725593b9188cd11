"""Everything a user can choose, in one frozen record that travels to the worker: a face
changes a choice with dataclasses.replace, so what was previewed is what gets applied."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

# the steps' names, in order (Docker's, then the other engines'): the registry's
from gpuwizard.steps.registry import ALL_STEP_NAMES, ENGINE_STEP_NAMES, STEP_NAMES

NVIDIA_KEY_FINGERPRINT = "C95B321B61E88C1809C4F759DDCAE044F796ECB0"
NVIDIA_REPO_URL = "https://nvidia.github.io/libnvidia-container/stable"
NVIDIA_KEY_URL = "https://nvidia.github.io/libnvidia-container/gpgkey"

__all__ = ["ALL_STEP_NAMES", "ENGINE_STEP_NAMES", "STEP_NAMES", "Options"]


@dataclass(frozen=True)
class Options:
    """The user's choices. Defaults are what a person on a fresh machine wants."""

    # repository (mirrors and air-gapped hosts set these)
    repo_url: str = NVIDIA_REPO_URL
    key_url: str = NVIDIA_KEY_URL
    key_fingerprint: str = NVIDIA_KEY_FINGERPRINT
    experimental: bool = False
    toolkit_version: Optional[str] = None
    keep_legacy: bool = False  # leave old nvidia-docker lists alone
    lock_wait: float = 300.0  # seconds to wait for another process's dpkg/rpm lock
    # an unpacked air-gapped bundle (apply --bundle): its folder on this machine, and the
    # images it carries ({"name", "file" relative to it, "id"}); the URLs above point into it
    bundle: Optional[str] = None
    bundle_images: list[dict[str, str]] = field(default_factory=list)

    # docker
    docker_host: Optional[str] = None  # e.g. unix:///run/docker.sock
    docker_pidfile: Optional[str] = None  # the running dockerd's pidfile (doctor: start time)
    daemon_json: Optional[str] = None  # explicit path; otherwise found from the engine
    set_default_runtime: bool = False
    enable_cdi: bool = False
    replace_runtime: bool = False  # an existing runtimes.nvidia with another path
    restart_method: Optional[str] = None  # systemd | service | snap | openrc | command
    restart_command: Optional[list[str]] = None
    docker_wait: float = 60.0
    docker_log: Optional[str] = None  # the daemon's log file, shown when a restart fails

    # CDI (the cdi step)
    cdi_spec: Optional[str] = None  # where to write the spec (default /etc/cdi/nvidia.yaml)
    cdi_driver_root: Optional[str] = None  # default: where the driver step found nvidia-smi
    cdi_regenerate: bool = False  # regenerate even a healthy spec
    runtime_mode: Optional[str] = None  # "cdi": the NVIDIA runtime's mode in config.toml

    # the GPU test
    test_image: Optional[str] = None  # the smoke test image (default ubuntu:24.04)
    cuda_image: Optional[str] = None  # override the chosen nvidia/cuda tag
    cuda_repository: str = "nvidia/cuda"
    gpus: str = "all"
    skip_cuda_test: bool = False
    framework: Optional[str] = None  # tensorflow | pytorch (opt-in: large images)
    framework_image: Optional[str] = None

    # other engines
    podman_image: Optional[str] = None  # a local image for Podman's GPU test (else test_image)
    containerd: Optional[bool] = None  # None: configure it when its CRI is in use
    containerd_config: Optional[str] = None  # the config.toml it reads (else from its argv)
    containerd_socket: Optional[str] = None
    containerd_restart_command: Optional[list[str]] = None
    containerd_wait: float = 60.0

    # the run
    steps: tuple[str, ...] = ()  # empty: all, in order
    yes: bool = False
    force: bool = False
    auto_revert: float = 120.0  # seconds; 0 turns it off
    state_dir: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["steps"] = list(self.steps)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Options:
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        if "steps" in kwargs:
            kwargs["steps"] = tuple(kwargs["steps"])
        return cls(**kwargs)
