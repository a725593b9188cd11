"""Copy-paste snippets for this host: `docker run` commands and both Compose forms of the seed
guide, with a current image (never the deleted `nvidia/cuda:11.6-base`) and no obsolete
`version:` key; and a check of a snippet with the Compose the host has."""

from __future__ import annotations

import importlib
import json
import os
import tempfile
from typing import Any, Optional, Sequence

from gpuwizard.actions.containers import cli_args, parse_gpus
from gpuwizard.errors import WizardError
from gpuwizard.host.runner import CommandResult
from gpuwizard.host.system import Host

FORMS = ("runtime", "deploy")
SERVICE = "gpu-test"


def _q(text: str) -> str:
    """A YAML scalar, double-quoted (JSON strings are valid YAML)."""
    return json.dumps(text, ensure_ascii=False)


def _visible(gpus: str) -> str:
    req = parse_gpus(gpus)
    if req.get("device_ids"):
        return ",".join(req["device_ids"])
    count = int(req.get("count", -1))
    return "all" if count < 0 else ",".join(str(i) for i in range(count))


def render_docker_run(
    image: str, gpus: str = "all", form: str = "gpus", command: Sequence[str] = ("nvidia-smi",)
) -> str:
    """`docker run` for one way of reaching the GPU: gpus | runtime | cdi."""
    if form == "gpus":
        args = cli_args(gpus, None, None, None)
    elif form == "runtime":
        args = cli_args(None, "nvidia", None, {"NVIDIA_VISIBLE_DEVICES": _visible(gpus)})
    elif form == "cdi":
        ids = parse_gpus(gpus).get("device_ids") or ["all"]
        args = cli_args(None, None, [f"nvidia.com/gpu={i}" for i in ids], None)
    else:
        raise WizardError(f"Unknown docker run form {form!r}", "Use gpus, runtime or cdi.")
    return " ".join(["docker", "run", "--rm", *args, image, *command])


def render_compose(
    form: str, image: str, gpus: str = "all", command: Sequence[str] = ("nvidia-smi",)
) -> str:
    """A docker-compose.yaml using the GPU: `runtime: nvidia`, or
    `deploy.resources.reservations.devices` (Compose spec; no `version:` key)."""
    cmd = "[" + ", ".join(_q(c) for c in command) + "]"
    lines = ["services:", f"  {SERVICE}:", f"    image: {_q(image)}", f"    command: {cmd}"]
    if form == "runtime":
        lines += [
            "    runtime: nvidia",
            "    environment:",
            f"      - {_q('NVIDIA_VISIBLE_DEVICES=' + _visible(gpus))}",
        ]
    elif form == "deploy":
        req = parse_gpus(gpus)
        lines += [
            "    deploy:",
            "      resources:",
            "        reservations:",
            "          devices:",
            "            - driver: nvidia",
        ]
        if req.get("device_ids"):
            ids = ", ".join(_q(i) for i in req["device_ids"])
            lines.append(f"              device_ids: [{ids}]")
        else:
            count = int(req.get("count", -1))
            lines.append(f"              count: {'all' if count < 0 else count}")
        lines.append("              capabilities: [gpu]")
    else:
        raise WizardError(f"Unknown Compose form {form!r}", "Use runtime or deploy.")
    return "\n".join(lines) + "\n"


def compose_tool(host: Host) -> Optional[list[str]]:
    """The Compose on this host: `docker compose` (v2 plugin) or `docker-compose` (v1)."""
    docker = host.which("docker")
    if docker:
        res = host.run([docker, "compose", "version"], check=False, timeout=20)
        if res.ok:
            return [docker, "compose"]
    v1 = host.which("docker-compose")
    if v1:
        return [v1]
    return None


def compose_install_remedy(host: Host) -> str:
    fam = host.facts.family()
    if fam == "debian":
        return (
            "Install Compose: `sudo apt-get install docker-compose-plugin` (Docker's "
            "repository) or `sudo apt-get install docker-compose` (Debian/Ubuntu's v1)."
        )
    if fam == "rhel":
        return "Install Compose: `sudo dnf install docker-compose-plugin` (Docker's repository)."
    if fam == "suse":
        return "Install Compose: `sudo zypper install docker-compose`."
    return "Install Docker Compose: https://docs.docker.com/compose/install/"


