"""A small CRI client (test suite only): containerd's CDI path is reachable only through the
CRI API (Debian's `ctr` has no --cdi-device).

The API is the published `api.proto` from Debian's golang-k8s-cri-api-dev (sid), downloaded
with the private apt of tests/docker_versions.py and compiled with grpcio-tools (the `test`
extra) into /var/tmp/gpuwizard-test-cache/cri-api-<key>/, built in a temporary folder and put
in place with os.replace under a lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from tests.docker_versions import CACHE, MIRROR, DockerVersions  # noqa: E402

PACKAGE = "golang-k8s-cri-api-dev/sid"
PROTO = "usr/share/gocode/src/k8s.io/cri-api/pkg/apis/runtime/v1/api.proto"
RECIPE = 1


def _key() -> str:
    return hashlib.sha256(json.dumps([RECIPE, MIRROR, PACKAGE]).encode()).hexdigest()[:12]


def api_folder() -> Path:
    """The compiled api_pb2 / api_pb2_grpc modules (cached)."""
    final = CACHE / f"cri-api-{_key()}"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "cri-api.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / "api_pb2_grpc.py").exists():
            return final
        work = Path(tempfile.mkdtemp(prefix=".cri-api-", dir=CACHE))
        dv = DockerVersions()
        try:
            debs = work / "debs"
            debs.mkdir()
            (deb,) = dv._private_apt().download([PACKAGE], debs)
            subprocess.run(["dpkg-deb", "-x", str(deb), str(work / "tree")], check=True)  # noqa: S603,S607
            out = work / "out"
            out.mkdir()
            shutil.copy(work / "tree" / PROTO, out / "api.proto")
            subprocess.run(  # noqa: S603
                [
                    sys.executable,
                    "-m",
                    "grpc_tools.protoc",
                    f"-I{out}",
                    f"--python_out={out}",
                    f"--grpc_python_out={out}",
                    str(out / "api.proto"),
                ],
                check=True,
            )
            os.replace(out, final)
        finally:
            dv.close()
            shutil.rmtree(work, ignore_errors=True)
    return final


def modules() -> tuple[Any, Any]:
    folder = str(api_folder())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    import api_pb2
    import api_pb2_grpc

    return api_pb2, api_pb2_grpc


def image_tar(path: Path, tag: str, cmd: list[str], busybox: str = "/bin/busybox") -> None:
    """A `docker save`-format image of busybox (for `ctr images import`)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        (root / "bin").mkdir(parents=True)
        shutil.copy(busybox, root / "bin" / "busybox")
        for name in ("sh", "sleep", "echo", "cat", "ls", "true"):
            os.symlink("busybox", root / "bin" / name)
        layer = Path(tmp) / "layer.tar"
        with tarfile.open(layer, "w") as t:
            t.add(root, arcname=".")
        diff = hashlib.sha256(layer.read_bytes()).hexdigest()
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Cmd": cmd, "Env": ["PATH=/usr/bin:/bin"]},
                "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff}"]},
            }
        ).encode()
        csha = hashlib.sha256(config).hexdigest()
        (Path(tmp) / f"{csha}.json").write_bytes(config)
        manifest = [{"Config": f"{csha}.json", "RepoTags": [tag], "Layers": ["layer.tar"]}]
        (Path(tmp) / "manifest.json").write_text(json.dumps(manifest))
        with tarfile.open(path, "w") as t:
            for name in ("manifest.json", f"{csha}.json", "layer.tar"):
                t.add(Path(tmp) / name, arcname=name)


def run_with_cdi(
    socket: str, image: str, command: list[str], device: str, logs: Path, handler: str = ""
) -> dict[str, Any]:
    """A host-network pod and one container with a CDI device; its exit code and output."""
    import grpc

    pb, rpc = modules()
    channel = grpc.insecure_channel(f"unix://{socket}")
    rt = rpc.RuntimeServiceStub(channel)
    uid = f"gw-{os.getpid()}-{time.monotonic_ns()}"
    logs.mkdir(parents=True, exist_ok=True)
    sandbox = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=uid, uid=uid, namespace="gpuwizard-test"),
        log_directory=str(logs),
        linux=pb.LinuxPodSandboxConfig(
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.NODE)
            )
        ),
    )
    pod = rt.RunPodSandbox(
        pb.RunPodSandboxRequest(config=sandbox, runtime_handler=handler), timeout=60
    ).pod_sandbox_id
    try:
        config = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name="gpu"),
            image=pb.ImageSpec(image=image),
            command=command,
            log_path="gpu.log",
            CDI_devices=[pb.CDIDevice(name=device)],
        )
        cid = rt.CreateContainer(
            pb.CreateContainerRequest(pod_sandbox_id=pod, config=config, sandbox_config=sandbox),
            timeout=60,
        ).container_id
        rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)
        end = time.monotonic() + 30
        while True:
            st = rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid), timeout=10).status
            if st.state == pb.CONTAINER_EXITED or time.monotonic() > end:
                break
            time.sleep(0.1)
        text = (logs / "gpu.log").read_text(errors="replace") if (logs / "gpu.log").exists() else ""
        # CRI log lines: "<time> <stream> <F|P> <text>"
        out = "\n".join(line.split(" ", 3)[-1] for line in text.splitlines())
        return {"exit_code": st.exit_code, "output": out}
    finally:
        rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=60)
        rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=60)
        channel.close()
