"""Reading NVIDIA's rpm repository (or a mirror of it) for a bundle: repomd.xml and its
detached signature (verified with gpg against the checked key, as dnf's repo_gpgcheck does),
every metadata file repomd.xml names (digest checked), and the four packages at one version
from the primary metadata (digest checked).

Kept byte for byte, so on the offline host dnf or zypper verifies repomd.xml with the same
key, and the metadata and packages through the digests it vouches for.
"""

from __future__ import annotations

import bz2
import hashlib
import shutil
import subprocess
import xml.etree.ElementTree as ET  # noqa: S405 (signed, digest-checked metadata)
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from gpuwizard.bundle import aptrepo
from gpuwizard.bundle.aptrepo import (
    DebFile,
    RepoCopy,
    choose_version,
    fetch,
    fetch_to,
    safe_relative,
    verify_detached,
)
from gpuwizard.errors import WizardError
from gpuwizard.host.keys import CheckedKey
from gpuwizard.host.packages import TOOLKIT_PACKAGES
from gpuwizard.host.system import Host

REPO_NS = "{http://linux.duke.edu/metadata/repo}"
COMMON_NS = "{http://linux.duke.edu/metadata/common}"
ALGOS = ("sha256", "sha512", "sha384", "sha224", "sha1")


@dataclass(frozen=True)
class MetaFile:
    """One file repomd.xml names."""

    kind: str  # primary, filelists, other, primary_db, …
    href: str  # relative, checked
    algo: str
    digest: str


def _algo(name: Optional[str]) -> str:
    algo = (name or "").lower().replace("sha-", "sha")
    if algo == "sha":
        algo = "sha1"
    if algo not in ALGOS:
        raise WizardError(
            f"The repository uses the checksum type {name!r}, which gpuwizard does not check",
            "Use NVIDIA's repository or a mirror that keeps its sha256 metadata.",
        )
    return algo


def parse_repomd(text: bytes) -> list[MetaFile]:
    root = ET.fromstring(text)  # noqa: S314
    out = []
    for data in root.findall(f"{REPO_NS}data"):
        loc = data.find(f"{REPO_NS}location")
        sums = data.find(f"{REPO_NS}checksum")
        href = safe_relative(loc.get("href", "") if loc is not None else "")
        digest = (sums.text or "").strip().lower() if sums is not None else ""
        if href is None or sums is None or not digest:
            raise WizardError(
                "repomd.xml names a metadata file with no usable location or checksum",
                "Check --repo-url: it should be NVIDIA's /stable tree or a full mirror of it.",
            )
        out.append(MetaFile(data.get("type", ""), href, _algo(sums.get("type")), digest))
    return out


def decompress(name: str, data: bytes) -> bytes:
    """apt's compressions (aptrepo.decompress), and the bz2 and zstd createrepo may use."""
    if name.endswith(".bz2"):
        return bz2.decompress(data)
    if name.endswith(".zst"):
        return _unzstd(name, data)
    return aptrepo.decompress(name, data)


