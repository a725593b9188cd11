"""Read-only questions to the Docker engine as plain HTTP over its socket: ping, info,
version, the image tags.

The probe and the restart's wait ask only these, and the Docker SDK costs a third of a second
to import (requests, urllib3, its models) in every process that plans: the CLI, then the
worker. `http.client` over the UNIX socket answers the same JSON in milliseconds. Anything
else (creating containers, pulls, loads), and any URL this does not speak plainly (ssh://, TLS),
still goes through the SDK (`host.docker.connect`).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
from typing import Any, Optional
from urllib.parse import quote, urlsplit


class EngineAPIError(Exception):
    """The engine did not answer, or answered with an error status (`status`, and its own
    words in `message`, as the SDK's `explanation` gives them)."""

    def __init__(self, text: str, status: int = 0, message: str = "") -> None:
        super().__init__(text)
        self.status = status
        self.message = message or text


class _UnixConnection(http.client.HTTPConnection):
    """HTTP on a UNIX stream socket (the engine's /run/docker.sock)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def speaks_plainly(url: str) -> bool:
    """True for what this client can reach without the SDK: unix:// always, tcp:// when no
    TLS is asked for (DOCKER_TLS_VERIFY / DOCKER_CERT_PATH send it to the SDK)."""
    if url.startswith("unix://"):
        return True
    if url.startswith(("tcp://", "http://")):
        return not (os.environ.get("DOCKER_TLS_VERIFY") or os.environ.get("DOCKER_CERT_PATH"))
    return False


class PlainEngine:
    """The few read-only calls, with the SDK client's method names (info, version, ping)."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        if not speaks_plainly(url):
            raise ValueError(f"not a plain engine URL: {url}")
        self.url = url
        self.timeout = timeout

    def _connection(self) -> http.client.HTTPConnection:
        if self.url.startswith("unix://"):
            return _UnixConnection(self.url[len("unix://") :], self.timeout)
        parts = urlsplit(self.url.replace("tcp://", "http://", 1))
        return http.client.HTTPConnection(
            parts.hostname or "127.0.0.1", parts.port or 2375, timeout=self.timeout
        )

    def _get(self, path: str) -> bytes:
        return self._call("GET", path)

    def _call(self, method: str, path: str, body: Any = None) -> bytes:
        conn = self._connection()
        headers = {"Host": "docker"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            payload: bytes = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise EngineAPIError(f"Cannot reach Docker at {self.url}: {exc}") from exc
        finally:
            conn.close()
        if resp.status >= 400:
            try:
                message = json.loads(payload).get("message", "")
            except (ValueError, AttributeError):
                message = payload[:200].decode(errors="replace")
            raise EngineAPIError(
                f"{resp.status} from the engine for {path}: {message}", resp.status, message
            )
        return payload

    def raw_socket(self, timeout: float) -> socket.socket:
        """A connected socket to the engine, for a call whose answer is a stream (attach)."""
        conn = self._connection()
        conn.timeout = timeout
        try:
            conn.connect()
        except OSError as exc:
            raise EngineAPIError(f"Cannot reach Docker at {self.url}: {exc}") from exc
        sock = conn.sock
        assert sock is not None
        conn.sock = None  # the socket is the caller's now
        return sock

    def inspect(self, container: str) -> dict[str, Any]:
        data = self._json(f"/containers/{container}/json")
        return data if isinstance(data, dict) else {}

    def _json(self, path: str) -> Any:
        try:
            return json.loads(self._get(path))
        except ValueError as exc:
            raise EngineAPIError(f"the engine's answer to {path} is not JSON") from exc

    def ping(self) -> bool:
        return self._get("/_ping").strip() == b"OK"

    def info(self) -> dict[str, Any]:
        data = self._json("/info")
        return data if isinstance(data, dict) else {}

    def version(self) -> dict[str, Any]:
        data = self._json("/version")
        return data if isinstance(data, dict) else {}

    def image_tags(self) -> tuple[str, ...]:
        images = self._json("/images/json")
        if not isinstance(images, list):
            return ()
        return tuple(
            t for img in images for t in (img.get("RepoTags") or ()) if t != "<none>:<none>"
        )

    def gpu_devices_error(self, image: str, name: str, wait: float = 60.0) -> Optional[str]:
        """`docker run --gpus all IMAGE true` as the engine sees it: None when the engine
        started the container with its GPU device driver, else the engine's error. The
        container is removed on every path."""
        quoted = quote(name)
        body = {
            "Image": image,
            "Cmd": ["true"],
            "HostConfig": {"DeviceRequests": [{"Count": -1, "Capabilities": [["gpu"]]}]},
        }
        try:
            self._call("POST", f"/containers/create?name={quoted}", body)
            self._call("POST", f"/containers/{quoted}/start")
            old = self.timeout
            self.timeout = wait
            try:
                self._call("POST", f"/containers/{quoted}/wait")
            finally:
                self.timeout = old
            return None
        except EngineAPIError as exc:
            return str(exc)
        finally:
            with contextlib.suppress(EngineAPIError):
                self._call("DELETE", f"/containers/{quoted}?force=1")

    def close(self) -> None:
        """Nothing is kept open between calls."""


class _SdkReader:
    """The same calls on an SDK-shaped client (a stand-in engine, an ssh:// or TLS URL)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def ping(self) -> bool:
        return bool(self.client.ping())

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = self.client.info()
        return info

    def version(self) -> dict[str, Any]:
        version: dict[str, Any] = self.client.version()
        return version

    def image_tags(self) -> tuple[str, ...]:
        return tuple(t for img in self.client.images.list() for t in (img.tags or ()))

    def close(self) -> None:
        self.client.close()


def reader(url: str, engine_factory: Any, docker_host: Optional[str], timeout: float = 10.0) -> Any:
    """An object answering ping/info/version/image_tags for this engine: plain HTTP when the
    URL allows, else the SDK (through the host's engine seam when one is set)."""
    if engine_factory is None and speaks_plainly(url):
        return PlainEngine(url, timeout)
    if engine_factory is not None:
        return _SdkReader(engine_factory(docker_host))
    import docker  # lazy: only for URLs plain HTTP does not reach

    return _SdkReader(docker.DockerClient(base_url=url, timeout=int(timeout)))
