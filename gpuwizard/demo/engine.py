"""The recorded Docker engine: answers as the H200 machine's Docker did, in the Docker SDK's
shape, for the host's engine seam (a stand-in, named as such)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from gpuwizard.demo.recorded import (
    DOCKER_VERSION,
    NVIDIA_SMI,
)


# -- the Docker engine -----------------------------------------------------------------------
class RecordedEngine:
    """Answers like the H200 machine's Docker did, as far as gpuwizard asks (the SDK's shape).

    Its runtimes and default runtime are read from the demo root's daemon.json, as if the
    daemon had been restarted on it; pulled images are remembered in the demo root.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.images = _Images(self)
        self.containers = _Containers(self)
        self.api = _Api(self)

    def _daemon_json(self) -> dict[str, Any]:
        try:
            data = json.loads((self.root / "etc/docker/daemon.json").read_text() or "{}")
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _image_file(self) -> Path:
        return self.root / "var/lib/gpuwizard/demo-images.json"

    def image_tags(self) -> list[str]:
        try:
            return list(json.loads(self._image_file().read_text()))
        except (OSError, ValueError):
            return ["ubuntu:24.04"]

    def set_image_tags(self, tags: list[str]) -> None:
        self._image_file().write_text(json.dumps(sorted(set(tags))))

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        pass

    def version(self) -> dict[str, Any]:
        return {
            "Version": DOCKER_VERSION,
            "ApiVersion": "1.47",
            "Os": "linux",
            "Arch": "amd64",
            "KernelVersion": "6.8.0-60-generic",
        }

    def info(self) -> dict[str, Any]:
        conf = self._daemon_json()
        runtimes: dict[str, Any] = {"io.containerd.runc.v2": {}, "runc": {}}
        runtimes.update(conf.get("runtimes") or {})
        return {
            "ServerVersion": DOCKER_VERSION,
            "Runtimes": runtimes,
            "DefaultRuntime": conf.get("default-runtime", "runc"),
            "CgroupDriver": "systemd",
            "CgroupVersion": "2",
            "SecurityOptions": ["name=apparmor", "name=seccomp,profile=builtin", "name=cgroupns"],
            "ContainersRunning": 2,
            "LiveRestoreEnabled": bool(conf.get("live-restore")),
            "DockerRootDir": conf.get("data-root", "/var/lib/docker"),
            "DiscoveredDevices": [{"Source": "cdi", "ID": "nvidia.com/gpu=all"}]
            if (self.root / "var/run/cdi/nvidia.yaml").exists()
            else [],
        }


class _Image:
    def __init__(self, tag: str) -> None:
        self.tags = [tag]
        self.id = "sha256:" + format(abs(hash(tag)), "x").rjust(12, "0")


class _Images:
    def __init__(self, engine: RecordedEngine) -> None:
        self.engine = engine

    def list(self) -> list[_Image]:
        return [_Image(t) for t in self.engine.image_tags()]

    def get(self, name: str) -> _Image:
        if name not in self.engine.image_tags():
            import docker  # lazy, as everywhere: the SDK's own error type

            raise docker.errors.ImageNotFound(f"No such image: {name}")
        return _Image(name)

    def remove(self, name: str, **_kw: Any) -> None:
        self.engine.set_image_tags([t for t in self.engine.image_tags() if t != name])


class _Container:
    def __init__(
        self, engine: RecordedEngine, image: str, command: list[str], kw: dict[str, Any]
    ) -> None:
        self.engine = engine
        self.id = "demo" + format(abs(hash((image, tuple(command)))), "x")[:12]
        self.image = image
        self.command = command
        runtime = kw.get("runtime") or engine.info()["DefaultRuntime"]
        self.attrs = {"HostConfig": {"Runtime": runtime}}
        wants_gpu = bool(kw.get("device_requests")) or runtime == "nvidia"
        has_toolkit = "nvidia" in engine.info()["Runtimes"]
        self.ok = not wants_gpu or has_toolkit
        self.output = (
            (NVIDIA_SMI if any("nvidia-smi" in c for c in command) else "")
            if self.ok
            else 'could not select device driver "" with capabilities: [[gpu]]\n'
        )

    def start(self) -> None:
        pass

    def wait(self, **_kw: Any) -> dict[str, int]:
        return {"StatusCode": 0 if self.ok else 125}

    def kill(self) -> None:
        pass

    def remove(self, **_kw: Any) -> None:
        pass

    def stream(self) -> Any:
        for line in self.output.splitlines(keepends=True):
            time.sleep(0.02)
            yield (line.encode(), None) if self.ok else (None, line.encode())


class _Containers:
    def __init__(self, engine: RecordedEngine) -> None:
        self.engine = engine
        self.made: dict[str, _Container] = {}

    def create(self, image: str, command: list[str], **kw: Any) -> _Container:
        c = _Container(self.engine, image, list(command or []), kw)
        self.made[c.id] = c
        return c

    def run(self, image: str, command: list[str], **kw: Any) -> bytes:
        c = _Container(self.engine, image, list(command or []), kw)
        if not c.ok:
            import docker

            raise docker.errors.APIError(c.output.strip())
        return c.output.encode()

    def get(self, name: str) -> _Container:
        return next(iter(self.made.values()), _Container(self.engine, "", [], {}))


class _Api:
    def __init__(self, engine: RecordedEngine) -> None:
        self.engine = engine

    def attach(self, container_id: str, **_kw: Any) -> Any:
        return self.engine.containers.made[container_id].stream()

    def pull(self, repo: str, tag: str = "latest", **_kw: Any) -> Any:
        layers = ("a1b2c3d4e5f6", "0f9e8d7c6b5a")
        for lid in layers:
            yield {"status": "Pulling fs layer", "id": lid}
        for step in range(1, 5):
            for lid in layers:
                time.sleep(0.05)
                yield {
                    "status": "Downloading",
                    "id": lid,
                    "progressDetail": {"current": step * 7_000_000, "total": 28_000_000},
                }
        for lid in layers:
            yield {"status": "Pull complete", "id": lid, "progressDetail": {}}
        self.engine.set_image_tags([*self.engine.image_tags(), f"{repo}:{tag}"])
        yield {"status": f"Status: Downloaded newer image for {repo}:{tag}"}
