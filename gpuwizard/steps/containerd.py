"""The containerd steps: the NVIDIA runtime and CDI for containerd's CRI, then a guarded restart.

The change is a drop-in file, conf.d/99-nvidia.toml beside config.toml. When config.toml does
not import it, one `imports` entry is merged into config.toml (byte-exact undo; an edit made
since is kept and only that entry removed). containerd 1.7 needs `enable_cdi = true`; 2.x has
it on by default (the drop-in still says so). k3s and RKE2 regenerate their config.toml at
every start and add the nvidia runtime themselves when they find nvidia-container-runtime: for
them the step is a restart of their service, and the template is named for custom settings.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from typing import Any, Optional

from gpuwizard.actions.base import Action
from gpuwizard.actions.engines import IMPORTS_TAG, MakeDir, RestartContainerd
from gpuwizard.actions.files import WriteFile
from gpuwizard.host import engines as eng
from gpuwizard.host.system import Host
from gpuwizard.options import Options
from gpuwizard.steps import probes
from gpuwizard.steps.base import BLOCKED, DONE, PENDING, SKIPPED, Simulation, Step, StepPlan
from gpuwizard.steps.podman import engines_of

RUNTIME = "nvidia-container-runtime"
MARK = "containerd-files"  # sim.marks: the files this plan writes (the restart step reads it)
CRI_CLIENTS = ("kubelet", "crictl", "nerdctl", "k3s", "rke2")


def cri_section(version: int) -> str:
    """The CRI runtime plugin's table name in this config schema."""
    return '"io.containerd.cri.v1.runtime"' if version >= 3 else '"io.containerd.grpc.v1.cri"'


def dropin_text(
    version: int, runtime_path: Optional[str], cdi_dirs: tuple[str, ...], cdi: bool = True
) -> str:
    sec = f"plugins.{cri_section(version)}"
    out = [
        "# Written by gpuwizard: the NVIDIA runtime and CDI for containerd's CRI.",
        "# `gpuwizard rollback` removes it.",
        f"version = {version}",
    ]
    if cdi:
        out += [
            "",
            f"[{sec}]",
            "  enable_cdi = true",
            "  cdi_spec_dirs = [" + ", ".join(f'"{d}"' for d in cdi_dirs) + "]",
        ]
    if runtime_path:
        out += [
            "",
            f"[{sec}.containerd.runtimes.nvidia]",
            '  runtime_type = "io.containerd.runc.v2"',
            "",
            f"[{sec}.containerd.runtimes.nvidia.options]",
            f'  BinaryName = "{runtime_path}"',
        ]
    return "\n".join(out) + "\n"


def dump_version(dump: str, default: int) -> int:
    m = re.search(r"^version\s*=\s*(\d+)", dump, re.M)
    return int(m.group(1)) if m else default


