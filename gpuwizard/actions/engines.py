"""The other engines' actions: Podman's GPU test (a check), containerd's guarded restart,
and the merge-back of the one `imports` line gpuwizard adds to containerd's config.toml.

Here, not in steps/, because rollback rebuilds an action from the journal alone: every kind
must be known wherever a rollback runs.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from gpuwizard.actions.base import Action, ApplyContext, Diff, register
from gpuwizard.actions.files import MERGE_BACK
from gpuwizard.errors import WizardError
from gpuwizard.host.system import Host

DEFAULT_IMAGE = "docker.io/library/ubuntu:24.04"
IMPORTS_TAG = "  # gpuwizard: the NVIDIA drop-in"


def _merge_back_imports(current: bytes, before: Optional[bytes], after: bytes) -> Optional[bytes]:
    """Someone edited config.toml since: take out only gpuwizard's imports line (or entry)."""
    if before is None:
        return None
    ours = [x for x in after.decode().splitlines(keepends=True) if IMPORTS_TAG in x]
    if not ours:
        return None
    theirs = [
        x for x in before.decode().splitlines(keepends=True) if re.match(r"\s*imports\s*=", x)
    ]
    text = current.decode()
    if ours[0] not in text:
        return None
    return text.replace(ours[0], theirs[0] if theirs else "", 1).encode()


MERGE_BACK["containerd-imports"] = _merge_back_imports


@register
@dataclass
class PodmanGpuTest(Action):
    """`podman run --rm --device nvidia.com/gpu=all IMAGE nvidia-smi -L`: a check."""

    kind = "podman-gpu-test"
    mutates = False

    podman: str = "podman"
    image: str = DEFAULT_IMAGE
    device: str = "nvidia.com/gpu=all"
    command: list[str] = field(default_factory=lambda: ["nvidia-smi", "-L"])
    timeout: float = 120.0

    def argv(self) -> list[str]:
        return [self.podman, "run", "--rm", "--device", self.device, self.image, *self.command]

    def describe(self) -> str:
        return "test: " + " ".join(self.argv()[:1] + ["run", "--rm", "--device", self.device])

    def params(self) -> dict[str, Any]:
        return {"argv": self.argv()}

    def preview(self, host: Host) -> list[Diff]:
        return [Diff("podman", None, " ".join(self.argv()), "container", "a GPU test container")]

    def needed(self, host: Host) -> bool:
        return True

    def prepare(self, ctx: ApplyContext) -> dict[str, Any]:
        return {}

    def apply(self, ctx: ApplyContext) -> dict[str, Any]:
        ctx.log("$ " + " ".join(self.argv()))
        res = ctx.host.run(
            self.argv(), inside=False, check=False, on_line=ctx.line_logger(), timeout=self.timeout
        )
        if res.returncode != 0:
            text = res.stdout + res.stderr
            raise WizardError(
                f"Podman's GPU test failed (exit {res.returncode})",
                _remedy(text),
                text.strip()[-2000:],
            )
        lines = [x for x in res.stdout.splitlines() if x.startswith("GPU ")]
        if not lines:
            raise WizardError(
                "Podman's GPU test ran but listed no GPU",
                "Check the CDI spec's mounts: `nvidia-smi -L` inside printed nothing.",
                res.stdout.strip()[-2000:],
            )
        ctx.log(f"Podman reaches {len(lines)} GPU(s) through CDI: {lines[0]}")
        return {"gpus": lines}

    @classmethod
    def undo(cls, ctx: ApplyContext, undo: dict[str, Any], result: Optional[dict[str, Any]]) -> str:
        return "a test container (--rm): nothing to undo"


def _remedy(text: str) -> str:
    if "unresolvable CDI devices" in text:
        return (
            "Podman found no such CDI device: check `ls /etc/cdi /var/run/cdi`, the spec's "
            "cdiVersion (Podman 4.x reads up to 0.5.0), and that it defines the device."
        )
    if "executable file not found" in text:
        return "The image lacks nvidia-smi and the spec does not mount it: regenerate the spec."
    return "Read Podman's output above; `podman info` shows its runtime and storage."


