"""Running a test container: pulled with per-layer progress, its output streamed line by line
as it is produced, removed afterwards, and judged with a named failure and its remedy."""

from __future__ import annotations

import contextlib
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from gpuwizard.actions.base import Action, ApplyContext, Diff, register
from gpuwizard.errors import WizardError
from gpuwizard.host import docker as engine
from gpuwizard.host.system import Host

# Where nvidia-smi sits when the toolkit mounts the driver at its host path (the project's GPU
# machine: /usr/local/nvidia/bin, on no standard PATH), NixOS, the GPU Operator's driver root.
DRIVER_ROOT_BINS = (
    "/usr/local/nvidia/bin/nvidia-smi",
    "/usr/bin/nvidia-smi",
    "/run/current-system/sw/bin/nvidia-smi",
    "/run/nvidia/driver/usr/bin/nvidia-smi",
    "/opt/nvidia/bin/nvidia-smi",
)
NOT_ON_PATH = "executable file not found in $PATH"


def _smi_not_found(text: str, command: str) -> bool:
    """The container started but has no such program (not: a hook's own missing binary, such
    as `nvidia-container-cli`, whose message also says "not found in $PATH")."""
    low = text.lower()
    return f'exec: "{command}"' in text and (NOT_ON_PATH in text or "no such file" in low)


def parse_gpus(spec: str) -> dict[str, Any]:
    """`--gpus` as the docker CLI reads it, as DeviceRequest fields:
    all | N | device=0,2 | "device=GPU-uuid" | count=N,capabilities=...,driver=..."""
    text = (spec or "all").strip().strip("'").strip('"').strip()
    if text == "all":
        return {"count": -1, "capabilities": [["gpu"]]}
    if text.isdigit():
        return {"count": int(text), "capabilities": [["gpu"]]}
    out: dict[str, Any] = {"capabilities": [["gpu"]]}
    key = ""
    for part in text.split(","):
        if "=" in part:
            key, value = part.split("=", 1)
            key = key.strip()
        else:
            value = part  # continues the previous list (device=0,2), or a bare all / N
        value = value.strip().strip('"')
        if not key and (value == "all" or value.isdigit()):
            out["count"] = -1 if value == "all" else int(value)
        elif key == "device":
            out.setdefault("device_ids", []).append(value)
        elif key == "count":
            out["count"] = -1 if value == "all" else int(value)
        elif key == "driver":
            out["driver"] = value
        elif key == "capabilities":
            caps = out.get("_caps", [])
            caps.append(value)
            out["_caps"] = caps
        else:
            raise WizardError(
                f"Cannot read the GPU selection {spec!r}",
                'Use "all", a count such as "2", or "device=0,2" (indexes or UUIDs).',
            )
    if "_caps" in out:
        out["capabilities"] = [out.pop("_caps")]
    if "device_ids" not in out and "count" not in out:
        out["count"] = -1
    return out


def request_fields(gpus: Optional[str], cdi: Optional[list[str]] = None) -> list[dict[str, Any]]:
    """DeviceRequest fields for `--gpus` and for CDI names (`--device nvidia.com/gpu=all`)."""
    out = []
    if gpus:
        out.append(parse_gpus(gpus))
    if cdi:
        out.append({"driver": "cdi", "device_ids": list(cdi)})
    return out


def device_requests(gpus: Optional[str], cdi: Optional[list[str]] = None) -> list[Any]:
    """The same as Docker SDK DeviceRequests."""
    import docker

    return [docker.types.DeviceRequest(**fields) for fields in request_fields(gpus, cdi)]


def _collector(ctx: ApplyContext) -> tuple[list[str], Callable[[str, str], None]]:
    """A container's output lines, kept for the verdict and shown live."""
    lines: list[str] = []

    def sink(stream: str, text: str) -> None:
        lines.append(text)
        ctx.log(text, stream)

    return lines, sink


