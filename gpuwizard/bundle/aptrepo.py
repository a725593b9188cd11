"""Reading NVIDIA's apt repository (or a mirror of it) for a bundle: the signed InRelease,
verified with gpg against the key whose fingerprint was checked, the Packages index it
names (hash checked), and the four toolkit packages at one version (hash checked).

The index files are kept byte for byte: on the offline host apt verifies InRelease with the
same key (signed-by), InRelease vouches for Packages and Packages for every .deb, so nothing
in the chain is trusted because the bundle says so.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import posixpath
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Optional

from gpuwizard.errors import WizardError
from gpuwizard.events import mask_login
from gpuwizard.host import download
from gpuwizard.host.keys import CheckedKey, throwaway_gnupghome
from gpuwizard.host.packages import TOOLKIT_PACKAGES, version_key
from gpuwizard.host.system import Host

INDEX_LIMIT = 64 << 20  # an index file larger than this is not NVIDIA's
_BAD_STATUS = ("BADSIG", "EXPKEYSIG", "REVKEYSIG", "NO_PUBKEY", "ERRSIG")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9._+~-]+$")


@dataclass(frozen=True)
class IndexFile:
    """One file the verified Release lists: its name, size and SHA-256."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class DebFile:
    """One package of the index (a .deb or an .rpm): where it lies (relative to the
    repository) and its hash."""

    name: str
    version: str
    filename: str  # relative, checked: no `..`, not absolute
    size: int
    sha256: str  # the index's digest (sha256 for apt; the algorithm below for rpm)
    algo: str = "sha256"


def _open(url: str, timeout: float = 60.0) -> IO[bytes]:
    parts = urllib.parse.urlparse(url)
    if parts.scheme == "file":
        return open(urllib.parse.unquote(parts.path), "rb")
    if parts.scheme not in ("http", "https"):
        raise WizardError(
            f"The repository URL {url!r} is neither http(s) nor file://",
            "Pass --repo-url https://… (NVIDIA's, or your mirror's) or file:///path.",
        )
    req = urllib.request.Request(url, headers={"User-Agent": "gpuwizard"})
    resp: IO[bytes] = download.urlopen(req, timeout=timeout)
    return resp


def _unreachable(url: str, exc: BaseException) -> WizardError:
    if isinstance(exc, urllib.error.HTTPError):
        why = f"HTTP {exc.code}"
    else:
        why = str(getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc)
    return WizardError(
        f"Cannot download {mask_login(url)}: {why}",
        "`gpuwizard bundle` runs on a machine that reaches the repository: check the network "
        "and any proxy (https_proxy), or pass --repo-url a mirror (file:// works).",
    )


def fetch(url: str, limit: int = INDEX_LIMIT) -> bytes:
    """A small file (an index), whole."""
    try:
        with _open(url) as fh:
            data = fh.read(limit + 1)
    except download.FAILURES as exc:
        raise _unreachable(url, exc) from exc
    if len(data) > limit:
        raise WizardError(f"{url} is larger than {limit >> 20} MiB", "Check --repo-url.")
    return data


def fetch_to(
    url: str,
    dest: Path,
    want: str,
    size: int,
    algo: str = "sha256",
    progress: Optional[Callable[[int], None]] = None,
) -> None:
    """A package, streamed to `dest`; its digest and size must be the index's."""
    digest = hashlib.new(algo)
    got = 0
    try:
        with _open(url) as src, open(dest, "wb") as out:
            while True:
                chunk = src.read(1 << 20)
                if not chunk:
                    break
                got += len(chunk)
                if got > size:
                    break
                digest.update(chunk)
                out.write(chunk)
                if progress is not None:
                    progress(got)
    except download.FAILURES as exc:
        raise _unreachable(url, exc) from exc
    if got != size or digest.hexdigest() != want:
        dest.unlink(missing_ok=True)
        raise WizardError(
            f"{url} does not match the signed index (size {got}, expected {size}; or its "
            f"{algo} differs)",
            "Nothing was bundled. The download was damaged or tampered with; try again, or "
            "check the mirror given to --repo-url.",
        )


