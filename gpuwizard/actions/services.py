"""Restarting Docker, guarded: wait for it with a deadline, verify it, never loop.

A restart is the disruptive moment of the whole run: dockerd reads daemon.json and looks for
the NVIDIA hook only when it starts. If it does not come back, the wizard restores
daemon.json (rollback_with) and undoes this action, which clears systemd's start limit and
starts Docker once on the restored file.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

# the daemon-json merge-back strategy must be known wherever a rollback runs
import gpuwizard.daemon_json  # noqa: F401
from gpuwizard.actions.base import Action, ApplyContext, Diff, register
from gpuwizard.errors import WizardError
from gpuwizard.host import docker as engine
from gpuwizard.host.system import Host
from gpuwizard.host.systemd import describe_unit_state, locked_out, unit_state

METHODS: dict[str, list[str]] = {
    "systemd": ["systemctl", "restart", "docker"],
    "systemd-user": ["systemctl", "--user", "restart", "docker"],
    "service": ["service", "docker", "restart"],
    "snap": ["snap", "restart", "docker"],
    "openrc": ["rc-service", "docker", "restart"],
}
GPU_DRIVER_MISSING = 'could not select device driver "" with capabilities: [[gpu]]'


def detect_method(host: Host, facts: Optional[engine.EngineFacts]) -> str:
    """How Docker is restarted on this host."""
    if facts is not None and facts.snap:
        return "snap"
    if facts is not None and facts.rootless:
        return "systemd-user"
    init = host.facts.init_system
    if init == "systemd":
        return "systemd"
    if init == "openrc":
        return "openrc"
    if host.which("service"):
        return "service"
    return "command"


def restart_argv(method: str, command: Optional[list[str]]) -> list[str]:
    if method == "command":
        if not command:
            raise WizardError(
                "No way to restart Docker on this host was found",
                "Pass --restart-command with the command that restarts it.",
            )
        return list(command)
    if method not in METHODS:
        raise WizardError(
            f"Unknown restart method {method!r}",
            "Use one of: " + ", ".join([*METHODS, "command"]) + ".",
        )
    return list(METHODS[method])


def clear_start_limit(ctx: ApplyContext, method: str) -> None:
    """Before gpuwizard's one start: if docker.service failed (or someone else's restarts hit
    the start limit), say so and `reset-failed` it, so that systemd does not refuse a start
    that has nothing to do with them."""
    if not method.startswith("systemd") or not ctx.host.which("systemctl"):
        return
    state = unit_state(ctx.host, method)
    if state.get("ActiveState") == "failed" or locked_out(state):
        ctx.log(describe_unit_state(state) + ": `systemctl reset-failed` before restarting")
    user = ["--user"] if method == "systemd-user" else []
    ctx.host.run(
        ["systemctl", *user, "reset-failed", "docker.service", "docker.socket"],
        check=False,
        on_line=ctx.line_logger(),
    )


def daemon_log(
    host: Host,
    method: str,
    log_file: Optional[str],
    lines: int = 30,
    since: Optional[float] = None,
) -> str:
    """The daemon's last log lines: its log file, or the journal under systemd (only since
    gpuwizard's restart when `since` is given: an older refusal is not this one)."""
    if log_file:
        try:
            text = Path(log_file).read_text(errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        except OSError:
            pass
    if method.startswith("systemd") and host.which("journalctl"):
        argv = ["journalctl", "-u", "docker", "-n", str(lines), "--no-pager"]
        if since is not None:
            argv += ["--since", f"@{int(since)}"]
        if method == "systemd-user":
            argv.insert(1, "--user")
        res = host.run(argv, check=False, timeout=15)
        return res.stdout.strip()
    if method == "snap":
        res = host.run(["snap", "logs", "-n", str(lines), "docker"], check=False, timeout=15)
        return res.stdout.strip()
    return "(no log found: pass --docker-log with the daemon's log file)"


def gpu_probe(host: Host, docker_host: Optional[str], image: str) -> Optional[str]:
    """Whether dockerd registered its NVIDIA device driver: `--gpus all <image> true`.
    Returns None when it did, else the engine's error text. The probe container is named
    and removed on every path (a failing hook leaves it `Created`, which `run(remove=True)`
    never removes)."""
    import secrets

    name = f"gpuwizard-probe-{secrets.token_hex(4)}"
    reader = engine.read_engine(host, docker_host)
    plain = getattr(reader, "gpu_devices_error", None)
    if plain is not None:  # plain HTTP on the socket: no Docker SDK to import for this
        text: Optional[str] = plain(image, name)
        return text if text and "could not select device driver" in text else None
    import docker

    client = engine.connect(host, docker_host)
    try:
        req = docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])
        container = client.containers.create(image, ["true"], name=name, device_requests=[req])
        container.start()
        container.wait(timeout=60)
        return None
    except docker.errors.APIError as exc:
        text = str(exc.explanation or exc)
        return text if "could not select device driver" in text else None
    finally:
        with contextlib.suppress(Exception):
            client.containers.get(name).remove(force=True)
        client.close()


