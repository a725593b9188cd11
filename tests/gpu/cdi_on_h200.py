"""gpuwizard's whole flow on the project's GPU machine, for real, through CDI (not run by CI).

What it needs, passed in (none of it is in this repository): a signed flat apt repository of
the four NVIDIA Container Toolkit packages (REPO: `Packages`, `InRelease`, `gpgkey`,
`fingerprint`), a tarball of Debian's Docker binaries (DOCKER_TXZ: bin/ and the shared
libraries dockerd needs in lib/), and a static busybox. It then:

1. records the host's state (dpkg's package list, /etc/apt, /usr/share/keyrings, /etc/cdi,
   /var/run/cdi, /etc/nvidia-container-runtime, daemon.json),
2. serves the repository on 127.0.0.1, starts Debian's dockerd (private data root, vfs,
   --iptables=false --bridge=none) with /usr/local/nvidia/bin on its PATH, and imports a test
   image (busybox + the C library nvidia-smi needs),
3. runs `gpuwizard apply --yes` (every step: driver, repository, packages, cdi, daemon-config,
   restart, gpu-test), then `gpuwizard snippet run`,
4. runs `gpuwizard rollback --all --yes` and compares the host with step 1.

Usage (root): python3 tests/gpu/cdi_on_h200.py REPO DOCKER_TXZ BUSYBOX [OUT]
Exit 0 only when the GPU test passed through a route and rollback left the host as it was.
Skips cleanly (exit 0, "SKIP") without an NVIDIA GPU.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from tests.gpu.docker_on_h200 import gpu_report, image_tar  # noqa: E402

WATCHED = (
    "/etc/apt",
    "/usr/share/keyrings",
    "/etc/cdi",
    "/var/run/cdi",
    "/etc/nvidia-container-runtime",
    "/etc/nvidia-container-toolkit",
)
BASE = Path("/tmp/gwcdi")


def snapshot(daemon_json: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for top in (*WATCHED, str(daemon_json)):
        p = Path(top)
        files = [p] if p.is_file() else sorted(x for x in p.rglob("*") if x.is_file())
        for f in files:
            if (
                "/var/cache/" in str(f)
                or str(f).startswith("/etc/apt/apt.conf.d/.")
                or (f.name.endswith((".bin", ".lock")))
            ):
                continue
            try:
                out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()[:16]
            except OSError:
                out[str(f)] = "unreadable"
    pk = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package}=${Version} ${Status}\n"],
        capture_output=True,
        text=True,
    ).stdout
    for line in pk.splitlines():
        name, _, rest = line.partition("=")
        if "not-installed" not in rest and "config-files" not in rest:
            out["pkg:" + name] = rest
    return out


def sh(argv: list[str], env: dict[str, str], title: str) -> int:
    print(f"\n===== $ {' '.join(argv)}   # {title}", flush=True)
    t0 = time.monotonic()
    res = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(res.stdout, end="")
    print(f"===== exit {res.returncode} in {time.monotonic() - t0:.1f} s", flush=True)
    return res.returncode


def main() -> int:
    report = gpu_report()
    if report is None:
        print("SKIP: no NVIDIA GPU with a working driver here")
        return 0
    repo, docker_txz, busybox = (Path(a).resolve() for a in sys.argv[1:4])
    out_dir = Path(sys.argv[4]) if len(sys.argv) > 4 else None
    from tests.docker_versions import DockerBinaries
    from tests.dockerd import Dockerd, cleanup

    shutil.rmtree(BASE, ignore_errors=True)
    (BASE / "sys").mkdir(parents=True)
    subprocess.run(["tar", "-C", str(BASE / "sys"), "-xJf", str(docker_txz)], check=True)
    for lib in (BASE / "sys" / "lib").iterdir():  # only sonames this machine lacks
        target = Path("/usr/lib/x86_64-linux-gnu") / lib.name
        if not target.exists():
            shutil.copy(lib, target)
            print("added missing library", target)
    subprocess.run(["ldconfig"], check=False)
    bins = DockerBinaries("28.5", BASE / "sys" / "bin", {})
    d = Dockerd(BASE / "dk", stand_ins=False, engine=bins)
    spec_path = BASE / "dk" / "dockerd.json"
    import json

    spec = json.loads(spec_path.read_text())
    spec["argv"] += ["--storage-driver", "vfs"]
    path = f"{bins.bin}:/usr/local/nvidia/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"
    path += ":/sbin:/bin"
    spec["env"]["PATH"] = path
    spec_path.write_text(json.dumps(spec))
    d.daemon_json.write_text('{\n  "log-level": "info"\n}\n')
    before = snapshot(d.daemon_json)
    env = {**os.environ, "PATH": path, "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("PYTHONPATH", None)
    server = (
        subprocess.Popen(
            [
                sys.executable,
                "-u",
                "-m",
                "http.server",
                "0",
                "--bind",
                "127.0.0.1",
                "-d",
                str(BASE / "www"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if _lay_out(repo)
        else None
    )
    assert server is not None and server.stdout is not None
    port = server.stdout.readline().split(" port ")[1].split()[0]
    url = f"http://127.0.0.1:{port}"
    print("GpuReport:", json.dumps(report))
    print("mirror:", url, "fingerprint", (repo / "fingerprint").read_text().strip())
    ok = False
    try:
        d.start()
        print("dockerd:", d.docker("version", "--format", "{{.Server.Version}}").stdout.strip())
        d.client().api.import_image_from_data(image_tar(busybox), repository="local/gpu", tag="1")
        common = [
            "--docker-host",
            d.docker_host,
            "--daemon-json",
            str(d.daemon_json),
            "--restart-method",
            "command",
            "--docker-restart-command",
            f"{sys.executable} {REPO}/tests/dockerd.py restart {d.base}",
            "--state-dir",
            str(BASE / "state"),
        ]
        gw = [sys.executable, "-m", "gpuwizard"]
        apply_args = [
            "--repo-url",
            f"{url}/stable",
            "--key-url",
            f"{url}/gpgkey",
            "--key-fingerprint",
            (repo / "fingerprint").read_text().strip(),
            "--toolkit-version",
            "1.20.0-1",
            "--test-image",
            "local/gpu:1",
            "--skip-cuda-test",
        ]
        sh([*gw, "plan", *common, *apply_args], env, "preview")
        rc_apply = sh([*gw, "apply", "--yes", *common, *apply_args], env, "the whole flow")
        sh([*gw, "snippet", "run", *common, "--test-image", "local/gpu:1"], env, "snippet")
        sh(["cat", "/etc/cdi/nvidia.yaml"], env, "the spec gpuwizard wrote (head)")
        rc_rb = sh([*gw, "rollback", "--all", "--yes", *common], env, "undo everything")
        after = snapshot(d.daemon_json)
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        print("\n===== host after rollback vs before:", "identical" if not changed else "")
        for k in changed:
            print(f"  {k}: {before.get(k, '(absent)')} -> {after.get(k, '(absent)')}")
        ok = rc_apply == 0 and rc_rb == 0 and not changed
    finally:
        print("== dockerd log tail\n" + d.log_tail(6))
        cleanup(d)
        if server is not None:
            server.terminate()
    if out_dir:
        (out_dir / "cdi_on_h200.ok").write_text("ok\n" if ok else "not ok\n")
    print("RESULT:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


def _lay_out(repo: Path) -> bool:
    """The mirror as gpuwizard's repository options expect it: URL/stable/deb/amd64/ + gpgkey."""
    www = BASE / "www"
    (www / "stable" / "deb").mkdir(parents=True, exist_ok=True)
    shutil.copytree(repo, www / "stable" / "deb" / "amd64", dirs_exist_ok=True)
    shutil.copy(repo / "gpgkey", www / "gpgkey")
    return True


if __name__ == "__main__":
    sys.exit(main())
