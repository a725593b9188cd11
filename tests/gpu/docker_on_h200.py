"""gpuwizard's Docker steps on the project's GPU machine (not run by CI; skips without a GPU).

Starts Debian's dockerd (carried as files), with the CDI-mode stand-in runtime
(tests/gpu/standin-cdi-runtime) as `nvidia-container-runtime` on its PATH and no
`nvidia-container-runtime-hook`, then lets gpuwizard configure daemon.json, restart Docker and
run its GPU test with a GpuReport read from NVML. What only this machine shows: the real
`could not select device driver` error for `--gpus`, and the real nvidia-smi, off every PATH at
/usr/local/nvidia/bin, found by the retry and streamed live, showing the H200.

Usage (as root): python3 tests/gpu/docker_on_h200.py DOCKERBIN_TAR_XZ IMAGE_BUSYBOX [OUT]
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def gpu_report() -> dict | None:
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return None
    gpus = []
    for i in range(pynvml.nvmlDeviceGetCount()):
        h = pynvml.nvmlDeviceGetHandleByIndex(i)
        name = pynvml.nvmlDeviceGetName(h)
        uuid = pynvml.nvmlDeviceGetUUID(h)
        gpus.append(
            {
                "index": i,
                "name": name if isinstance(name, str) else name.decode(),
                "uuid": uuid if isinstance(uuid, str) else uuid.decode(),
            }
        )
    cuda = pynvml.nvmlSystemGetCudaDriverVersion_v2()
    drv = pynvml.nvmlSystemGetDriverVersion()
    smi = shutil.which("nvidia-smi") or "/usr/local/nvidia/bin/nvidia-smi"
    return {
        "gpus": gpus,
        "driver_version": drv if isinstance(drv, str) else drv.decode(),
        "cuda_version": f"{cuda // 1000}.{(cuda % 1000) // 10}",
        "nvidia_smi": smi,
        "ok": True,
    }


def image_tar(busybox: Path) -> bytes:
    """busybox, plus the C library nvidia-smi needs (ldd), as an image root."""
    files: dict[str, Path] = {"bin/busybox": busybox}
    smi = "/usr/local/nvidia/bin/nvidia-smi"
    out = subprocess.run(["ldd", smi], capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        lib = next((p for p in parts if p.startswith("/")), None)
        if lib and "/usr/local/nvidia" not in lib:
            files[lib.lstrip("/")] = Path(lib)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for arc, src in files.items():
            tar.add(os.path.realpath(src), arcname=arc)
        for name in ("sh", "echo", "true", "cat", "ls"):
            info = tarfile.TarInfo(f"bin/{name}")
            info.type = tarfile.SYMTYPE
            info.linkname = "busybox"
            tar.addfile(info)
    return buf.getvalue()


def main() -> int:
    report = gpu_report()
    if report is None:
        print("SKIP: no NVIDIA GPU with a working driver here")
        return 0
    dockerbin, busybox = Path(sys.argv[1]), Path(sys.argv[2])
    out_dir = Path(sys.argv[3]) if len(sys.argv) > 3 else None
    from tests.dockerd import Dockerd, cleanup

    base = Path("/tmp/gwdk")
    shutil.rmtree(base, ignore_errors=True)
    (base / "sys").mkdir(parents=True)
    subprocess.run(["tar", "-C", str(base / "sys"), "-xJf", str(dockerbin)], check=True)
    d = Dockerd(base, stand_ins=False)
    shutil.copy(REPO / "tests/gpu/standin-cdi-runtime", d.bin / "nvidia-container-runtime")
    text = (d.bin / "nvidia-container-runtime").read_text()
    (d.bin / "nvidia-container-runtime").write_text(
        text.replace("#!/usr/bin/env python3", f"#!{sys.executable}", 1)
    )
    spec = json.loads((base / "dockerd.json").read_text())
    spec["argv"] += ["--storage-driver", "vfs"]
    path = f"{d.bin}:{base}/sys/usr/sbin:{base}/sys/usr/bin:" + spec["env"]["PATH"]
    spec["env"]["PATH"] = path
    libs = dockerbin.parent / "lib"  # Debian's libdevmapper ... carried along; only the
    if libs.is_dir():  # sonames this (throwaway) machine lacks are added, none replaced
        for lib in libs.iterdir():
            target = Path("/usr/lib/x86_64-linux-gnu") / lib.name
            if not target.exists():
                shutil.copy(lib, target)
                print("added missing library", target)
    spec["argv"][0] = f"{base}/sys/usr/sbin/dockerd"
    (base / "dockerd.json").write_text(json.dumps(spec))
    d.daemon_json.write_text('{\n  "log-level": "info"\n}\n')
    os.environ["PATH"] = path + ":" + os.environ.get("PATH", "")
    print("GpuReport:", json.dumps(report))
    t0 = time.monotonic()
    d.start()
    print(f"dockerd started in {time.monotonic() - t0:.2f} s")
    try:
        return run(d, report, busybox, out_dir)
    finally:
        print("== dockerd log tail\n" + d.log_tail(8))
        cleanup(d)


def run(d, report, busybox: Path, out_dir) -> int:  # type: ignore[no-untyped-def]
    from gpuwizard.actions.base import ApplyContext
    from gpuwizard.actions.containers import RunContainer
    from gpuwizard.errors import WizardError
    from gpuwizard.events import LogLine, Progress
    from gpuwizard.host.system import Host
    from gpuwizard.journal import Journal
    from gpuwizard.steps.base import Simulation
    from gpuwizard.steps.gpu_test import GpuTestStep
    from tests.dockerd import plan_and_apply, wizard_options

    client = d.client()
    client.api.import_image_from_data(image_tar(busybox), repository="local/gpu", tag="1")
    opts = wizard_options(d, steps=("daemon-config", "restart"), test_image="local/gpu:1")
    t0 = time.monotonic()
    events: list = []
    the_plan, _ = plan_and_apply(opts, Path("/tmp/gwdk-state"), events)
    print(f"daemon-config + restart applied in {time.monotonic() - t0:.2f} s")
    for e in events:
        if isinstance(e, LogLine):
            print(f"  [{e.step}] {e.text}")
    print("runtimes now:", sorted(client.info()["Runtimes"]))
    sim = Simulation(facts={"gpu_report": report})
    sp = GpuTestStep().plan(Host(), opts, sim)
    print("gpu-test plan:", sp.state, sp.facts["commands"])
    run_ = Journal(Path("/tmp/gwdk-state")).start_run(["gpu"])
    t_start = time.monotonic()

    def sink(ev: object) -> None:
        if isinstance(ev, LogLine):
            print(f"  +{time.monotonic() - t_start:6.3f}s [{ev.stream}] {ev.text}")
        elif isinstance(ev, Progress):
            pass

    results = []
    for action in sp.actions:
        assert isinstance(action, RunContainer)
        action.step = "gpu-test"
        print(f"== {action.describe()}: {action.cli()}")
        t_start = time.monotonic()
        try:
            res = action.run(ApplyContext(Host(), run_, "gpu-test", sink))
            verdict = "PASS"
        except WizardError as exc:
            res = {}
            verdict = f"FAIL: {exc.cause} -> {exc.remedy}"
        took = time.monotonic() - t_start
        print(f"   verdict: {verdict} ({took:.2f} s)")
        results.append(
            {
                "cli": action.cli(),
                "verdict": verdict,
                "seconds": round(took, 2),
                "exit": res.get("exit"),
            }
        )
    if out_dir:
        (out_dir / "docker_on_h200.json").write_text(
            json.dumps({"report": report, "results": results}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
