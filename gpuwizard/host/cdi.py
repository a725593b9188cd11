"""CDI state, read once for the steps and for doctor: the specs on disk, what they name, and
what is wrong with them.

CDI (Container Device Interface) specs live in /etc/cdi (static, written by a person or by
`nvidia-ctk cdi generate`) and /var/run/cdi (generated: toolkit >= 1.18's nvidia-cdi-refresh).
Engines read both; the same kind in both is ambiguous. nvidia-ctk writes YAML: it is read here
without a YAML library (PyYAML is no dependency), from the few keys that matter.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from gpuwizard.host.system import Host

SPEC_DIRS = ("/etc/cdi", "/var/run/cdi")
STATIC_SPEC = "/etc/cdi/nvidia.yaml"
GENERATED_SPEC = "/var/run/cdi/nvidia.yaml"
NVIDIA_KIND = "nvidia.com/gpu"
REFRESH_UNITS = ("nvidia-cdi-refresh.path", "nvidia-cdi-refresh.service")
CONTROL_NODES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools")
NODES_FIX = "sudo nvidia-ctk system create-device-nodes --control-devices --load-kernel-modules"
OLD_SCHEMA_FLAG = "--feature-flag no-additional-gids-for-device-nodes"
# the first engine versions that accept a spec of schema 0.7.0 (toolkit >= 1.19.1's default)
SCHEMA_070_NEEDS = {"docker": (26, 1), "podman": (5, 1), "containerd": (1, 7, 16)}
_SO_VERSION = re.compile(r"lib(?:cuda|nvidia-ml)\.so\.(\d+\.\d+(?:\.\d+)?)")


def vtuple(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text or "")[:3])


@dataclass(frozen=True)
class CdiSpec:
    """One spec file, as far as gpuwizard needs it."""

    path: str
    kind: str = ""
    cdi_version: str = ""
    devices: tuple[str, ...] = ()
    driver_version: Optional[str] = None  # from the libcuda/libnvidia-ml it mounts
    device_nodes: tuple[str, ...] = ()
    error: str = ""  # unreadable or not a spec

    def names(self) -> list[str]:
        return [f"{self.kind}={d}" for d in self.devices]


@dataclass(frozen=True)
class CdiProblem:
    """A finding with its cause, its remedy, and the repair gpuwizard can apply (a step)."""

    code: str
    title: str
    cause: str
    remedy: str
    repair: str = ""  # what gpuwizard does about it, e.g. "the cdi step regenerates it"
    failure: str = ""  # the code in failures.json, for doctor --explain

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CdiState:
    specs: tuple[CdiSpec, ...] = ()
    refresh_units: dict[str, str] = field(default_factory=dict)  # unit -> state
    missing_nodes: tuple[str, ...] = ()
    problems: tuple[CdiProblem, ...] = ()

    def nvidia_specs(self) -> list[CdiSpec]:
        return [s for s in self.specs if s.kind == NVIDIA_KIND]

    def names(self) -> list[str]:
        return [n for s in self.specs for n in s.names()]

    def has(self, name: str) -> bool:
        return name in self.names()

    def to_json(self) -> dict[str, Any]:
        return {
            "specs": [asdict(s) for s in self.specs],
            "names": self.names(),
            "refresh_units": self.refresh_units,
            "missing_nodes": list(self.missing_nodes),
            "problems": [p.to_json() for p in self.problems],
        }


def parse_spec(path: str, text: str) -> CdiSpec:
    """kind, cdiVersion, device names, device nodes and the driver version of a spec (YAML or
    JSON, as nvidia-ctk and other generators write it)."""
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        devices = tuple(str(d.get("name", "")) for d in doc.get("devices") or [])
        nodes = _nodes_json(doc)
        kind, version = str(doc.get("kind", "")), str(doc.get("cdiVersion", ""))
    else:
        kind = _yaml_scalar(text, "kind")
        version = _yaml_scalar(text, "cdiVersion")
        devices = tuple(_yaml_device_names(text))
        nodes = tuple(
            dict.fromkeys(re.findall(r"^\s*-?\s*path:\s*['\"]?(/dev/[^'\"\s]+)", text, re.M))
        )
    if not kind or not version:
        return CdiSpec(path, error="not a CDI spec (no kind or cdiVersion)")
    m = _SO_VERSION.search(text)
    return CdiSpec(path, kind, version, devices, m.group(1) if m else None, nodes)


def _yaml_scalar(text: str, key: str) -> str:
    m = re.search(rf"^{key}:\s*['\"]?([^'\"\s#]+)", text, re.M)
    return m.group(1) if m else ""


def _yaml_device_names(text: str) -> list[str]:
    """Names of the top-level `devices:` list (items at the list's own indent)."""
    out: list[str] = []
    inside = False
    item_indent: Optional[int] = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            inside = line.startswith("devices:")
            item_indent = None
            continue
        if not inside:
            continue
        m = re.match(r"(\s*)-\s+name:\s*['\"]?([^'\"#]+?)['\"]?\s*$", line)
        if m and (item_indent is None or len(m.group(1)) == item_indent):
            item_indent = len(m.group(1))
            out.append(m.group(2))
    return out


def _nodes_json(doc: dict[str, Any]) -> tuple[str, ...]:
    out: list[str] = []
    edits = [doc.get("containerEdits") or {}]
    edits += [d.get("containerEdits") or {} for d in doc.get("devices") or []]
    for e in edits:
        out += [str(n.get("path")) for n in e.get("deviceNodes") or [] if n.get("path")]
    return tuple(dict.fromkeys(out))


def read_specs(host: Host, dirs: tuple[str, ...] = SPEC_DIRS) -> list[CdiSpec]:
    out = []
    for d in dirs:
        folder = host.path(d)
        if not folder.is_dir():
            continue
        for f in sorted(folder.iterdir()):
            if f.suffix not in (".yaml", ".yml", ".json") or not f.is_file():
                continue
            shown = f"{d}/{f.name}"
            try:
                out.append(parse_spec(shown, f.read_text(errors="replace")))
            except OSError as exc:
                out.append(CdiSpec(shown, error=str(exc)))
    return out


def unit_states(host: Host) -> dict[str, str]:
    """The refresh units' `is-enabled`/`is-active` words ("enabled/active", "static/failed:
    exit-code"), where systemd runs; a unit systemd does not know is left out.

    One `systemctl show` of both units answers what `is-enabled`, `is-active` and, for a
    failed unit, `show -p Result` said unit by unit (two to six programs, 10-15 ms each, in
    every plan): UnitFileState is is-enabled's word, ActiveState is-active's."""
    if not host.is_live or not host.path("/run/systemd/system").is_dir():
        return {}
    props = ("Id", "LoadState", "UnitFileState", "ActiveState", "Result")
    res = host.run(
        ["systemctl", "show", *REFRESH_UNITS, *(f"--property={p}" for p in props)],
        check=False,
        timeout=10,
    )
    out: dict[str, str] = {}
    for unit, block in zip(REFRESH_UNITS, res.stdout.split("\n\n")):
        fields = dict(line.partition("=")[::2] for line in block.splitlines() if "=" in line)
        if fields.get("Id", unit) != unit or fields.get("LoadState") in (None, "not-found"):
            continue
        state = fields.get("ActiveState") or "unknown"
        if state == "failed":
            state = "failed:" + fields.get("Result", "")
        out[unit] = f"{fields.get('UnitFileState') or 'unknown'}/{state}"
    return out


def probe(
    host: Host,
    driver_version: Optional[str] = None,
    engine: str = "docker",
    engine_version: str = "",
    cdi_enabled: Optional[bool] = None,
    gpu_present: bool = True,
    extra_dirs: tuple[str, ...] = (),
) -> CdiState:
    """Read-only: the specs, the refresh units, the device nodes, and what is wrong.
    `extra_dirs`: spec folders the engine is told about (daemon.json cdi-spec-dirs)."""
    specs = read_specs(host, tuple(dict.fromkeys(SPEC_DIRS + extra_dirs)))
    units = unit_states(host)
    missing = tuple(n for n in CONTROL_NODES if gpu_present and not host.path(n).exists())
    problems: list[CdiProblem] = []
    for s in specs:
        if s.error:
            problems.append(
                CdiProblem(
                    "cdi-spec-unreadable",
                    f"{s.path} is not a usable CDI spec",
                    s.error,
                    f"Look at {s.path}; remove it if nothing needs it.",
                )
            )
    nv = [s for s in specs if s.kind == NVIDIA_KIND]
    for s in nv:
        if driver_version and s.driver_version and s.driver_version != driver_version:
            problems.append(
                CdiProblem(
                    "cdi-spec-stale",
                    f"{s.path} was made for driver {s.driver_version}, the driver is "
                    f"{driver_version}",
                    "The spec names the old driver's files; containers fail with "
                    "`error stat'ing file …` until it is regenerated.",
                    f"sudo nvidia-ctk cdi generate --output={s.path}",
                    "the cdi step regenerates it (journaled, undoable)",
                    "cdi-spec-stale",
                )
            )
    dirs = {s.path.rsplit("/", 1)[0] for s in nv}
    if {"/etc/cdi", "/var/run/cdi"} <= dirs:
        problems.append(
            CdiProblem(
                "cdi-kind-twice",
                f"{NVIDIA_KIND} is defined in both /etc/cdi and /var/run/cdi",
                "Engines refuse or pick one arbitrarily when two specs define the same device "
                "(a static spec left beside nvidia-cdi-refresh's).",
                f"Keep one: sudo rm {STATIC_SPEC} when nvidia-cdi-refresh maintains "
                f"{GENERATED_SPEC}.",
                "the cdi step keeps the one it manages",
                "cdi-unresolvable",
            )
        )
    if missing:
        problems.append(
            CdiProblem(
                "cdi-device-nodes-missing",
                "missing " + ", ".join(missing),
                "A spec made without the control and uvm nodes gives containers where "
                "nvidia-smi works but CUDA fails (error 999).",
                f"{NODES_FIX}, then regenerate the spec.",
                "the cdi step creates them before it generates the spec",
                "cuda-999-uvm",
            )
        )
    for unit, state in units.items():
        if "failed" in state:
            problems.append(
                CdiProblem(
                    "cdi-refresh-failed",
                    f"{unit} is {state}",
                    "nvidia-cdi-refresh ran before the driver was ready, or it failed "
                    "three times in a row and systemd stopped trying (start-limit-hit).",
                    "sudo systemctl reset-failed nvidia-cdi-refresh.path "
                    "nvidia-cdi-refresh.service && sudo systemctl start "
                    "nvidia-cdi-refresh.service",
                    "the cdi step resets and restarts it",
                    "cdi-refresh-start-limit",
                )
            )
    need = SCHEMA_070_NEEDS.get(engine)
    if need and engine_version:
        for s in nv:
            if vtuple(s.cdi_version) >= (0, 7) and vtuple(engine_version) < need:
                problems.append(
                    CdiProblem(
                        "cdi-schema-too-new",
                        f"{s.path} is CDI {s.cdi_version}; {engine} {engine_version} reads "
                        f"only up to 0.6.0",
                        f"Toolkit >= 1.19.1 writes schema 0.7.0, which needs {engine} >= "
                        + ".".join(str(x) for x in need)
                        + "; older engines report `unresolvable CDI devices`.",
                        f"sudo nvidia-ctk cdi generate {OLD_SCHEMA_FLAG} --output={s.path}",
                        "the cdi step generates with that flag on this engine",
                        "cdi-unresolvable",
                    )
                )
    v = vtuple(engine_version)
    if engine == "docker" and (25,) <= v < (28, 2) and cdi_enabled is False:
        problems.append(
            CdiProblem(
                "cdi-feature-off",
                f"CDI is off in Docker {engine_version}",
                'Docker 25-28.1 reads CDI specs only with "features": {"cdi": true}; '
                "`--device nvidia.com/gpu=all` fails with `could not select device driver "
                '"cdi"`.',
                'Add "features": {"cdi": true} to daemon.json and restart Docker, or use '
                "--runtime nvidia -e NVIDIA_VISIBLE_DEVICES=nvidia.com/gpu=all.",
                "the daemon-config step can set it (--enable-cdi)",
                "cdi-driver-missing",
            )
        )
    return CdiState(tuple(specs), units, missing, tuple(problems))