@register
@dataclass
class RestartDocker(Action):
    """Restart dockerd so it reads daemon.json and finds the NVIDIA hook."""

    kind = "restart-docker"
    disruptive = True

    method: str = "systemd"
    command: Optional[list[str]] = None
    docker_host: Optional[str] = None
    wait: float = 60.0
    expect_runtimes: list[str] = field(default_factory=list)
    expect_default_runtime: Optional[str] = None
    gpu_probe_image: Optional[str] = None  # a local image for the `--gpus` probe
    log_file: Optional[str] = None
    reason: str = ""

    def describe(self) -> str:
        return self.reason or f"restart Docker ({' '.join(self.argv())})"

    def argv(self) -> list[str]:
        return restart_argv(self.method, self.command)

    def params(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "argv": self.argv(),
            "wait": self.wait,
            "expect_runtimes": self.expect_runtimes,
        }

    def preview(self, host: Host) -> list[Diff]:
        return [Diff("docker.service", "running", "restarted", "service", self.describe())]

    def needed(self, host: Host) -> bool:
        return True

    def simulate(self, sim: Any) -> None:
        sim.marks["docker-restarted"] = True

    def prepare(self, ctx: ApplyContext) -> dict[str, Any]:
        return {
            "method": self.method,
            "argv": self.argv(),
            "docker_host": self.docker_host,
            "wait": self.wait,
            "log_file": self.log_file,
        }

    def apply(self, ctx: ApplyContext) -> dict[str, Any]:
        start = time.monotonic()
        self._began = time.time()
        _restart(ctx, self.method, self.argv(), self.docker_host, self.wait, self.log_file)
        return {"seconds": round(time.monotonic() - start, 2)}

    def verify(self, ctx: ApplyContext) -> None:
        client = engine.read_engine(ctx.host, self.docker_host)
        try:
            info = client.info()
        finally:
            client.close()
        runtimes = set((info.get("Runtimes") or {}).keys())
        missing = [r for r in self.expect_runtimes if r not in runtimes]
        if missing:
            raise WizardError(
                f"Docker restarted but does not list the runtime(s) {', '.join(missing)} "
                f"(it has {', '.join(sorted(runtimes))})",
                "dockerd may read another daemon.json (--config-file, snap, rootless): check "
                "`docker info` and pass --daemon-json the file it reads.",
            )
        if (
            self.expect_default_runtime
            and info.get("DefaultRuntime") != self.expect_default_runtime
        ):
            raise WizardError(
                f"Docker's default runtime is {info.get('DefaultRuntime')!r}, not "
                f"{self.expect_default_runtime!r}",
                "Check that default-runtime in the daemon.json dockerd reads is nvidia.",
            )
        ctx.log(f"Docker lists runtimes: {', '.join(sorted(runtimes))}")
        if self.gpu_probe_image:
            seen = self._hook_seen_by_new_daemon(ctx)
            if seen:
                ctx.log(
                    f"Docker registered its NVIDIA device driver: the restarted dockerd (pid "
                    f"{seen[0]}) found {seen[1]} on its PATH when it started"
                )
                return
            err = gpu_probe(ctx.host, self.docker_host, self.gpu_probe_image)
            if err:
                raise WizardError(
                    "Docker restarted but registered no NVIDIA device driver: "
                    f"`--gpus` fails with {GPU_DRIVER_MISSING}",
                    "dockerd finds `nvidia-container-runtime-hook` on its PATH only when it "
                    "starts: check the toolkit is installed (which nvidia-container-runtime-hook)"
                    " and that this is the daemon the docker CLI talks to.",
                    err,
                )
            ctx.log("Docker registered its NVIDIA device driver (`--gpus all` accepted)")

    def _hook_seen_by_new_daemon(self, ctx: ApplyContext) -> Optional[tuple[int, str]]:
        """(pid, hook) when the daemon that answers now started after this restart began and
        found the hook then: what dockerd registers `--gpus` by, read from /proc without a
        container (about 0.3 s of runc and hook per run). None: ask the engine (a remote or
        Desktop engine, another PID namespace, a hook it did not find)."""
        began = getattr(self, "_began", None)
        if began is None or not ctx.host.is_live or ctx.host.engine_factory is not None:
            return None
        proc = engine.find_dockerd(self.docker_host)
        if proc is None:
            return None
        hook = engine.hook_found_at_start(proc.pid, began)
        return (proc.pid, hook) if hook else None

    @classmethod
    def undo(cls, ctx: ApplyContext, undo: dict[str, Any], result: Optional[dict[str, Any]]) -> str:
        """Start Docker once on the (already restored) daemon.json, after clearing systemd's
        start limit. Never a loop: one start, one verification."""
        method = str(undo.get("method", "command"))
        _restart(
            ctx,
            method,
            list(undo["argv"]),
            undo.get("docker_host"),
            float(undo.get("wait", 60)),
            undo.get("log_file"),
        )
        return "Docker restarted on the restored daemon.json and answers again"


def _restart(
    ctx: ApplyContext,
    method: str,
    argv: list[str],
    docker_host: Optional[str],
    wait: float,
    log_file: Optional[str],
) -> None:
    """Run the restart command once, then wait for the engine with visible progress."""
    clear_start_limit(ctx, method)
    since = time.time() - 1
    ctx.log("$ " + " ".join(argv))
    res = ctx.host.run(
        argv, inside=False, check=False, on_line=ctx.line_logger(), timeout=max(wait, 30.0)
    )
    if res.returncode != 0:
        raise WizardError(
            f"Restarting Docker failed (`{' '.join(argv)}` exited {res.returncode})",
            "Read the daemon's log below (from this restart only).",
            daemon_log(ctx.host, method, log_file, since=since),
        )

    def tick(elapsed: float) -> None:
        ctx.progress(
            min(elapsed / wait, 1.0), f"waiting for Docker ({elapsed:.1f} s of {wait:.0f} s)"
        )

    try:
        engine.wait_for_engine(ctx.host, docker_host, wait, tick)
    except WizardError as exc:
        raise WizardError(
            exc.cause, exc.remedy, daemon_log(ctx.host, method, log_file, since=since)
        ) from exc
    ctx.progress(1.0, "Docker answers")
    ctx.log("Docker is back")