def dropin_from_dump(
    dump: str, runtime_path: Optional[str], cdi_dirs: tuple[str, ...], cdi: bool
) -> str:
    """The drop-in. For containerd 1.x (config schema 2): its whole effective CRI plugin table
    (from `config dump`) with the nvidia runtime and CDI added. Whole, because 1.x merges an
    imported file at the plugin level: a CRI table with only our keys replaces everything
    else in it (1.6.20 then loses its runc runtime and the CRI plugin fails to load). 2.x
    (schema 3) merges key by key, so there the drop-in holds only gpuwizard's keys."""
    version = dump_version(dump, 2)
    if version >= 3:
        # containerd 2.x merges an imported file key by key: our keys alone are enough
        return dropin_text(version, runtime_path, cdi_dirs, cdi)
    name = cri_section(version)
    head = f"[plugins.{name}"
    lines = dump.splitlines()
    section: list[str] = []
    inside = False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("["):
            inside = stripped.startswith(head + "]") or stripped.startswith(head + ".")
        if inside:
            section.append(line)
    if not section:
        return dropin_text(version, runtime_path, cdi_dirs, cdi)
    indent = section[0][: len(section[0]) - len(section[0].lstrip())]
    body = section[1:]
    top_end = next((i for i, x in enumerate(body) if x.strip().startswith("[")), len(body))
    top, rest = body[:top_end], body[top_end:]
    if cdi:
        top = [x for x in top if not re.match(r"\s*(enable_cdi|cdi_spec_dirs)\s*=", x)]
        top += [
            f"{indent}  enable_cdi = true",
            f"{indent}  cdi_spec_dirs = [" + ", ".join(f'"{d}"' for d in cdi_dirs) + "]",
        ]
    out = [
        "# Written by gpuwizard: containerd's CRI plugin table as it was (config dump), with",
        "# the NVIDIA runtime and CDI added. `gpuwizard rollback` removes it.",
        f"version = {version}",
        "",
        section[0],
        *top,
        *rest,
    ]
    runtime_head = f"{head}.containerd.runtimes.nvidia]"
    if runtime_path and not any(x.strip() == runtime_head for x in rest):
        systemd = any(re.match(r"\s*SystemdCgroup = true", x) for x in rest)
        out += [
            "",
            f"{indent}  {runtime_head}",
            f'{indent}    runtime_type = "io.containerd.runc.v2"',
            f"{indent}    {head}.containerd.runtimes.nvidia.options]",
            f'{indent}      BinaryName = "{runtime_path}"',
        ]
        if systemd:
            out.append(f"{indent}      SystemdCgroup = true")
    return "\n".join(out) + "\n"


def merged_config(text: Optional[str], pattern: str, version: int) -> str:
    """config.toml with `pattern` added to its top-level `imports` (made if absent)."""
    line = f'imports = ["{pattern}"]{IMPORTS_TAG}'
    if text is None:
        return f"version = {version}\n{line}\n"
    lines = text.splitlines(keepends=True)
    for i, raw in enumerate(lines):
        code = raw.split("#", 1)[0].strip()
        if code.startswith("["):
            break
        m = re.match(r"^(\s*imports\s*=\s*\[)(.*)$", raw)
        if m and "]" in raw:
            inner = m.group(2).split("]", 1)[0].strip()
            rest = raw.split("]", 1)[1]
            items = f"{inner}, " if inner else ""
            lines[i] = f'{m.group(1)}{items}"{pattern}"]{rest.rstrip(chr(10))}{IMPORTS_TAG}\n'
            return "".join(lines)
    # insert before the first table (and after `version`), as TOML requires
    at = 0
    for i, raw in enumerate(lines):
        code = raw.split("#", 1)[0].strip()
        if code.startswith("["):
            break
        if code:
            at = i + 1
    if at and not lines[at - 1].endswith("\n"):
        lines[at - 1] += "\n"
    lines.insert(at, line + "\n")
    return "".join(lines)


def containerd_argv_config(pid: Optional[int]) -> tuple[Optional[str], Optional[str]]:
    """The --config and --address a running containerd was started with."""
    if pid is None:
        return None, None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = [a.decode() for a in fh.read().split(b"\0") if a]
    except OSError:
        return None, None

    def flag(*names: str) -> Optional[str]:
        for i, a in enumerate(argv):
            for n in names:
                if a == n and i + 1 < len(argv):
                    return argv[i + 1]
                if a.startswith(n + "="):
                    return a.split("=", 1)[1]
        return None

    return flag("--config", "-c"), flag("--address", "-a")


@dataclass(frozen=True)
class Target:
    """Which containerd, which files: from the options, else from the running daemon."""

    facts: eng.ContainerdFacts
    config: str
    socket: str
    dropin: str
    parsed: eng.ContainerdConfig


def target(host: Host, options: Options, sim: Simulation) -> Target:
    facts = engines_of(host, sim).containerd
    argv_config, argv_socket = containerd_argv_config(facts.pid) if host.is_live else (None, None)
    config = options.containerd_config or argv_config or facts.config_path
    socket = options.containerd_socket or argv_socket or facts.socket
    dropin = os.path.join(os.path.dirname(config), "conf.d", "99-nvidia.toml")
    raw = sim.read(host, config)
    parsed = eng.parse_config(raw.decode() if raw is not None else None, facts.config_version)
    return Target(facts, config, socket, dropin, parsed)


