"""The podman step against the real Podman 4.3 (bookworm), through the real CLI.

Podman reads CDI specs only from /etc/cdi and /var/run/cdi, so each test runs gpuwizard in a
private mount namespace (`unshare -m`) with an overlay on /etc: the stand-in spec is seen by
that gpuwizard and its Podman only. The spec is a STAND-IN (no GPU here): it names a stand-in
device node (a copy of /dev/null's numbers) and mounts a stand-in nvidia-smi script; Podman's
own CDI code does the rest. Podman gets private storage and the settings this VM needs
(cgroupfs, file events, ulimits it may set, runc) through CONTAINERS_CONF and
CONTAINERS_STORAGE_CONF.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gpuwizard.host.engines import cdi_max_version, docker_is_podman, summarize_spec
from gpuwizard.host.system import Host

pytestmark = pytest.mark.skipif(
    not shutil.which("podman") or os.geteuid() != 0, reason="needs root and podman"
)
BUSYBOX = "/bin/busybox"


class PodmanBed:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.env = dict(os.environ)
        conf = base / "containers.conf"
        conf.write_text(
            "[containers]\n"
            'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'
            "[engine]\n"
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            'runtime = "runc"\n'
        )
        storage = base / "storage.conf"
        storage.write_text(
            f'[storage]\ndriver = "vfs"\ngraphroot = "{base}/graph"\nrunroot = "{base}/run"\n'
        )
        self.env["CONTAINERS_CONF"] = str(conf)
        self.env["CONTAINERS_STORAGE_CONF"] = str(storage)
        img = base / "img"
        (img / "bin").mkdir(parents=True)
        shutil.copy(BUSYBOX, img / "bin" / "busybox")
        for name in ("sh", "echo", "cat", "ls", "true"):
            os.symlink("busybox", img / "bin" / name)
        tar = subprocess.run(["tar", "-C", str(img), "-c", "."], capture_output=True, check=True)  # noqa: S603,S607
        subprocess.run(  # noqa: S603,S607
            ["podman", "import", "-", "local/bb:1"],
            input=tar.stdout,
            env=self.env,
            capture_output=True,
            check=True,
        )
        # the stand-ins: a device node and an nvidia-smi, named as such
        self.node = base / "stand-in-nvidia0"
        os.mknod(self.node, 0o666 | 0o020000, os.makedev(1, 3))
        os.chmod(self.node, 0o666)
        self.smi = base / "stand-in-nvidia-smi"
        self.smi.write_text('#!/bin/sh\necho "GPU 0: Stand-in GPU (UUID: GPU-stand-in-0)"\n')
        os.chmod(self.smi, 0o755)

    def spec(self, version: str = "0.5.0") -> str:
        edits = {"deviceNodes": [{"path": "/dev/nvidia0", "hostPath": str(self.node)}]}
        return json.dumps(
            {
                "cdiVersion": version,
                "kind": "nvidia.com/gpu",
                "devices": [
                    {"name": "0", "containerEdits": edits},
                    {"name": "all", "containerEdits": edits},
                ],
                "containerEdits": {
                    "mounts": [
                        {
                            "hostPath": str(self.smi),
                            "containerPath": "/usr/bin/nvidia-smi",
                            "options": ["ro", "bind"],
                        }
                    ]
                },
            }
        )

    def gpuwizard(self, args: list[str], spec: str | None) -> subprocess.CompletedProcess[str]:
        """gpuwizard in a mount namespace of its own, /etc overlaid, the spec in /etc/cdi."""
        import tempfile

        layer = Path(tempfile.mkdtemp(dir=self.base, prefix="etc-"))  # a fresh /etc each time
        upper, work = layer / "upper", layer / "work"
        upper.mkdir()
        work.mkdir()
        (self.base / "spec.json").write_text(spec or "")
        put = (
            f"mkdir -p /etc/cdi && cp {self.base}/spec.json /etc/cdi/stand-in-nvidia.json && "
            if spec
            else ""
        )
        script = (
            f"mount -t overlay overlay -o lowerdir=/etc,upperdir={upper},"
            f"workdir={work} /etc && {put}exec "
            + shlex.join([sys.executable, "-m", "gpuwizard", *args])
        )
        return subprocess.run(  # noqa: S603
            ["unshare", "-m", "sh", "-c", script],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
        )


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> PodmanBed:
    return PodmanBed(tmp_path_factory.mktemp("podman"))


def test_podman_versions_and_their_cdi_schema() -> None:
    assert cdi_max_version("4.3.1") == "0.5.0"
    assert cdi_max_version("5.4.2") > "0.5.0"
    s = summarize_spec(
        "/etc/cdi/x.json",
        b'{"cdiVersion":"0.5.0","kind":"nvidia.com/gpu",'
        b'"devices":[{"name":"all","containerEdits":{"deviceNodes":'
        b'[{"path":"/dev/nvidia0"}]}}]}',
    )
    assert (s.cdi_version, s.kind, s.devices, s.device_nodes) == (
        "0.5.0",
        "nvidia.com/gpu",
        ("all",),
        ("/dev/nvidia0",),
    )


def test_the_podman_docker_shim_is_told_apart(tmp_path: Path) -> None:
    # podman-docker's /usr/bin/docker is a shell script that execs podman
    (tmp_path / "usr/bin").mkdir(parents=True)
    shim = tmp_path / "usr/bin/docker"
    shim.write_text(
        '#!/bin/sh\n[ -e /etc/containers/nodocker ] || echo "Emulate Docker CLI '
        'using podman."\nexec /usr/bin/podman "$@"\n'
    )
    shim.chmod(0o755)
    assert docker_is_podman(Host(tmp_path))
    shim.write_bytes(b"\x7fELF" + b"\0" * 8192)
    assert not docker_is_podman(Host(tmp_path))


def test_status_json_lists_podman_with_its_version(bed: PodmanBed) -> None:
    res = bed.gpuwizard(["status", "--json"], None)
    assert res.returncode == 0, res.stderr
    engines = json.loads(res.stdout)["engines"]
    assert engines["podman"]["installed"] is True
    assert engines["podman"]["version"].startswith("4.3")
    assert engines["podman"]["cdi_max_version"] == "0.5.0"
    assert "podman" in engines["present"]
    text = bed.gpuwizard(["status"], None)
    assert "Engines: " in text.stdout and "Podman 4.3.1" in text.stdout


def test_apply_runs_podman_with_the_cdi_device_and_reaches_the_stand_in_gpu(
    bed: PodmanBed, tmp_path: Path
) -> None:
    args = ["--step", "podman", "--podman-image", "local/bb:1", "--state-dir", str(tmp_path)]
    plan = bed.gpuwizard(["plan", *args], bed.spec())
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "nvidia.com/gpu=all" in plan.stdout
    assert "stand-in-nvidia.json" in plan.stdout
    res = bed.gpuwizard(["apply", *args, "--yes"], bed.spec())
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout + res.stderr
    assert "--device nvidia.com/gpu=all" in out
    assert "GPU 0: Stand-in GPU" in out
    assert "Podman reaches 1 GPU(s) through CDI" in out


def test_a_spec_newer_than_podman_reads_is_blocked_with_the_versions_named(
    bed: PodmanBed, tmp_path: Path
) -> None:
    args = ["--step", "podman", "--podman-image", "local/bb:1", "--state-dir", str(tmp_path)]
    plan = bed.gpuwizard(["plan", *args, "--detailed-exitcode"], bed.spec("0.6.0"))
    assert plan.returncode == 1, plan.stdout + plan.stderr
    assert "is CDI 0.6.0; Podman 4.3.1 reads up to 0.5.0" in plan.stdout
    # and Podman itself agrees: it cannot resolve the device from that spec
    res = bed.gpuwizard(["apply", *args, "--yes"], bed.spec("0.6.0"))
    assert res.returncode != 0


def test_without_a_spec_podman_is_blocked_with_the_folders_it_reads(
    bed: PodmanBed, tmp_path: Path
) -> None:
    res = bed.gpuwizard(["plan", "--step", "podman", "--state-dir", str(tmp_path)], None)
    assert "no CDI spec for nvidia.com/gpu in /etc/cdi or /var/run/cdi" in res.stdout


def test_podman_waits_for_the_driver_but_not_for_dockers_steps(tmp_path: Path) -> None:
    from gpuwizard import wizard
    from gpuwizard.options import Options
    from gpuwizard.steps.base import BLOCKED, Simulation, Step, StepPlan
    from gpuwizard.steps.podman import PodmanStep

    # a root with Podman and a spec (no Docker): what a Podman-only host has
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/bin/podman").write_bytes(b"\x7fELF")
    (tmp_path / "usr/bin/podman").chmod(0o755)
    (tmp_path / "etc/cdi").mkdir(parents=True)
    (tmp_path / "etc/cdi/stand-in-nvidia.json").write_text(
        '{"cdiVersion": "0.5.0", "kind": "nvidia.com/gpu", "devices": [{"name": "all"}]}'
    )
    (tmp_path / "etc/os-release").write_text("ID=debian\n")

    def blocked(step_name: str) -> Step:
        class Blocked(Step):
            name = step_name
            title = step_name

            def plan(self, host: Host, options: Options, sim: Simulation) -> StepPlan:
                return self.make(BLOCKED, reason=f"{step_name} is blocked here")

        return Blocked()

    host = Host(tmp_path)
    plan = wizard.plan(host, Options(), steps=[blocked("daemon-config"), PodmanStep()])
    assert plan.step("podman").state == "pending", plan.step("podman").reason
    plan = wizard.plan(host, Options(), steps=[blocked("driver"), PodmanStep()])
    assert plan.step("podman").reason == "waits for driver: driver is blocked here"


def test_rootless_users_are_warned_of_nodes_and_specs_they_cannot_open(tmp_path: Path) -> None:
    from gpuwizard import wizard
    from gpuwizard.options import Options
    from gpuwizard.steps.podman import PodmanStep

    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/bin/podman").write_bytes(b"\x7fELF")
    (tmp_path / "usr/bin/podman").chmod(0o755)
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev/nvidia0").write_bytes(b"")  # stands for the node: only its mode matters
    (tmp_path / "dev/nvidia0").chmod(0o660)
    (tmp_path / "etc/cdi").mkdir(parents=True)
    spec = tmp_path / "etc/cdi/stand-in-nvidia.json"
    spec.write_text(
        '{"cdiVersion": "0.5.0", "kind": "nvidia.com/gpu", "devices": [{"name": "all", '
        '"containerEdits": {"deviceNodes": [{"path": "/dev/nvidia0"}]}}]}'
    )
    spec.chmod(0o600)
    (tmp_path / "etc/os-release").write_text("ID=debian\n")
    sp = wizard.plan(Host(tmp_path), Options(), steps=[PodmanStep()]).step("podman")
    text = "\n".join(sp.warnings)
    assert "/dev/nvidia0 is mode 0o660: rootless Podman users cannot open it" in text
    assert "stand-in-nvidia.json is not world-readable" in text
    assert "driver: cdi" in sp.facts["compose"]