def plain_run(host: Host, docker_host: Optional[str], timeout: float) -> Optional[Any]:
    """Test containers over plain HTTP (host/engine_run.py) where the engine's URL allows it
    and no stand-in engine is set; None: the SDK runs them."""
    import os

    from gpuwizard.host.engine_api import PlainEngine, speaks_plainly
    from gpuwizard.host.engine_run import PlainRun

    url = docker_host or os.environ.get("DOCKER_HOST") or f"unix://{engine.DEFAULT_SOCKET}"
    if host.engine_factory is not None or not speaks_plainly(url):
        return None
    return PlainRun(PlainEngine(url, timeout=min(timeout, 60.0)))


def cli_args(
    gpus: Optional[str],
    runtime: Optional[str],
    cdi: Optional[list[str]],
    env: Optional[dict[str, str]],
) -> list[str]:
    """The same container as `docker run` arguments, for the plan and the snippets."""
    args = []
    if runtime:
        args += ["--runtime", runtime]
    if gpus:
        g = gpus.strip()
        args += ["--gpus", f'"{g}"' if "," in g and not g.startswith('"') else g]
    for name in cdi or []:
        args += ["--device", name]
    for k, v in (env or {}).items():
        args += ["-e", f"{k}={v}"]
    return args


@dataclass(frozen=True)
class Verdict:
    """How a test container ended: passed, or a named failure with its remedy."""

    passed: bool
    code: str
    title: str
    cause: str = ""
    remedy: str = ""

    def error(self, detail: str = "") -> WizardError:
        return WizardError(
            f"{self.title}: {self.cause}" if self.cause else self.title, self.remedy, detail
        )


def classify(text: str) -> Optional[Verdict]:
    """A named failure for an error text, from the one table of known failures."""
    from gpuwizard import failures

    found = failures.classify(text)
    if found is None:
        return None
    return Verdict(False, found.code, found.title, found.cause, found.fix)


@dataclass
class LineSplitter:
    """Bytes in, whole lines out, as soon as each newline arrives."""

    sink: Callable[[str, str], None]
    buf: dict[str, bytes] = field(default_factory=dict)

    def feed(self, stream: str, chunk: bytes) -> None:
        data = self.buf.get(stream, b"") + chunk
        *lines, rest = data.split(b"\n")
        self.buf[stream] = rest
        for line in lines:
            self.sink(stream, line.decode("utf-8", "replace").rstrip("\r"))

    def close(self) -> None:
        for stream, rest in self.buf.items():
            if rest:
                self.sink(stream, rest.decode("utf-8", "replace"))
        self.buf.clear()


def pull(ctx: ApplyContext, client: Any, image: str) -> None:
    """Pull with per-layer progress: one Progress event per update; the fraction counts each
    layer's download and extraction as halves of its size, so it only grows."""
    repo, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "latest")
    layers: dict[str, dict[str, int]] = {}
    ctx.log(f"pulling {image}")
    try:
        for ev in client.api.pull(repo, tag=tag, stream=True, decode=True):
            if "error" in ev:
                raise RuntimeError(ev["error"])
            lid = ev.get("id", "")
            status = ev.get("status", "")
            detail = ev.get("progressDetail") or {}
            if lid and status in (
                "Pulling fs layer",
                "Waiting",
                "Downloading",
                "Extracting",
                "Download complete",
                "Verifying Checksum",
                "Pull complete",
                "Already exists",
            ):
                layer = layers.setdefault(lid, {"total": 0, "down": 0, "ext": 0})
                if detail.get("total"):
                    layer["total"] = max(layer["total"], int(detail["total"]))
                current = int(detail.get("current", 0) or 0)
                if status == "Downloading":
                    layer["down"] = max(layer["down"], current)
                elif status == "Extracting":
                    layer["down"] = layer["total"]
                    layer["ext"] = max(layer["ext"], current)
                elif status in ("Download complete", "Verifying Checksum"):
                    layer["down"] = layer["total"]
                elif status in ("Pull complete", "Already exists"):
                    layer["total"] = layer["total"] or 1
                    layer["down"] = layer["ext"] = layer["total"]
            known = [v for v in layers.values() if v["total"]]
            total = 2 * sum(v["total"] for v in known)
            done = sum(min(v["down"], v["total"]) + min(v["ext"], v["total"]) for v in known)
            fraction = done / total if total and len(known) == len(layers) else None
            ctx.progress(fraction, f"{lid}: {status}" if lid else status)
    except Exception as exc:  # the SDK's APIError and the stream's error events
        text = str(exc)
        verdict = classify(text)
        if verdict:
            raise verdict.error(text) from exc
        raise WizardError(
            f"Cannot pull {image}: {text[:300]}",
            "Check the registry is reachable (or use --test-image with a mirror, "
            "or an image already on the host).",
        ) from exc