def _unzstd(name: str, data: bytes) -> bytes:
    """zstd, which Python's standard library reads only from 3.14: through the `zstd` program
    (Debian's, RHEL's and SUSE's zstd package), fed the digest-checked bytes on stdin."""
    tool = shutil.which("zstd")
    if tool is None:
        raise WizardError(
            f"The repository's primary metadata is zstd-compressed ({name}) and this machine "
            "has no zstd program to read it",
            "Install zstd on the machine that makes the kit (apt-get install zstd, dnf install "
            "zstd, zypper install zstd), or use a mirror with .gz metadata.",
        )
    try:
        res = subprocess.run(  # noqa: S603 (an argv list, no shell)
            [tool, "-d", "-c", "-q"], input=data, capture_output=True, timeout=120, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise WizardError(f"zstd could not read {name}: {exc}", "Check the zstd program.") from exc
    if res.returncode != 0:
        raise WizardError(
            f"zstd could not read {name} (exit {res.returncode})",
            "The file matched repomd.xml's checksum, so the mirror serves it that way: check "
            "the zstd program, or use a mirror with .gz metadata.",
            res.stderr.decode(errors="replace")[-500:],
        )
    return res.stdout


def toolkit_rpms(primary: bytes, basearch: str, wanted: Optional[str]) -> tuple[str, list[DebFile]]:
    """The four packages at one version from primary.xml."""
    root = ET.fromstring(primary)  # noqa: S314
    found = []
    for pkg in root.findall(f"{COMMON_NS}package"):
        name = (pkg.findtext(f"{COMMON_NS}name") or "").strip()
        arch = (pkg.findtext(f"{COMMON_NS}arch") or "").strip()
        if name not in TOOLKIT_PACKAGES or arch not in (basearch, "noarch"):
            continue
        ver = pkg.find(f"{COMMON_NS}version")
        sums = pkg.find(f"{COMMON_NS}checksum")
        size = pkg.find(f"{COMMON_NS}size")
        loc = pkg.find(f"{COMMON_NS}location")
        href = safe_relative(loc.get("href", "") if loc is not None else "")
        if ver is None or sums is None or size is None or href is None:
            continue
        version = f"{ver.get('ver')}-{ver.get('rel')}"
        epoch = ver.get("epoch", "0")
        if epoch not in ("", "0"):
            version = f"{epoch}:{version}"
        found.append(
            DebFile(
                name,
                version,
                href,
                int(size.get("package", "0")),
                (sums.text or "").strip().lower(),
                _algo(sums.get("type")),
            )
        )
    return choose_version(found, basearch, wanted)


def copy_rpm_repository(
    host: Host,
    key: CheckedKey,
    repo_url: str,
    basearch: str,
    wanted: Optional[str],
    dest: Path,
    say: Callable[[str], None],
) -> RepoCopy:
    """Copy repodata/ and the four packages of `repo_url/rpm/BASEARCH` into `dest` (the same
    layout, so a .repo with baseurl file://…/rpm/$basearch reads it as dnf reads NVIDIA's)."""
    base = f"{repo_url.rstrip('/')}/rpm/{basearch}"
    repomd = fetch(f"{base}/repodata/repomd.xml")
    signature = fetch(f"{base}/repodata/repomd.xml.asc")
    verify_detached(host, key, repomd, signature, f"{base}/repodata/repomd.xml")
    say(f"repomd.xml of {base}: signed by {key.fingerprint} (checked)")
    (dest / "repodata").mkdir(parents=True, exist_ok=True)
    (dest / "repodata/repomd.xml").write_bytes(repomd)
    (dest / "repodata/repomd.xml.asc").write_bytes(signature)
    files = ["repodata/repomd.xml", "repodata/repomd.xml.asc"]
    primary: Optional[bytes] = None
    for meta in parse_repomd(repomd):
        data = fetch(f"{base}/{meta.href}")
        if hashlib.new(meta.algo, data).hexdigest() != meta.digest:
            raise WizardError(
                f"{base}/{meta.href} does not match its signed repomd.xml",
                "Nothing was bundled. The mirror is inconsistent or was tampered with; try "
                "again later, or another mirror.",
            )
        target = dest / meta.href
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        files.append(meta.href)
        if meta.kind == "primary":
            primary = decompress(meta.href, data)
    if primary is None:
        raise WizardError(f"repomd.xml of {base} names no primary metadata", "Check --repo-url.")
    version, rpms = toolkit_rpms(primary, basearch, wanted)
    for rpm in rpms:
        target = dest / rpm.filename
        target.parent.mkdir(parents=True, exist_ok=True)
        say(f"{rpm.name} {rpm.version} ({rpm.size} bytes)")
        fetch_to(f"{base}/{rpm.filename}", target, rpm.sha256, rpm.size, rpm.algo)
        files.append(rpm.filename)
    return RepoCopy(version, rpms, files)