def validate_compose(host: Host, text: str, docker_host: Optional[str] = None) -> CommandResult:
    """`docker compose config` (or `docker-compose config`) on a snippet; raises a
    WizardError with Compose's own message when it refuses it, or says how to get Compose."""
    tool = compose_tool(host)
    if tool is None:
        raise WizardError(
            "Docker Compose is not installed on this host", compose_install_remedy(host)
        )
    with tempfile.TemporaryDirectory(prefix="gpuwizard-compose-") as folder:
        path = os.path.join(folder, "docker-compose.yaml")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        env = {"DOCKER_HOST": docker_host} if docker_host else None
        res = host.run(
            [*tool, "-f", path, "config"], inside=False, check=False, env=env, timeout=60
        )
    if not res.ok:
        raise WizardError(
            f"{' '.join(tool[-2:])} refuses the snippet",
            "This is a gpuwizard bug if the snippet is unedited; report it.",
            res.tail,
        )
    return res


def snippets(
    image: str, gpus: str = "all", runtime: bool = True, cdi: bool = False
) -> dict[str, str]:
    """Every snippet that applies to this host, by name."""
    out = {"docker run --gpus": render_docker_run(image, gpus, "gpus")}
    if runtime:
        out["docker run --runtime nvidia"] = render_docker_run(image, gpus, "runtime")
    if cdi:
        out["docker run --device (CDI)"] = render_docker_run(image, gpus, "cdi")
    out["compose: deploy.resources"] = render_compose("deploy", image, gpus)
    if runtime:
        out["compose: runtime: nvidia"] = render_compose("runtime", image, gpus)
    return out


def render_for_host(
    host: Host, options: Any, kind: str = "compose", form: str = "both", validate: bool = False
) -> str:
    """What `gpuwizard snippet run|compose` prints: snippets with this host's image (the CUDA
    tag chosen from the driver's CUDA version, else the smoke-test image) and GPU selection."""
    image = _host_image(host, options)
    gpus = getattr(options, "gpus", None) or "all"
    out: list[str] = []
    route = tested_route(host, options)
    if route:
        why = "; ".join(f"{k}: {v}" for k, v in (route.get("why_not") or {}).items())
        out.append(
            "# works on this host (gpuwizard's GPU test reached the GPU this way)\n"
            + (route["docker_run"] if kind == "run" else route["compose"] + "\n")
            + (f"\n# the other routes do not work here: {why}" if why else "")
        )
    if kind == "run":
        for name in ("gpus", "runtime", "cdi"):
            out.append(f"# {name}\n{render_docker_run(image, gpus, name)}")
        return "\n\n".join(out) + "\n"
    forms = FORMS if form == "both" else (form,)
    for f in forms:
        text = render_compose(f, image, gpus)
        if validate:
            validate_compose(host, text, getattr(options, "docker_host", None))
            text = "# checked with `docker compose config`\n" + text
        out.append(f"# docker-compose.yaml ({f} form)\n{text}")
    return "\n".join(out)


def tested_route(host: Host, options: Any) -> Optional[dict[str, Any]]:
    """The route the newest GPU test found working (a `gpu-route` journal record), if any."""
    try:
        from gpuwizard.journal import Journal
        from gpuwizard.worker import state_dir_for

        journal = Journal(state_dir_for(host, options))
        for run in reversed(journal.runs()):
            found = [r for r in run.records if r.type == "gpu-route"]
            if found:
                return dict(found[-1].data)
    except (OSError, ValueError, WizardError):
        return None
    return None


def _host_image(host: Host, options: Any) -> str:
    if getattr(options, "cuda_image", None):
        return str(options.cuda_image)
    cuda_version = None
    try:
        gpu = importlib.import_module("gpuwizard.host.gpu")  # the driver step's probe
        cuda_version = gpu.probe_gpus(host).cuda_version
    except (ImportError, AttributeError, WizardError):
        pass
    try:
        cuda_images = importlib.import_module("gpuwizard.cuda_images")
        choice = cuda_images.choose_test_images(cuda_version, options)
        return str(choice.cuda or choice.smoke)
    except ImportError:
        return str(getattr(options, "test_image", None) or "ubuntu:24.04")
