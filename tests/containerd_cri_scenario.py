"""One containerd version, CDI through the CRI API, before gpuwizard, after apply, after
rollback. Run by tests/test_containerd_cdi.py as

    unshare -m python tests/containerd_cri_scenario.py VERSION OUT.json

in a mount namespace of its own: /etc is overlaid so the STAND-IN CDI spec in /etc/cdi is seen
by this containerd only. The spec names a stand-in device node (/dev/null's numbers) and mounts
a stand-in nvidia-smi; containerd's own CDI code does the rest.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from containerd_daemon import Containerd  # noqa: E402
from cri_client import image_tar, run_with_cdi  # noqa: E402

from tests.docker_versions import DockerVersions  # noqa: E402

DOCKER_OF = {"1.7": "26.1", "2.1": "28.5"}  # the Docker release that ships that containerd


def _overlay_etc(base: Path) -> None:
    upper, work = base / "etc-upper", base / "etc-work"
    upper.mkdir()
    work.mkdir()
    subprocess.run(  # noqa: S603,S607
        ["mount", "--make-rprivate", "/"], check=True
    )
    subprocess.run(  # noqa: S603,S607
        [
            "mount",
            "-t",
            "overlay",
            "overlay",
            "-o",
            f"lowerdir=/etc,upperdir={upper},workdir={work}",
            "/etc",
        ],
        check=True,
    )


def _stand_in_spec(base: Path) -> None:
    node = base / "stand-in-nvidia0"
    os.mknod(node, 0o666 | 0o020000, os.makedev(1, 3))
    smi = base / "stand-in-nvidia-smi"
    smi.write_text('#!/bin/sh\necho "GPU 0: Stand-in GPU (UUID: GPU-stand-in-0)"\n')
    smi.chmod(0o755)
    edits = {"deviceNodes": [{"path": "/dev/nvidia0", "hostPath": str(node)}]}
    spec = {
        "cdiVersion": "0.5.0",
        "kind": "nvidia.com/gpu",
        "devices": [
            {"name": "0", "containerEdits": edits},
            {"name": "all", "containerEdits": edits},
        ],
        "containerEdits": {
            "mounts": [
                {
                    "hostPath": str(smi),
                    "containerPath": "/usr/bin/nvidia-smi",
                    "options": ["ro", "bind"],
                }
            ]
        },
    }
    Path("/etc/cdi").mkdir(exist_ok=True)
    Path("/etc/cdi/stand-in-nvidia.json").write_text(json.dumps(spec))


def main(version: str, out_path: str) -> int:
    result: dict[str, Any] = {"version": version}
    base = Path(tempfile.mkdtemp(prefix="gwcri-", dir="/tmp"))
    ctd = None
    try:
        _overlay_etc(base)
        _stand_in_spec(base)
        bins = DockerVersions().binaries(DOCKER_OF[version])
        assert bins.bin is not None
        stand_ins = HERE / "stand_ins"
        ctd = Containerd(
            str(bins.bin / "containerd"), str(bins.bin / "ctr"), (str(bins.bin), str(stand_ins))
        )
        v = 3 if version.startswith("2") else 2
        extra = (
            '  sandbox_image = "local/pause:1"\n'
            if v == 2
            else '\n[plugins."io.containerd.cri.v1.images".pinned_images]\n'
            '  sandbox = "local/pause:1"\n'
        )
        original = ctd.base_config(v, extra).encode()
        ctd.config.write_bytes(original)
        ctd.start()
        said = subprocess.run([ctd.binary, "--version"], capture_output=True, text=True)  # noqa: S603
        result["said"] = said.stdout.strip()
        for tag, cmd in (("local/pause:1", ["/bin/sleep", "100000"]), ("local/bb:1", ["/bin/sh"])):
            tar = base / (tag.replace("/", "_") + ".tar")
            image_tar(tar, tag, cmd)
            subprocess.run(  # noqa: S603
                [
                    str(bins.bin / "ctr"),
                    "--address",
                    str(ctd.sock),
                    "-n",
                    "k8s.io",
                    "images",
                    "import",
                    str(tar),
                ],
                check=True,
                capture_output=True,
            )

        def cri(label: str, handler: str = "") -> None:
            try:
                result[label] = run_with_cdi(
                    str(ctd.sock),
                    "local/bb:1",
                    ["/usr/bin/nvidia-smi", "-L"],
                    "nvidia.com/gpu=all",
                    base / f"logs-{label}",
                    handler,
                )
            except Exception as exc:  # a gRPC error is a result here, not a crash
                result[label] = {"error": str(exc)[-800:]}

        cri("before")
        cri("before_nvidia_runtime", "nvidia")  # no such runtime yet
        env = dict(os.environ)
        env["PATH"] = f"{bins.bin}:{stand_ins}:{env.get('PATH', '/usr/bin:/bin')}"
        state = base / "state-dir"
        args = [
            "--step",
            "containerd",
            "--step",
            "containerd-restart",
            "--containerd",
            "--containerd-config",
            str(ctd.config),
            "--containerd-socket",
            str(ctd.sock),
            "--containerd-restart-command",
            ctd.restart_command(),
            "--containerd-wait",
            "30",
            "--state-dir",
            str(state),
        ]
        gw = [sys.executable, "-m", "gpuwizard"]
        plan = subprocess.run([*gw, "plan", *args], capture_output=True, text=True, env=env)  # noqa: S603
        result["plan"] = plan.stdout + plan.stderr
        res = subprocess.run(  # noqa: S603
            [*gw, "apply", *args, "--yes", "--no-auto-revert"],
            capture_output=True,
            text=True,
            env=env,
        )
        result["apply_rc"] = res.returncode
        result["apply"] = res.stdout + res.stderr
        dropin = ctd.etc / "conf.d" / "99-nvidia.toml"
        result["dropin"] = dropin.read_text() if dropin.exists() else None
        cri("after")
        cri("after_nvidia_runtime", "nvidia")  # the runtime entry gpuwizard added
        back = subprocess.run(  # noqa: S603
            [*gw, "rollback", "--state-dir", str(state), "--yes"],
            capture_output=True,
            text=True,
            env=env,
        )
        result["rollback_rc"] = back.returncode
        result["rollback"] = back.stdout + back.stderr
        result["config_restored"] = ctd.config.read_bytes() == original
        result["dropin_after_rollback"] = dropin.exists()
        cri("rolled_back")
    except Exception:
        result["crash"] = traceback.format_exc()
    finally:
        if ctd is not None:
            result["log_tail"] = (
                ctd.log.read_text(errors="replace")[-1500:] if ctd.log.exists() else ""
            )
            ctd.stop()
            subprocess.run(["umount", "-R", str(ctd.base / "state")], capture_output=True)  # noqa: S603,S607
            shutil.rmtree(ctd.base, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)
        Path(out_path).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