def image_present(client: Any, image: str) -> bool:
    import docker

    try:
        client.images.get(image)
        return True
    except docker.errors.ImageNotFound:
        return False


@register
@dataclass
class RunContainer(Action):
    """Run one container to a verdict, showing its output live; removes it afterwards."""

    kind = "run-container"
    mutates = False  # a check; what it pulls is still journaled and removed on rollback

    image: str = ""
    command: list[str] = field(default_factory=list)
    gpus: Optional[str] = None
    runtime: Optional[str] = None
    cdi_devices: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    docker_host: Optional[str] = None
    expect: list[str] = field(default_factory=list)  # texts the output must show
    nvidia_smi_paths: list[str] = field(default_factory=list)  # retried when not on PATH
    expect_runtime: Optional[str] = None  # the runtime the container must have run with
    timeout: float = 300.0
    must_pass: bool = True  # False: a failed verdict is reported, and the step judges
    alternatives: list[str] = field(default_factory=list)  # tried when the image's tag is gone
    reason: str = ""
    route: str = ""  # gpus | runtime | cdi | default-runtime: a way to the GPU; "": a check

    def cli_for_user(self) -> str:
        """The line that worked, with the command as it ran (nvidia-smi's absolute path when
        the container has it on no PATH)."""
        ran = getattr(self, "_ran_command", None) or self.command
        parts = ["docker", "run", "--rm"]
        parts += cli_args(self.gpus, self.runtime, self.cdi_devices, self.env)
        return " ".join([*parts, self.image, *ran])

    def describe(self) -> str:
        return self.reason or "run " + self.cli()

    @property
    def verdict(self) -> Optional[Verdict]:
        """How the last run ended (None before it ran)."""
        return getattr(self, "_verdict", None)

    def cli(self) -> str:
        parts = [
            "docker",
            "run",
            "--rm",
            *cli_args(self.gpus, self.runtime, self.cdi_devices, self.env),
            self.image,
            *self.command,
        ]
        return " ".join(parts)

    def params(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "command": self.command,
            "gpus": self.gpus,
            "runtime": self.runtime,
            "cdi_devices": self.cdi_devices,
            "env": self.env,
            "cli": self.cli(),
            "route": self.route,
        }

    def preview(self, host: Host) -> list[Diff]:
        return [Diff("container", None, self.cli(), "container", self.describe())]

    def needed(self, host: Host) -> bool:
        return True

    @classmethod
    def group_facts(cls, host: Host, actions: list[Any]) -> Any:
        """The image tags of each engine these containers use, asked once (plain HTTP); None
        for an engine that does not answer now (its containers run alone and say why)."""
        from gpuwizard.host.engine_api import EngineAPIError

        out: dict[Optional[str], Optional[set[str]]] = {}
        for url in {a.docker_host for a in actions}:
            try:
                reader = engine.read_engine(host, url)
                try:
                    out[url] = set(reader.image_tags())
                finally:
                    reader.close()
            except (WizardError, EngineAPIError, OSError, ValueError):
                out[url] = None
        return out

    def starts_now(self, facts: Any) -> bool:
        """Test containers run together when their image is here already (nothing to pull:
        a pull shows its progress, and two pulls of one image would both journal it)."""
        tags = facts.get(self.docker_host) if isinstance(facts, dict) else None
        if not tags:
            return False
        last = self.image.rsplit("/", 1)[-1]
        bare = ":" not in last and "@" not in last
        return self.image in tags or (bare and f"{self.image}:latest" in tags)

    def prepare(self, ctx: ApplyContext) -> dict[str, Any]:
        plain = plain_run(ctx.host, self.docker_host, self.timeout)
        if plain is not None:
            present = plain.image_present(self.image)
        else:
            client = engine.connect(ctx.host, self.docker_host)
            try:
                present = image_present(client, self.image)
            finally:
                client.close()
        name = f"gpuwizard-test-{secrets.token_hex(4)}"
        self._name = name
        return {
            "image": self.image,
            "image_was_present": present,
            "container": name,
            "docker_host": self.docker_host,
        }

    def apply(self, ctx: ApplyContext) -> dict[str, Any]:
        pulled = False
        plain = plain_run(ctx.host, self.docker_host, self.timeout)
        if plain is not None and plain.image_present(self.image):
            code, lines, runtime = self._run_retrying(
                ctx, lambda command: self._run_once_plain(ctx, plain, command)
            )
        else:
            client = engine.connect(ctx.host, self.docker_host, timeout=self.timeout)
            try:
                if not image_present(client, self.image):
                    self.image = self._pull_first(ctx, client)
                    pulled = True
                code, lines, runtime = self._run_retrying(
                    ctx, lambda command: self._run_once(ctx, client, command)
                )
            finally:
                client.close()
        text = "\n".join(lines)
        verdict = self.judge(code, text, runtime)
        self._verdict = verdict
        return {
            "exit": code,
            "pulled": pulled,
            "runtime": runtime,
            "passed": verdict.passed,
            "code": verdict.code,
            "route": self.route,
            "tail": lines[-20:],
        }

    def _run_retrying(
        self, ctx: ApplyContext, run: Callable[[list[str]], tuple[int, list[str], str]]
    ) -> tuple[int, list[str], str]:
        """Run it; where nvidia-smi is on no PATH of the container, again with each path the
        driver may have put it at."""
        ctx.log("$ " + self.cli())
        code, lines, runtime = run(list(self.command))
        text = "\n".join(lines)
        if code != 0 and _smi_not_found(text, "nvidia-smi") and self.command[:1] == ["nvidia-smi"]:
            for path in self.nvidia_smi_paths:
                ctx.log(f"nvidia-smi is not on the container's PATH; trying {path}")
                code, lines, runtime = run([path, *self.command[1:]])
                text = "\n".join(lines)
                self._ran_command = [path, *self.command[1:]]
                if code == 0 or not _smi_not_found(text, path):
                    break
        return code, lines, runtime

    def _run_once_plain(
        self, ctx: ApplyContext, plain: Any, command: list[str]
    ) -> tuple[int, list[str], str]:
        """`_run_once` over plain HTTP: the same container, output and exits."""
        from gpuwizard.host.engine_run import device_requests_json

        lines, sink = _collector(ctx)
        name = self._container_name()
        host_config: dict[str, Any] = {}
        requests = device_requests_json(request_fields(self.gpus, self.cdi_devices))
        if requests:
            host_config["DeviceRequests"] = requests
        if self.runtime:
            host_config["Runtime"] = self.runtime
        config = {
            "Image": self.image,
            "Cmd": command,
            "Env": [f"{k}={v}" for k, v in self.env.items()],
            "AttachStdout": True,
            "AttachStderr": True,
            "Tty": False,
            "HostConfig": host_config,
        }
        splitter = LineSplitter(sink)
        code, runtime, refused = plain.run(name, config, splitter.feed, self.timeout)
        splitter.close()
        if refused is not None:
            sink("err", refused)
        return code, lines, runtime

    def _container_name(self) -> str:
        """The name prepare() journaled (so a rollback finds it), else a fresh one."""
        return getattr(self, "_name", None) or f"gpuwizard-test-{secrets.token_hex(4)}"

    def _pull_first(self, ctx: ApplyContext, client: Any) -> str:
        """Pull the image, or the first alternative whose tag still exists (NVIDIA deletes
        CUDA tags six months after their end of life)."""
        candidates = [self.image, *[a for a in self.alternatives if a != self.image]]
        for i, image in enumerate(candidates):
            try:
                pull(ctx, client, image)
                return image
            except WizardError as exc:
                text = exc.cause + exc.detail
                gone = "manifest" in text or "not found" in text
                if not gone or i == len(candidates) - 1:
                    raise
                ctx.log(f"{image} no longer exists; trying {candidates[i + 1]}", "err")
        raise AssertionError("unreachable")

    def _run_once(
        self, ctx: ApplyContext, client: Any, command: list[str]
    ) -> tuple[int, list[str], str]:
        """Create, attach, start, stream, wait, remove. Returns (exit, lines, runtime)."""
        import docker

        lines, sink = _collector(ctx)
        name = self._container_name()
        kwargs: dict[str, Any] = {
            "environment": dict(self.env),
            "name": name,
            "device_requests": device_requests(self.gpus, self.cdi_devices) or None,
        }
        if self.runtime:
            kwargs["runtime"] = self.runtime
        try:
            container = client.containers.create(self.image, command, **kwargs)
        except docker.errors.APIError as exc:
            msg = str(exc.explanation or exc)
            sink("err", msg)
            # a create that failed half way can still leave the named container behind
            with contextlib.suppress(docker.errors.APIError):
                client.containers.get(name).remove(force=True)
            return 125, lines, ""
        runtime = ""
        try:
            runtime = str(container.attrs.get("HostConfig", {}).get("Runtime", ""))
            stream = client.api.attach(
                container.id, stdout=True, stderr=True, stream=True, logs=False, demux=True
            )
            splitter = LineSplitter(sink)
            try:
                container.start()
            except docker.errors.APIError as exc:
                sink("err", str(exc.explanation or exc))
                return 126, lines, runtime
            deadline = time.monotonic() + self.timeout
            for out, err in stream:
                if out:
                    splitter.feed("out", out)
                if err:
                    splitter.feed("err", err)
                if time.monotonic() > deadline:
                    container.kill()
                    break
            splitter.close()
            code = int(container.wait(timeout=self.timeout).get("StatusCode", 1))
            return code, lines, runtime
        finally:
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)

    def judge(self, code: int, text: str, runtime: str) -> Verdict:
        if code != 0:
            found = classify(text)
            if found is not None:
                return found
            return Verdict(
                False,
                "container-failed",
                f"The test container exited {code}",
                text.strip().splitlines()[-1] if text.strip() else "no output",
                "Read its output above.",
            )
        missing = [e for e in self.expect if not re.search(e, text)]
        if missing:
            return Verdict(
                False,
                "no-gpu-seen",
                "The container ran but showed no GPU",
                f"its output lacks {missing[0]!r}",
                "Check NVIDIA_VISIBLE_DEVICES and the GPU selection (--gpus).",
            )
        if self.expect_runtime and runtime != self.expect_runtime:
            return Verdict(
                False,
                "wrong-runtime",
                f"The container ran with runtime {runtime!r}",
                f"not {self.expect_runtime!r}",
                "Check default-runtime in the daemon.json dockerd reads.",
            )
        return Verdict(True, "pass", "passed")

    def verify(self, ctx: ApplyContext) -> None:
        verdict = self.verdict
        if verdict is not None and not verdict.passed:
            if self.must_pass:
                raise verdict.error()
            ctx.log(f"failed: {self.describe()}: {verdict.title}", "err")
            return
        ctx.log(f"passed: {self.describe()}")

    @classmethod
    def undo(cls, ctx: ApplyContext, undo: dict[str, Any], result: Optional[dict[str, Any]]) -> str:
        """Remove the container if it was left behind, and the image if we pulled it."""
        import docker

        try:
            client = engine.connect(ctx.host, undo.get("docker_host"))
        except Exception:  # no engine: nothing of ours can be left in it
            return "Docker is not reachable; nothing to remove"
        notes = []
        try:
            try:
                client.containers.get(undo["container"]).remove(force=True)
                notes.append(f"removed container {undo['container']}")
            except docker.errors.NotFound:
                pass
            if not undo.get("image_was_present") and result and result.get("pulled"):
                try:
                    client.images.remove(undo["image"])
                    notes.append(f"removed the pulled image {undo['image']}")
                except docker.errors.ImageNotFound:
                    pass
                except docker.errors.APIError as exc:
                    notes.append(f"kept {undo['image']} ({exc.explanation})")
        finally:
            client.close()
        return "; ".join(notes) or "nothing left to remove"