def in_use(host: Host, options: Options, t: Target) -> tuple[bool, str]:
    """Whether containerd's CRI serves anyone: a containerd under Docker alone needs nothing."""
    if options.containerd is not None:
        return (
            options.containerd,
            "as asked (--containerd)" if options.containerd else "--no-containerd",
        )
    if t.parsed.cri_disabled:
        return False, "its CRI plugin is disabled (disabled_plugins): Docker's containerd"
    clients = [c for c in CRI_CLIENTS if host.which(c)]
    if clients:
        return True, "used by " + ", ".join(clients)
    return False, (
        "no CRI client here (kubelet, crictl, nerdctl): it serves Docker only, which the Docker "
        "steps configure. Pass --containerd to configure its CRI anyway"
    )


class ContainerdStep(Step):
    name = "containerd"
    asks = (probes.ENGINES,)
    waits_for = ("driver", "cdi")  # without the toolkit it still gets CDI

    def applies(self, host: Host, sim: Simulation) -> bool:
        return engines_of(host, sim).containerd.installed

    def plan(self, host: Host, options: Options, sim: Simulation) -> StepPlan:
        t = target(host, options, sim)
        f = t.facts
        info: dict[str, Any] = {
            "containerd": asdict(f),
            "config": t.config,
            "dropin": t.dropin,
            "socket": t.socket,
            "engines": engines_of(host, sim).lines(),
        }
        if f.flavour != "standalone":
            info["template"] = f.template
            return self.make(
                SKIPPED,
                reason=f"{f.flavour} writes {f.config_path} itself at each start and adds the "
                f"nvidia runtime when it finds {RUNTIME} on its PATH: restart {f.service} once "
                f"the toolkit is installed; custom settings go in {f.template}",
                remedy=f"Install the toolkit, then `systemctl restart {f.service}`; edit "
                f"{f.template} (the template {f.flavour} reads), never config.toml.",
                facts=info,
            )
        use, why = in_use(host, options, t)
        info["in_use"] = why
        if not use:
            return self.make(SKIPPED, reason=f"containerd needs nothing: {why}", facts=info)
        if t.parsed.error:
            return self.make(
                BLOCKED,
                reason=f"{t.config}: {t.parsed.error}",
                remedy=f"Fix {t.config} (`containerd config dump` shows what it reads).",
                facts=info,
            )
        runtime = host.which(RUNTIME) or (
            "/usr/bin/nvidia-container-runtime"
            if any(p.startswith("nvidia-container-toolkit") for p in sim.packages)
            else None
        )
        version = t.parsed.version if t.parsed.exists else f.config_version
        cdi = f.version_tuple() >= (1, 7)
        if not cdi and not runtime:
            return self.make(
                BLOCKED,
                reason=f"containerd {f.version} has no CDI (1.7 and later do), and "
                f"{RUNTIME} is not installed",
                remedy="Install the NVIDIA Container Toolkit (the packages step) for the nvidia "
                "runtime, or upgrade containerd to 1.7 or 2.x for CDI.",
                facts=info,
            )
        what = []
        if runtime:
            what.append("the nvidia runtime")
        if cdi:
            what.append("CDI (on by default in 2.x)" if f.cdi_default else "CDI (enable_cdi)")
        info["cdi"] = cdi
        dump = eng.config_dump(host, f.path or "containerd", t.config)
        if dump.error:
            return self.make(
                BLOCKED,
                reason=f"containerd rejects {t.config} as it is",
                remedy=f"Fix {t.config} first (`containerd --config {t.config} config dump` "
                "shows the error); gpuwizard changes nothing on a file containerd cannot read.",
                facts=info | {"detail": dump.error},
            )
        if (
            ("enable_cdi = true" in dump.text or not cdi)
            and (not runtime or re.search(r"\.runtimes\.nvidia\]", dump.text))
            and (host.path(t.dropin).exists() or t.dropin in sim.files)
        ):
            return self.make(DONE, reason=f"{t.dropin} is in place and read", facts=info)
        confd = os.path.dirname(t.dropin)
        actions: list[Action] = [
            MakeDir(path=confd, reason=f"create {confd} (containerd's drop-in folder)"),
            WriteFile(
                path=t.dropin,
                content=dropin_from_dump(dump.text, runtime, eng.CDI_DIRS, cdi).encode(),
                reason=f"write {t.dropin}: " + " and ".join(what),
            ),
        ]
        if not eng.imports_dropin(t.parsed.imports, t.dropin):
            pattern = os.path.join(os.path.dirname(t.dropin), "*.toml")
            before = sim.read(host, t.config)
            actions.append(
                WriteFile(
                    path=t.config,
                    content=merged_config(
                        before.decode() if before is not None else None, pattern, version
                    ).encode(),
                    merge_back="containerd-imports",
                    reason=f"{t.config}: import {pattern} (one line; undone by rollback)",
                )
            )
        actions = [a for a in actions if a.needed(host)]
        diffs = [d for a in actions for d in a.preview(host)]
        warnings = []
        if not runtime:
            warnings.append(
                f"{RUNTIME} is not installed: containerd gets CDI only (the packages step "
                "installs the runtime)"
            )
        if not actions:
            return self.make(DONE, reason=f"{t.dropin} is in place and imported", facts=info)
        sim.marks[MARK] = [t.config, t.dropin]
        return self.make(
            PENDING,
            reason=f"containerd {f.version}: NVIDIA drop-in"
            + (" and import" if len(actions) > 1 else ""),
            actions=actions,
            diffs=diffs,
            facts=info,
            warnings=warnings,
        )


