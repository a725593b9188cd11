"""The CDI actions: a spec made by `nvidia-ctk cdi generate` and the NVIDIA runtime's mode in
config.toml, each computed in a private folder first (so it is a previewed diff), written like
every file (journaled) and restored byte-exact on rollback. The cdi step (steps/cdi.py) plans
them."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from gpuwizard.actions.base import ApplyContext, Diff, register
from gpuwizard.actions.files import WriteFile, _text, read_state, target_of
from gpuwizard.errors import WizardError
from gpuwizard.host import cdi as cdi_probe
from gpuwizard.host.system import Host

RUNTIME_CONFIG = "/etc/nvidia-container-runtime/config.toml"
ALL_DEVICES = "nvidia.com/gpu=all"


def driver_root(report: Optional[dict[str, Any]]) -> str:
    """The driver's root from where the driver step found nvidia-smi (/usr/local/nvidia on the
    project's H200; / for a packaged driver)."""
    smi = str((report or {}).get("nvidia_smi") or "")
    if smi.endswith("/bin/nvidia-smi"):
        root = smi[: -len("/bin/nvidia-smi")]
        if root not in ("", "/usr", "/run/current-system/sw"):
            return root
    return "/"


def _ctk_env(root: str) -> dict[str, str]:
    """nvidia-ctk finds nvidia-smi and the libraries through PATH and LD_LIBRARY_PATH."""
    env: dict[str, str] = {}
    path = os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    if root != "/":
        env["PATH"] = f"{root}/bin:{path}"
    return env


def _run_ctk(host: Host, argv: list[str], env: dict[str, str], what: str) -> str:
    res = host.run(argv, check=False, env=env or None, timeout=120)
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-6:]
        raise WizardError(
            f"{what} failed: " + (tail[-1] if tail else f"exit {res.returncode}"),
            "Check that the NVIDIA driver works (nvidia-smi) and that nvidia-ctk is the "
            "toolkit's own (nvidia-ctk --version).",
            "\n".join(tail),
        )
    return res.stdout + res.stderr


@register
@dataclass
class GenerateCdiSpec(WriteFile):
    """`nvidia-ctk cdi generate` into a private folder, `cdi list` shown, then written."""

    kind = "cdi-spec"

    ctk: str = "nvidia-ctk"
    driver_root: str = "/"  # its bin/ goes on nvidia-ctk's PATH
    pass_driver_root: bool = False  # also --driver-root (then /dev is looked for there too)
    feature_flags: list[str] = field(default_factory=list)
    listed: str = ""  # what `nvidia-ctk cdi list` said of the generated spec

    def argv(self, output: str) -> list[str]:
        out = [self.ctk, "cdi", "generate", f"--output={output}"]
        if self.pass_driver_root and self.driver_root != "/":
            out.append(f"--driver-root={self.driver_root}")
        for flag in self.feature_flags:
            out += ["--feature-flag", flag]
        return out

    def command_line(self) -> str:
        return " ".join(self.argv(self.path))

    def describe(self) -> str:
        return self.reason or f"generate the CDI spec {self.path}: {self.command_line()}"

    def params(self) -> dict[str, Any]:
        return {**super().params(), "argv": self.argv(self.path)}

    def simulate(self, sim: Any) -> None:
        if self.content:
            sim.files[self.path] = self.content
        sim.marks["cdi-spec"] = self.path

    def generate(self, host: Host) -> tuple[bytes, str]:
        """Generate into a private folder; returns (the spec's bytes, `cdi list`'s output)."""
        env = _ctk_env(self.driver_root)
        tmp = Path(tempfile.mkdtemp(prefix="gpuwizard-cdi-"))
        try:
            out = tmp / Path(self.path).name
            _run_ctk(host, self.argv(str(out)), env, "nvidia-ctk cdi generate")
            listed = _run_ctk(
                host, [self.ctk, "cdi", "list", f"--spec-dir={tmp}"], env, "nvidia-ctk cdi list"
            )
            try:
                data = out.read_bytes()
            except OSError as exc:
                raise WizardError(
                    f"nvidia-ctk cdi generate wrote no spec ({exc.strerror})",
                    "Run it by hand to see why: " + self.command_line(),
                    listed,
                ) from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        spec = cdi_probe.parse_spec(self.path, data.decode("utf-8", "replace"))
        if spec.error or ALL_DEVICES not in spec.names():
            raise WizardError(
                f"nvidia-ctk generated a spec without {ALL_DEVICES}",
                "Run it by hand to see why: " + self.command_line(),
                listed,
            )
        return data, listed

    def preview(self, host: Host) -> list[Diff]:
        real, shown = target_of(host, self.path)
        state = read_state(real, self.path)
        if self.content:
            return [Diff(shown, _text(state.data), _text(self.content), "file", self.listed)]
        return [
            Diff(
                shown,
                _text(state.data),
                f"(made at apply time by: {self.command_line()}; `nvidia-ctk cdi list` is "
                "shown before it is written)\n",
                "file",
                "the toolkit is installed by the packages step first",
            )
        ]

    def needed(self, host: Host) -> bool:
        return not self.content or super().needed(host)

    def prepare(self, ctx: ApplyContext) -> dict[str, Any]:
        ctx.log("$ " + " ".join(self.argv("<private folder>")))
        self.content, self.listed = self.generate(ctx.host)
        ctx.log("nvidia-ctk cdi list (the devices the spec names):")
        for line in self.listed.strip().splitlines():
            if "level=" not in line:
                ctx.log("  " + line)
        return super().prepare(ctx)


@register
@dataclass
class SetRuntimeMode(WriteFile):
    """`nvidia-ctk config --set nvidia-container-runtime.mode=MODE --in-place`, on a copy."""

    kind = "runtime-mode"

    ctk: str = "nvidia-ctk"
    runtime_mode: str = "cdi"

    def describe(self) -> str:
        return self.reason or f'set mode = "{self.runtime_mode}" in {self.path}'

    def edit(self, host: Host) -> bytes:
        real, _ = target_of(host, self.path)
        state = read_state(real, self.path)
        tmp = Path(tempfile.mkdtemp(prefix="gpuwizard-rtcfg-"))
        try:
            copy = tmp / "config.toml"
            copy.write_bytes(state.data or b"")
            _run_ctk(
                host,
                [
                    self.ctk,
                    "config",
                    f"--config-file={copy}",
                    "--set",
                    f"nvidia-container-runtime.mode={self.runtime_mode}",
                    "--in-place",
                ],
                {},
                "nvidia-ctk config --set",
            )
            return copy.read_bytes()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def preview(self, host: Host) -> list[Diff]:
        if self.content:
            return super().preview(host)
        real, shown = target_of(host, self.path)
        state = read_state(real, self.path)
        return [
            Diff(
                shown,
                _text(state.data),
                f'(the installed file with mode = "{self.runtime_mode}", made at apply time by '
                f"nvidia-ctk config --set nvidia-container-runtime.mode={self.runtime_mode} "
                "--in-place on a copy)\n",
                "file",
                "the toolkit is installed by the packages step first",
            )
        ]

    def needed(self, host: Host) -> bool:
        return not self.content or super().needed(host)

    def prepare(self, ctx: ApplyContext) -> dict[str, Any]:
        self.content = self.edit(ctx.host)
        return super().prepare(ctx)