def verify_inrelease(host: Host, key: CheckedKey, inrelease: bytes, url: str) -> str:
    """The Release text inside InRelease, once gpg says the checked key signed it."""
    with throwaway_gnupghome() as home:
        signed = home / "InRelease"
        signed.write_bytes(inrelease)
        out = home / "Release"
        _signed_by(host, key, home, ["--output", str(out), "--decrypt", str(signed)], url)
        return out.read_text(errors="replace")


def verify_detached(host: Host, key: CheckedKey, data: bytes, signature: bytes, url: str) -> None:
    """rpm's repomd.xml and its .asc: gpg must say the checked key signed these bytes."""
    with throwaway_gnupghome() as home:
        (home / "data").write_bytes(data)
        (home / "data.asc").write_bytes(signature)
        _signed_by(host, key, home, ["--verify", str(home / "data.asc"), str(home / "data")], url)


def _signed_by(host: Host, key: CheckedKey, home: Path, args: list[str], url: str) -> None:
    """Run gpg on a signature in `home` with only the checked key known; refuse unless a
    VALIDSIG names that key as the signer's primary key."""
    key_file = home / "key"
    key_file.write_bytes(key.armored)
    base = ["gpg", "--homedir", str(home), "--batch", "--no-tty", "--no-autostart"]
    host.run([*base, "--import", str(key_file)], inside=False, timeout=60)
    res = host.run([*base, "--status-fd", "1", *args], inside=False, timeout=60, check=False)
    signers = [
        line.split()[-1].upper()
        for line in res.stdout.splitlines()
        if line.startswith("[GNUPG:] VALIDSIG ")
    ]
    if res.returncode != 0 or key.fingerprint not in signers:
        why = next(
            (
                line.split(None, 2)[1]
                for line in res.stdout.splitlines()
                if line.startswith("[GNUPG:] ") and line.split()[1] in _BAD_STATUS
            ),
            "no valid signature",
        )
        raise WizardError(
            f"{url} is not signed by the checked key {key.fingerprint} ({why})",
            "Nothing was bundled. The index may have been tampered with, or the mirror "
            "re-signs with another key: pass that key's --key-url and --key-fingerprint "
            "only if you trust it.",
            res.stderr[-2000:],
        )


def release_files(release: str) -> dict[str, IndexFile]:
    """The SHA256 section of a Release file: name -> (size, hash)."""
    out: dict[str, IndexFile] = {}
    section = False
    for line in release.splitlines():
        if not line.startswith((" ", "\t")):
            section = line.strip() == "SHA256:"
            continue
        if section:
            fields = line.split()
            if len(fields) == 3 and fields[1].isdigit():
                out[fields[2]] = IndexFile(fields[2], int(fields[1]), fields[0].lower())
    return out


def decompress(name: str, data: bytes) -> bytes:
    if name.endswith(".gz"):
        return gzip.decompress(data)
    if name.endswith(".xz"):
        return lzma.decompress(data)
    return data


def parse_packages(text: str) -> list[dict[str, str]]:
    stanzas = []
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            if line.startswith((" ", "\t")) and key:
                fields[key] += "\n" + line
            elif ":" in line:
                key, _, value = line.partition(":")
                key = key.strip()
                fields[key] = value.strip()
        if fields.get("Package"):
            stanzas.append(fields)
    return stanzas


def safe_relative(path: str) -> Optional[str]:
    """A repository-relative path with no way out of the repository, or None."""
    norm = posixpath.normpath(path)
    if norm.startswith("/") or norm in (".", "") or any(p == ".." for p in norm.split("/")):
        return None
    if not all(_SAFE_NAME.match(p) for p in norm.split("/")):
        return None
    return norm