class ContainerdRestartStep(Step):
    name = "containerd-restart"
    asks = (probes.ENGINES,)
    waits_for = ("driver", "cdi", "containerd")

    def applies(self, host: Host, sim: Simulation) -> bool:
        return engines_of(host, sim).containerd.installed

    def plan(self, host: Host, options: Options, sim: Simulation) -> StepPlan:
        t = target(host, options, sim)
        f = t.facts
        info = {"service": f.service, "socket": t.socket}
        if not host.is_live:
            return self.make(SKIPPED, reason="a --root image runs no containerd", facts=info)
        changed = [p for p in sim.marks.get(MARK, []) if p in sim.files]
        if f.flavour != "standalone":
            if not any(p.startswith("nvidia-container-toolkit") for p in sim.packages):
                return self.make(DONE, reason=f"{f.flavour}: nothing changes", facts=info)
            changed = ["the toolkit is being installed"]
        if not changed:
            return self.make(DONE, reason="containerd's configuration does not change", facts=info)
        if not f.running and not options.containerd_restart_command:
            return self.make(
                BLOCKED,
                reason="containerd is not running",
                remedy=f"Start it (systemctl start {f.service}) or pass "
                "--containerd-restart-command.",
                facts=info,
            )
        method = (
            "command"
            if options.containerd_restart_command
            else ("systemd" if host.facts.init_system == "systemd" else "service")
        )
        action = RestartContainerd(
            containerd=f.path or "containerd",
            config=t.config,
            socket=t.socket,
            service=f.service,
            method=method,
            command=options.containerd_restart_command,
            wait=options.containerd_wait,
            expect_runtime=bool(host.which(RUNTIME))
            or any(p.startswith("nvidia-container-toolkit") for p in sim.packages),
            expect_cdi=f.version_tuple() >= (1, 7),
            validate_config=f.flavour == "standalone",
            reason=f"restart {f.service}: " + ", ".join(changed) + " change(s)",
        )
        return self.make(
            PENDING,
            reason=action.describe(),
            actions=[action],
            diffs=action.preview(host),
            facts=info,
            warnings=["running containers keep running: containerd's shims outlive a restart"],
        )
