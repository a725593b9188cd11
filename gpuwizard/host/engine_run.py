"""One test container over plain HTTP on the engine's socket: create, attach, start, stream,
wait, remove, as `docker run --rm` does, without the Docker SDK.

The GPU test's containers are the one thing left in a run that imported the SDK (requests,
urllib3, its models: 0.06-0.15 s in the worker, on every apply that tests the GPU). When the
image is already there, nothing else of the SDK is needed: these are six documented endpoints,
and attach's multiplexed stream is an 8-byte header per chunk. Pulls, TLS and ssh:// engines
keep the SDK (`host.docker.connect`).
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import time
from typing import Any, Callable, Optional
from urllib.parse import quote

from gpuwizard.errors import WizardError
from gpuwizard.host.engine_api import EngineAPIError, PlainEngine

STREAMS = {1: "out", 2: "err"}  # attach's stream types (0 is stdin)


def device_requests_json(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """parse_gpus' keys (the SDK's DeviceRequest arguments) as the API's JSON."""
    names = {
        "driver": "Driver",
        "count": "Count",
        "device_ids": "DeviceIDs",
        "capabilities": "Capabilities",
        "options": "Options",
    }
    base = {"Driver": "", "Count": 0, "DeviceIDs": [], "Capabilities": [], "Options": {}}
    return [{**base, **{names[k]: v for k, v in r.items() if k in names}} for r in requests]


class PlainRun:
    """The calls of one `docker run --rm` on a plain engine."""

    def __init__(self, engine: PlainEngine) -> None:
        self.engine = engine

    def image_present(self, image: str) -> bool:
        try:
            self.engine._call("GET", f"/images/{quote(image, safe='')}/json")
            return True
        except EngineAPIError as exc:
            if exc.status == 404:
                return False
            raise self._unreachable(exc) from exc

    def _unreachable(self, exc: EngineAPIError) -> WizardError:
        return WizardError(
            f"Cannot reach Docker at {self.engine.url}",
            "Start Docker (or pass --docker-host the engine's socket), then run gpuwizard again.",
            str(exc),
        )

    def run(
        self,
        name: str,
        config: dict[str, Any],
        on_chunk: Callable[[str, bytes], None],
        timeout: float,
    ) -> tuple[int, str, Optional[str]]:
        """(exit status, the runtime it ran with, the engine's refusal or None). 125: the
        engine refused to create it, 126: to start it (as `docker run` exits)."""
        try:
            return self._run(name, config, on_chunk, timeout)
        except EngineAPIError as exc:
            raise self._unreachable(exc) from exc

    def _run(
        self,
        name: str,
        config: dict[str, Any],
        on_chunk: Callable[[str, bytes], None],
        timeout: float,
    ) -> tuple[int, str, Optional[str]]:
        quoted = quote(name, safe="")
        try:
            self.engine._call("POST", f"/containers/create?name={quoted}", config)
        except EngineAPIError as exc:
            with contextlib.suppress(EngineAPIError):
                self.engine._call("DELETE", f"/containers/{quoted}?force=1")
            return 125, "", exc.message
        try:
            runtime = str(self.engine.inspect(quoted).get("HostConfig", {}).get("Runtime", ""))
            stream = self._attach(quoted, timeout)
            try:
                try:
                    self.engine._call("POST", f"/containers/{quoted}/start")
                except EngineAPIError as exc:
                    return 126, runtime, exc.message
                if not _pump(stream, on_chunk, time.monotonic() + timeout):
                    with contextlib.suppress(EngineAPIError):
                        self.engine._call("POST", f"/containers/{quoted}/kill")
            finally:
                stream.close()
            old = self.engine.timeout
            self.engine.timeout = timeout
            try:
                waited = json.loads(self.engine._call("POST", f"/containers/{quoted}/wait"))
            finally:
                self.engine.timeout = old
            return int(waited.get("StatusCode", 1)), runtime, None
        finally:
            with contextlib.suppress(EngineAPIError):
                self.engine._call("DELETE", f"/containers/{quoted}?force=1")

    def _attach(self, quoted: str, timeout: float) -> socket.socket:
        """POST attach with the upgrade `docker run` asks for, before the start; the socket
        then carries the container's output, multiplexed. Stream only, as `docker run`: with
        logs=1 the engine may replay output it also streams (seen here: every line twice)."""
        sock = self.engine.raw_socket(timeout)
        path = f"/containers/{quoted}/attach?stream=1&stdout=1&stderr=1"
        request = (
            f"POST {path} HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\n"
            "Upgrade: tcp\r\nContent-Length: 0\r\n\r\n"
        )
        try:
            sock.sendall(request.encode())
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(4096)
                if not chunk:
                    raise EngineAPIError("the engine closed the attach before answering")
                head += chunk
                if len(head) > 65536:
                    raise EngineAPIError("the engine's answer to attach has no end of headers")
            status_line, _, _ = head.partition(b"\r\n")
            parts = status_line.split()
            if len(parts) < 2 or parts[1] not in (b"101", b"200"):
                raise EngineAPIError(
                    f"attach: {status_line.decode(errors='replace')}", status=_status(parts)
                )
            rest = head.split(b"\r\n\r\n", 1)[1]
        except (OSError, EngineAPIError):
            sock.close()
            raise
        return _Prefixed(sock, rest)  # type: ignore[return-value]


def _status(parts: list[bytes]) -> int:
    try:
        return int(parts[1])
    except (IndexError, ValueError):
        return 0


class _Prefixed:
    """A socket whose first bytes were already read with the headers."""

    def __init__(self, sock: socket.socket, first: bytes) -> None:
        self.sock = sock
        self.first = first

    def recv(self, n: int) -> bytes:
        if self.first:
            out, self.first = self.first[:n], self.first[n:]
            return out
        return self.sock.recv(n)

    def settimeout(self, t: Optional[float]) -> None:
        self.sock.settimeout(t)

    def close(self) -> None:
        self.sock.close()


def _pump(stream: Any, on_chunk: Callable[[str, bytes], None], deadline: float) -> bool:
    """Frames until the container's end closes the stream (True), or the deadline (False)."""
    buf = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        stream.settimeout(left)
        try:
            chunk = stream.recv(65536)
        except socket.timeout:
            return False
        except OSError:
            return True  # the engine closed it (the container is gone)
        if not chunk:
            return True
        buf += chunk
        while len(buf) >= 8:
            kind, size = buf[0], struct.unpack(">I", buf[4:8])[0]
            if len(buf) < 8 + size:
                break
            payload, buf = buf[8 : 8 + size], buf[8 + size :]
            if kind in STREAMS and payload:
                on_chunk(STREAMS[kind], payload)