def _ctr(host: Host, socket: str, *args: str, timeout: float = 10.0) -> Any:
    ctr = host.which("ctr") or "ctr"
    return host.run([ctr, "--address", socket, *args], inside=False, check=False, timeout=timeout)


def validate(host: Host, containerd: str, config: str) -> str:
    """`containerd --config F config dump`: the merged configuration, or the parse error."""
    res = host.run(
        [containerd, "--config", config, "config", "dump"], inside=False, check=False, timeout=30
    )
    if res.returncode != 0:
        raise WizardError(
            f"containerd rejects {config} (`containerd config dump` exited {res.returncode})",
            "The configuration is restored; containerd was not restarted on the broken file.",
            (res.stderr or res.stdout).strip()[-2000:],
        )
    return res.stdout


@register
@dataclass
class RestartContainerd(Action):
    """Validate, restart containerd once, wait for its socket, verify it loaded the drop-in."""

    kind = "restart-containerd"
    disruptive = True

    containerd: str = "containerd"
    config: str = "/etc/containerd/config.toml"
    socket: str = "/run/containerd/containerd.sock"
    service: str = "containerd"
    method: str = "systemd"
    command: Optional[list[str]] = None
    wait: float = 60.0
    expect_runtime: bool = True
    expect_cdi: bool = True
    validate_config: bool = True  # False for k3s/RKE2: they generate config.toml at start
    reason: str = ""

    def argv(self) -> list[str]:
        if self.method == "command":
            if not self.command:
                raise WizardError(
                    "No way to restart containerd on this host was found",
                    "Pass --containerd-restart-command with the command that restarts it.",
                )
            return list(self.command)
        if self.method == "service":
            return ["service", self.service, "restart"]
        return ["systemctl", "restart", self.service]

    def describe(self) -> str:
        return self.reason or f"restart containerd ({' '.join(self.argv())})"

    def params(self) -> dict[str, Any]:
        return {"argv": self.argv(), "config": self.config, "socket": self.socket}

    def preview(self, host: Host) -> list[Diff]:
        return [Diff(f"{self.service}.service", "running", "restarted", "service", self.describe())]

    def needed(self, host: Host) -> bool:
        return True

    def prepare(self, ctx: ApplyContext) -> dict[str, Any]:
        # validate before the intent record: a file containerd rejects is never restarted on,
        # and the running containerd is left alone (no restart to undo)
        if not self.validate_config:
            return self._undo_record()
        dump = validate(ctx.host, self.containerd, self.config)
        missing = []
        if self.expect_cdi and not re.search(r"^\s*enable_cdi = true", dump, re.M):
            missing.append("enable_cdi = true")
        if self.expect_runtime and not re.search(r"\.runtimes\.nvidia\]", dump):
            missing.append("runtimes.nvidia")
        if missing:
            raise WizardError(
                f"containerd does not read the drop-in: `config dump` of {self.config} lacks "
                + " and ".join(missing),
                "Check the imports line in config.toml; the files are restored.",
            )
        ctx.log(f"containerd accepts {self.config} (config dump has the drop-in's settings)")
        return self._undo_record()

    def _undo_record(self) -> dict[str, Any]:
        return {
            "argv": self.argv(),
            "method": self.method,
            "service": self.service,
            "socket": self.socket,
            "wait": self.wait,
        }

    def apply(self, ctx: ApplyContext) -> dict[str, Any]:
        start = time.monotonic()
        _restart(ctx, self.argv(), self.socket, self.wait)
        return {"seconds": round(time.monotonic() - start, 2)}

    def verify(self, ctx: ApplyContext) -> None:
        res = _ctr(ctx.host, self.socket, "plugins", "ls")
        cri = [
            x.split()
            for x in res.stdout.splitlines()
            if len(x.split()) >= 3
            and (x.split()[1] == "cri" or x.split()[0].startswith("io.containerd.cri."))
        ]
        broken = [x for x in cri if x[-1] != "ok"]
        if res.returncode != 0 or broken:
            raise WizardError(
                "containerd restarted but its CRI plugin did not load",
                "Read containerd's log; the configuration is restored and containerd started on it"
                ".",
                (res.stdout + res.stderr).strip()[-2000:],
            )
        ctx.log(
            "containerd answers; CRI plugins: "
            + (", ".join(x[0] + " " + x[1] for x in cri) or "none")
        )

    @classmethod
    def undo(cls, ctx: ApplyContext, undo: dict[str, Any], result: Optional[dict[str, Any]]) -> str:
        if undo.get("method") == "systemd" and ctx.host.which("systemctl"):
            ctx.host.run(
                ["systemctl", "reset-failed", f"{undo.get('service', 'containerd')}.service"],
                check=False,
                on_line=ctx.line_logger(),
            )
        _restart(ctx, list(undo["argv"]), str(undo["socket"]), float(undo.get("wait", 60)))
        return "containerd restarted on the restored configuration and answers again"


