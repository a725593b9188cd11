"""`gpuwizard bundle`: on a connected machine, collect what an offline host needs.

The key is fetched and its fingerprint checked exactly as the repository step does
(host.keys.checked_key); the repository's InRelease must be signed by that key; the Packages
index must match the signed Release and every package its index entry. Nothing is written
to the output until all of it is in place; the archive is written beside it and renamed.
"""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from gpuwizard import __version__
from gpuwizard.bundle import aptrepo, rpmmd
from gpuwizard.bundle.archive import (
    FORMAT,
    KEY_FILE,
    PYZ,
    REPO_DIR,
    image_file,
    sha256_file,
    write_archive,
)
from gpuwizard.bundle.images import engine_ready, save_image
from gpuwizard.bundle.target import Target
from gpuwizard.errors import WizardError
from gpuwizard.host.keys import checked_key, normalize_fingerprint
from gpuwizard.host.system import Host
from gpuwizard.options import NVIDIA_KEY_FINGERPRINT, NVIDIA_KEY_URL, NVIDIA_REPO_URL

DEFAULT_TEST_IMAGE = "ubuntu:24.04"  # the gpu-test step's smoke image
NOT_CARRIED = (
    "A bundle carries the NVIDIA Container Toolkit, its key and index, the test image(s) and "
    "gpuwizard; never the NVIDIA driver (it depends on the offline host's kernel and GPU: "
    "install it there from your distribution's media or NVIDIA's offline installer first), "
    "nor Docker itself."
)


@dataclass
class BundleRequest:
    """What `gpuwizard bundle` was asked for."""

    target: Target
    out: Path
    repo_url: str = NVIDIA_REPO_URL
    key_url: str = NVIDIA_KEY_URL
    key_fingerprint: str = NVIDIA_KEY_FINGERPRINT
    toolkit_version: Optional[str] = None
    test_image: str = DEFAULT_TEST_IMAGE
    cuda_image: Optional[str] = None
    images: bool = True
    docker_host: Optional[str] = None
    pyz: Optional[Path] = None  # None: found or built (see find_pyz)
    with_pyz: bool = True
    notes: list[str] = field(default_factory=list)


