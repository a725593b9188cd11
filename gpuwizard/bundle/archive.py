"""The bundle archive: a plain tar whose first member is manifest.json (what it is for, the
versions, the key's fingerprint, the SHA-256 of every other member) and whose second is
SHA256SUMS (`sha256sum -c` form, for a person checking by hand).

Written reproducibly (sorted members, owner root, fixed time and modes). Read as a stream,
member by member, with every member checked before anything is used: only regular files
(and folders) with plain relative names are accepted; a link, a device, an absolute path or
a `..` is refused by name, and so is any member whose bytes differ from the manifest.
Extraction never goes through tarfile's own: each file is created fresh (O_EXCL, O_NOFOLLOW)
inside a new private folder.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Optional

from gpuwizard.bundle.aptrepo import safe_relative
from gpuwizard.errors import WizardError

FORMAT = 1
MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"
KEY_FILE = "repo/gpgkey"
REPO_DIR = "repo"  # holds deb/ARCH as NVIDIA's /stable does; no /stable, so no experimental line
PYZ = "gpuwizard.pyz"
MANIFEST_LIMIT = 1 << 20
KEEP_LIMIT = 4 << 20
RECOPY = (
    "copy the archive again and compare `sha256sum` of it with the SHA-256 printed when it "
    "was made (beside it in KIT.sha256)"
)


def image_file(image: str) -> str:
    """Where an image's `docker save` tarball lies in a bundle."""
    return "images/" + re.sub(r"[^A-Za-z0-9._-]", "_", image) + ".tar"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_archive(folder: Path, manifest: dict[str, Any], out: Path) -> str:
    """Write `folder`'s files (the names in manifest["members"]) with the manifest and the
    sums first; returns the archive's SHA-256."""
    members = sorted(manifest["members"])
    body = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    sums = {MANIFEST: hashlib.sha256(body).hexdigest(), **manifest["members"]}
    sums_text = "".join(f"{sums[n]}  {n}\n" for n in [MANIFEST, *members]).encode()
    tmp = out.with_name(out.name + ".part")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in ((MANIFEST, body), (SUMS, sums_text)):
            tar.addfile(_info(name, len(data)), io.BytesIO(data))
        for name in members:
            path = folder / name
            with open(path, "rb") as fh:
                tar.addfile(_info(name, path.stat().st_size), fh)
    os.replace(tmp, out)
    return sha256_file(out)


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 315532800  # 1980-01-01: the same bytes from the same inputs
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