def toolkit_debs(
    stanzas: list[dict[str, str]], arch: str, wanted: Optional[str]
) -> tuple[str, list[DebFile]]:
    """The four packages at one version from apt's Packages stanzas."""
    found = []
    for s in stanzas:
        name = s.get("Package", "")
        if name not in TOOLKIT_PACKAGES or s.get("Architecture") not in (arch, "all"):
            continue
        rel = safe_relative(s.get("Filename", ""))
        if rel is None or not s.get("SHA256") or not s.get("Size", "").isdigit():
            continue
        found.append(DebFile(name, s.get("Version", ""), rel, int(s["Size"]), s["SHA256"].lower()))
    return choose_version(found, arch, wanted)


def choose_version(
    found: list[DebFile], arch: str, wanted: Optional[str]
) -> tuple[str, list[DebFile]]:
    """`wanted` (1.17.8 or 1.17.8-1), or the newest version that has all four packages."""
    by_version: dict[str, dict[str, DebFile]] = {}
    for f in found:
        by_version.setdefault(f.version, {})[f.name] = f
    complete = sorted(
        (v for v, d in by_version.items() if len(d) == len(TOOLKIT_PACKAGES)),
        key=version_key,
        reverse=True,
    )
    if not complete:
        raise WizardError(
            f"The repository offers no complete set of the four toolkit packages for {arch}",
            "Check --repo-url (it should end in /stable) and the target's architecture.",
        )
    if wanted is None:
        version = complete[0]
    else:
        full = wanted if "-" in wanted else f"{wanted}-1"
        if full not in complete:
            raise WizardError(
                f"nvidia-container-toolkit {full} is not in the repository for {arch}",
                f"Pick one of {', '.join(complete[:6])} with --toolkit-version, or leave it out "
                "for the newest.",
            )
        version = full
    return version, [by_version[version][n] for n in TOOLKIT_PACKAGES]


@dataclass
class RepoCopy:
    """What was copied: the version, the packages, and every file written (relative)."""

    version: str
    debs: list[DebFile]
    files: list[str]


def copy_repository(
    host: Host,
    key: CheckedKey,
    repo_url: str,
    arch: str,
    wanted: Optional[str],
    dest: Path,
    say: Callable[[str], None],
) -> RepoCopy:
    """Copy the signed index and the four packages of `repo_url/deb/ARCH` into `dest` (the
    same layout, so `deb file://… /` reads it as apt reads NVIDIA's)."""
    base = f"{repo_url.rstrip('/')}/deb/{arch}"
    inrelease = fetch(f"{base}/InRelease")
    release = verify_inrelease(host, key, inrelease, f"{base}/InRelease")
    say(f"InRelease of {base}: signed by {key.fingerprint} (checked)")
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "InRelease").write_bytes(inrelease)
    files = ["InRelease"]
    listed = release_files(release)
    indexes = [f for n, f in sorted(listed.items()) if re.fullmatch(r"Packages(\.gz|\.xz)?", n)]
    if not indexes:
        raise WizardError(
            f"The signed Release of {base} lists no Packages index",
            "Check --repo-url: it should be NVIDIA's /stable tree or a full mirror of it.",
        )
    text: Optional[str] = None
    for f in indexes:
        try:
            data = fetch(f"{base}/{f.name}")
        except WizardError:
            continue  # apt tries the other forms the Release lists
        if len(data) != f.size or hashlib.sha256(data).hexdigest() != f.sha256:
            raise WizardError(
                f"{base}/{f.name} does not match its signed Release",
                "Nothing was bundled. The mirror is inconsistent or was tampered with; try "
                "again later, or another mirror.",
            )
        (dest / f.name).write_bytes(data)
        files.append(f.name)
        if text is None:
            text = decompress(f.name, data).decode("utf-8", "replace")
    if text is None:
        raise WizardError(f"No Packages index of {base} could be downloaded", "Check --repo-url.")
    version, debs = toolkit_debs(parse_packages(text), arch, wanted)
    for deb in debs:
        target = dest / deb.filename
        target.parent.mkdir(parents=True, exist_ok=True)
        say(f"{deb.name} {deb.version} ({deb.size} bytes)")
        fetch_to(f"{base}/{deb.filename}", target, deb.sha256, deb.size, deb.algo)
        files.append(deb.filename)
    return RepoCopy(version, debs, files)