def created_stamp() -> str:
    """The manifest's time: SOURCE_DATE_EPOCH where it is set (the reproducible-builds rule,
    so the same inputs give the same kit, byte for byte: members already carry a fixed mtime),
    else now."""
    raw = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if raw:
        if not raw.isdigit():
            raise WizardError(
                f"SOURCE_DATE_EPOCH is {raw!r}, not a whole number of seconds since 1970",
                "Unset it, or set it to a time such as the last commit's: "
                "SOURCE_DATE_EPOCH=$(git log -1 --format=%ct).",
            )
        when = datetime.datetime.fromtimestamp(int(raw), datetime.timezone.utc)
    else:
        when = datetime.datetime.now(datetime.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _checkout() -> Optional[Path]:
    """The source checkout gpuwizard runs from, when it is one (scripts/build_pyz.py there)."""
    top = Path(__file__).resolve().parent.parent.parent
    return top if (top / "scripts" / "build_pyz.py").is_file() else None


def _is_zipapp(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return "__main__.py" in z.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def find_pyz(req: BundleRequest, work: Path, say: Callable[[str], None]) -> Optional[Path]:
    """gpuwizard itself: --pyz, else the .pyz this runs from, else one built from this
    checkout (scripts/build_pyz.py, reproducible), else its dist/gpuwizard.pyz."""
    if req.pyz is not None:
        if not _is_zipapp(req.pyz):
            raise WizardError(
                f"--pyz {req.pyz} is not a zipapp (no __main__.py inside)",
                "Build it with `python3 scripts/build_pyz.py` and pass dist/gpuwizard.pyz.",
            )
        return req.pyz
    running = os.environ.get("GPUWIZARD_PYZ")
    if running and _is_zipapp(Path(running)):
        return Path(running)
    top = _checkout()
    if top is not None:
        out = work / "built" / PYZ
        res = subprocess.run(  # noqa: S603
            [sys.executable, str(top / "scripts" / "build_pyz.py"), "--out", str(out)],
            capture_output=True,
            text=True,
            check=False,
        )
        if res.returncode == 0 and _is_zipapp(out):
            say("built gpuwizard.pyz from this checkout (scripts/build_pyz.py)")
            return out
        last = (res.stderr.strip().splitlines() or ["no output"])[-1]
        req.notes.append(f"gpuwizard.pyz could not be built ({last})")
        dist = top / "dist" / PYZ
        if _is_zipapp(dist):
            return dist
    req.notes.append(
        "gpuwizard itself is not in this bundle: pass --pyz dist/gpuwizard.pyz "
        "(python3 scripts/build_pyz.py builds it), or copy it to the offline host separately"
    )
    return None


def make_bundle(req: BundleRequest, say: Callable[[str], None]) -> dict[str, Any]:
    """Collect, check and write the bundle; returns its summary (the manifest, the size and
    the SHA-256 of the archive)."""
    host = Host()
    out = req.out.resolve()
    if not out.parent.is_dir():
        raise WizardError(
            f"The folder for {req.out} does not exist", "Create it, or pass -o another path."
        )
    if req.images:
        engine_ready(host, req.docker_host, req.test_image)  # before any download
    key = checked_key(host, req.key_url, req.key_fingerprint)
    say(f"key {key.fingerprint} from {req.key_url}: fingerprint checked")
    work = Path(tempfile.mkdtemp(prefix=".gpuwizard-bundle-", dir=out.parent))
    try:
        tree = work / "tree"
        (tree / "repo").mkdir(parents=True)
        (tree / KEY_FILE).write_bytes(key.armored)
        arch = req.target.arch
        kind = "rpm" if req.target.family == "rpm" else "deb"
        copier = rpmmd.copy_rpm_repository if kind == "rpm" else aptrepo.copy_repository
        copy = copier(
            host, key, req.repo_url, arch, req.toolkit_version, tree / REPO_DIR / kind / arch, say
        )
        files = [KEY_FILE] + [f"{REPO_DIR}/{kind}/{arch}/{f}" for f in copy.files]
        images: list[dict[str, str]] = []
        if req.images:
            wanted = [("smoke", req.test_image)]
            if req.cuda_image:
                wanted.append(("cuda", req.cuda_image))
            for role, name in wanted:
                rel = image_file(name)
                image_id = save_image(host, req.docker_host, name, tree / rel, say)
                say(f"image {name} ({image_id[:19]}) saved")
                images.append({"name": name, "role": role, "file": rel, "id": image_id})
                files.append(rel)
        else:
            req.notes.append(
                "no images (--no-images): the offline host needs the test image already"
            )
        pyz = find_pyz(req, work, say) if req.with_pyz else None
        if pyz is not None:
            shutil.copyfile(pyz, tree / PYZ)
            files.append(PYZ)
        members = {f: sha256_file(tree / f) for f in files}
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "created": created_stamp(),
            "target": req.target.to_json(),
            "gpuwizard": {"version": __version__, "pyz": PYZ if pyz is not None else None},
            "key": {
                "fingerprint": normalize_fingerprint(key.fingerprint),
                "uids": list(key.uids),
                "file": KEY_FILE,
                "source": req.key_url,
            },
            "repository": {"source": req.repo_url, "path": REPO_DIR},
            "toolkit": {
                "version": copy.version,
                "packages": [
                    {
                        "name": d.name,
                        "version": d.version,
                        "file": f"{REPO_DIR}/{kind}/{arch}/{d.filename}",
                        "sha256": d.sha256,
                    }
                    for d in copy.debs
                ],
            },
            "images": images,
            "not_carried": ["the NVIDIA driver", "Docker"],
            "members": members,
        }
        digest = write_archive(tree, manifest, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (out.parent / (out.name + ".sha256")).write_text(f"{digest}  {out.name}\n")
    return {
        "archive": str(out),
        "sha256": digest,
        "size": out.stat().st_size,
        "manifest": manifest,
        "notes": list(req.notes),
    }