def _restart(ctx: ApplyContext, argv: list[str], socket: str, wait: float) -> None:
    ctx.log("$ " + " ".join(argv))
    res = ctx.host.run(
        argv, inside=False, check=False, on_line=ctx.line_logger(), timeout=max(wait, 30)
    )
    if res.returncode != 0:
        raise WizardError(
            f"Restarting containerd failed (`{' '.join(argv)}` exited {res.returncode})",
            "The configuration is restored and containerd started once on it; read its log.",
            (res.stdout + res.stderr).strip()[-2000:],
        )
    end = time.monotonic() + wait
    while True:
        ans = _ctr(ctx.host, socket, "version", timeout=5)
        if ans.returncode == 0 and "Server:" in ans.stdout:
            ctx.log("containerd is back")
            return
        if time.monotonic() > end:
            raise WizardError(
                f"containerd did not answer on {socket} within {wait:.0f} s",
                "Read its log (journalctl -u containerd); the configuration is restored.",
                (ans.stdout + ans.stderr).strip()[-1000:],
            )
        ctx.progress(None, "waiting for containerd")
        time.sleep(0.2)


@register
@dataclass
class MakeDir(Action):
    """Create a folder (containerd's conf.d); rollback removes it again if it is empty."""

    kind = "make-dir"

    path: str = ""
    mode: int = 0o755
    reason: str = ""

    def describe(self) -> str:
        return self.reason or f"create the folder {self.path}"

    def params(self) -> dict[str, Any]:
        return {"path": self.path, "mode": self.mode}

    def preview(self, host: Host) -> list[Diff]:
        exists = host.path(self.path).is_dir()
        return [Diff(self.path, "folder" if exists else None, "folder", "command", self.describe())]

    def needed(self, host: Host) -> bool:
        return not host.path(self.path).is_dir()

    def prepare(self, ctx: ApplyContext) -> dict[str, Any]:
        real = ctx.host.path(self.path)
        return {"path": self.path, "real": str(real), "existed": real.is_dir()}

    def apply(self, ctx: ApplyContext) -> dict[str, Any]:
        import os

        real = ctx.host.path(self.path)
        real.mkdir(mode=self.mode, parents=True, exist_ok=True)
        os.chmod(real, self.mode)
        return {}

    @classmethod
    def undo(cls, ctx: ApplyContext, undo: dict[str, Any], result: Optional[dict[str, Any]]) -> str:
        from pathlib import Path

        real = Path(undo["real"])
        if undo.get("existed") or not real.is_dir():
            return f"{undo['path']}: nothing to remove"
        if any(real.iterdir()):
            return f"{undo['path']}: kept (it holds files gpuwizard did not write)"
        real.rmdir()
        return f"{undo['path']}: removed (it did not exist before)"