class _Hashing(io.RawIOBase):
    """A file read through once; the SHA-256 of every byte read."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh = fh
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self.fh.read(len(b))
        self.digest.update(data)
        b[: len(data)] = data
        return len(data)

    def drain(self) -> str:
        for chunk in iter(lambda: self.fh.read(1 << 20), b""):
            self.digest.update(chunk)
        return self.digest.hexdigest()


@dataclass
class Verified:
    """A bundle whose every member matched its manifest."""

    archive: Path
    sha256: str  # of the archive file: names the unpacked folder
    manifest: dict[str, Any]
    kept: dict[str, bytes] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        return str(self.manifest["key"]["fingerprint"])

    @property
    def version(self) -> str:
        return str(self.manifest["toolkit"]["version"])

    @property
    def arch(self) -> str:
        return str(self.manifest["target"]["arch"])

    @property
    def images(self) -> list[dict[str, str]]:
        return list(self.manifest.get("images") or [])


def refuse(cause: str, archive: Path, remedy: str = "") -> WizardError:
    remedy = remedy or f"A bundle holds only files with plain names; {RECOPY}."
    if not remedy.startswith("Nothing was"):
        remedy = "Nothing was changed. " + remedy
    return WizardError(f"The bundle {archive} is refused: {cause}", remedy)


def _member_name(archive: Path, member: tarfile.TarInfo) -> str:
    raw = member.name
    name = raw[2:] if raw.startswith("./") else raw
    name = name.rstrip("/")
    if member.isdir() and name in ("", "."):
        return ""
    if not (member.isfile() or member.isdir()):
        what = (
            "a symbolic link"
            if member.issym()
            else "a hard link"
            if member.islnk()
            else "a device"
            if member.ischr() or member.isblk()
            else "a FIFO"
            if member.isfifo()
            else "not a regular file"
        )
        target = f" to {member.linkname}" if member.issym() or member.islnk() else ""
        raise refuse(f"member {raw!r} is {what}{target}", archive)
    if raw.startswith("/") or safe_relative(name) != name:
        raise refuse(
            f"member {raw!r} has an absolute path, a `..` or an unusual name "
            "(it could write outside the bundle's folder)",
            archive,
        )
    return name


def read_archive(
    archive: Path, dest: Optional[Path] = None, keep: tuple[str, ...] = ()
) -> Verified:
    """Check every member against the manifest; write them under `dest` (a new, empty,
    private folder) when given; keep the bytes of the members named in `keep`."""
    if not archive.is_file():
        raise WizardError(
            f"The bundle {archive} does not exist or is not a file",
            "Pass --bundle the kit.tar that `gpuwizard bundle` wrote.",
        )
    seen: dict[str, str] = {}
    kept: dict[str, bytes] = {}
    manifest_bytes: Optional[bytes] = None
    with open(archive, "rb") as raw:
        reader = _Hashing(raw)
        try:
            tar = tarfile.open(  # noqa: SIM115 (a stream: read to its end below)
                fileobj=io.BufferedReader(reader), mode="r|*"
            )
            for member in tar:
                name = _member_name(archive, member)
                if member.isdir():
                    if name and dest is not None:
                        _mkdirs(dest, name)
                    continue
                if name in seen:
                    raise refuse(f"member {name!r} appears twice", archive)
                src = tar.extractfile(member)
                assert src is not None
                digest = hashlib.sha256()
                small = name in (MANIFEST, *keep)
                buf = bytearray()
                out_fd = _create(dest, name) if dest is not None else None
                try:
                    for chunk in iter(lambda: src.read(1 << 20), b""):  # noqa: B023
                        digest.update(chunk)
                        if small:
                            buf += chunk
                            if len(buf) > (MANIFEST_LIMIT if name == MANIFEST else KEEP_LIMIT):
                                raise refuse(f"member {name!r} is too large", archive)
                        if out_fd is not None:
                            os.write(out_fd, chunk)
                finally:
                    if out_fd is not None:
                        os.close(out_fd)
                seen[name] = digest.hexdigest()
                if name == MANIFEST:
                    manifest_bytes = bytes(buf)
                elif small:
                    kept[name] = bytes(buf)
        except tarfile.TarError as exc:
            raise refuse(f"it is not a readable tar archive ({exc})", archive, RECOPY) from exc
        except EOFError as exc:
            raise refuse("it ends early (truncated)", archive, RECOPY) from exc
        sha = reader.drain()
    if manifest_bytes is None:
        raise refuse(
            f"it has no {MANIFEST}",
            archive,
            "Make it with `gpuwizard bundle --target … -o kit.tar`.",
        )
    manifest = parse_manifest(archive, manifest_bytes)
    members: dict[str, str] = manifest["members"]
    for name, want in sorted(members.items()):
        got = seen.get(name)
        if got is None:
            raise refuse(f"member {name!r} named in the manifest is missing", archive, RECOPY)
        if got != want:
            raise refuse(
                f"member {name!r} does not match its checksum in the manifest "
                f"(sha256 {got[:16]}…, expected {want[:16]}…)",
                archive,
                f"It was damaged or altered after the bundle was made: {RECOPY}.",
            )
    extra = sorted(set(seen) - set(members) - {MANIFEST, SUMS})
    if extra:
        raise refuse(
            f"member {extra[0]!r} is not in the manifest (only listed files are accepted)",
            archive,
            RECOPY,
        )
    return Verified(archive, sha, manifest, kept)


def _mkdirs(dest: Path, rel: str) -> None:
    """Each folder of `rel` under `dest`, 0755 whatever the umask (apt's `_apt` reads them);
    one that exists must be a real folder (this tree is new and ours: never a link)."""
    path = dest
    for part in [p for p in rel.split("/") if p]:
        path = path / part
        if not os.path.lexists(path):
            path.mkdir()
            os.chmod(path, 0o755)
        elif path.is_symlink() or not path.is_dir():
            raise WizardError(f"{path} is not a folder", "Apply the bundle again.")


def _create(dest: Path, name: str) -> int:
    _mkdirs(dest, os.path.dirname(name))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(dest / name, flags, 0o644)
    os.fchmod(fd, 0o644)
    return fd


def _need(cond: bool, archive: Path, what: str) -> None:
    if not cond:
        raise refuse(
            f"its {MANIFEST} is not a gpuwizard bundle manifest ({what})",
            archive,
            "Make the bundle with `gpuwizard bundle` (a gpuwizard of the same or a newer "
            "version reads it).",
        )


def parse_manifest(archive: Path, data: bytes) -> dict[str, Any]:
    """The manifest, with every field the offline host relies on checked for shape."""
    try:
        m = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        m = None
    _need(isinstance(m, dict), archive, "not a JSON object")
    assert isinstance(m, dict)
    _need(m.get("format") == FORMAT, archive, f"format {m.get('format')!r}, expected {FORMAT}")
    for key in ("target", "toolkit", "key", "members", "gpuwizard"):
        _need(isinstance(m.get(key), dict), archive, f"no {key!r}")
    _need(isinstance(m.get("images", []), list), archive, "images is not a list")
    members = m["members"]
    for name, digest in members.items():
        _need(
            safe_relative(name) == name and isinstance(digest, str) and len(digest) == 64,
            archive,
            f"member entry {name!r}",
        )
    _need(
        isinstance(m["key"].get("fingerprint"), str) and m["key"].get("file") == KEY_FILE,
        archive,
        "key",
    )
    _need(isinstance(m["toolkit"].get("version"), str), archive, "toolkit version")
    _need(m["target"].get("family") in ("apt", "rpm"), archive, "target family")
    _need(isinstance(m["target"].get("arch"), str), archive, "target arch")
    for img in m.get("images", []):
        _need(
            isinstance(img, dict)
            and isinstance(img.get("name"), str)
            and img.get("file") == image_file(img["name"])
            and img["file"] in members,
            archive,
            f"image entry {img!r}",
        )
    _need(KEY_FILE in members, archive, "the key is not a member")
    return m
