"""A minimal Docker registry (v2 API, read-only) on 127.0.0.1, for real pulls in tests.

Serves one image made here from busybox-static in two gzip layers, slowly enough that dockerd
reports per-layer download progress. dockerd treats 127.0.0.0/8 as an insecure registry by
default, so no TLS is needed.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layer(files: dict[str, tuple[bytes, int]], links: dict[str, str]) -> tuple[bytes, bytes]:
    """(uncompressed tar, gzip blob) holding files {path: (data, mode)} and symlinks."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({str(Path(p).parent) for p in [*files, *links]} - {"."})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for path, (data, mode) in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = mode
            tar.addfile(info, io.BytesIO(data))
        for path, target in sorted(links.items()):
            info = tarfile.TarInfo(path)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    raw = buf.getvalue()
    return raw, gzip.compress(raw, mtime=0)


class Registry:
    """`127.0.0.1:PORT/gw/bb:1` while running."""

    def __init__(self, chunk_delay: float = 0.004) -> None:
        busybox = Path("/bin/busybox").read_bytes()
        raw1, blob1 = _layer(
            {"bin/busybox": (busybox, 0o755)},
            {f"bin/{n}": "busybox" for n in ("sh", "echo", "true", "cat")},
        )
        raw2, blob2 = _layer({"etc/gw-layer": (os.urandom(400_000), 0o644)}, {})
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Cmd": ["/bin/sh"]},
                "rootfs": {"type": "layers", "diff_ids": [_sha(raw1), _sha(raw2)]},
            }
        ).encode()
        self.blobs = {_sha(b): b for b in (blob1, blob2, config)}
        self.manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST_TYPE,
                "config": {
                    "mediaType": "application/vnd.docker.container.image.v1+json",
                    "size": len(config),
                    "digest": _sha(config),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                        "size": len(b),
                        "digest": _sha(b),
                    }
                    for b in (blob1, blob2)
                ],
            }
        ).encode()
        self.layer_ids = [_sha(b)[7:19] for b in (blob1, blob2)]
        self.chunk_delay = chunk_delay
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self.server.server_address[1]
        self.image = f"127.0.0.1:{self.port}/gw/bb:1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _handler(self) -> Any:
        reg = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, body: bytes, ctype: str, digest: str = "", slow: bool = False) -> None:
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Docker-Distribution-API-Version", "registry/2.0")
                if digest:
                    self.send_header("Docker-Content-Digest", digest)
                self.end_headers()
                if self.command == "HEAD":
                    return
                for i in range(0, len(body), 32768):
                    self.wfile.write(body[i : i + 32768])
                    if slow:
                        time.sleep(reg.chunk_delay)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path == "/v2/":
                    self._send(b"{}", "application/json")
                elif self.path in (
                    "/v2/gw/bb/manifests/1",
                    f"/v2/gw/bb/manifests/{_sha(reg.manifest)}",
                ):
                    self._send(reg.manifest, MANIFEST_TYPE, _sha(reg.manifest))
                elif self.path.startswith("/v2/gw/bb/manifests/"):
                    body = json.dumps(
                        {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}
                    ).encode()
                    self.send_response(404)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(body)
                elif self.path.startswith("/v2/gw/bb/blobs/"):
                    digest = self.path.rsplit("/", 1)[1]
                    if digest not in reg.blobs:
                        self.send_error(404)
                        return
                    self._send(reg.blobs[digest], "application/octet-stream", digest, slow=True)
                else:
                    self.send_error(404)

            do_HEAD = do_GET  # noqa: N815

        return Handler

    def __enter__(self) -> Registry:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
