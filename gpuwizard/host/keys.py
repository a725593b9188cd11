"""The repository signing key: downloaded, its fingerprint checked with gpg, then dearmored.

Everything here is read-only for the host: gpg runs in a throwaway GNUPGHOME on the machine
gpuwizard runs on, never in the user's keyrings. The key is fetched at plan time so that the
preview shows the real keyring bytes and the fingerprint that was found.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from gpuwizard.errors import CommandFailed, WizardError
from gpuwizard.events import mask_login
from gpuwizard.host import download
from gpuwizard.host.system import Host

MIRROR_REMEDY = (
    "If this host reaches the Internet only through a mirror (Artifactory, Nexus, "
    "an air-gapped copy), pass --repo-url and --key-url (and --key-fingerprint if "
    "the mirror re-signs); a key file on this machine works as --key-url "
    "file:///path/to/gpgkey."
)


class KeyUnavailable(WizardError):
    """The key could not be fetched (network, file): not a trust failure."""


@dataclass(frozen=True)
class KeyEntry:
    """One primary key of a key file: its fingerprint, its own user ids, its state."""

    fingerprint: str
    uids: tuple[str, ...] = ()
    validity: str = ""  # gpg's field 2: r revoked, e expired, …
    expires: Optional[int] = None  # seconds since the epoch

    @property
    def revoked(self) -> bool:
        return self.validity == "r"

    def expired(self, now: Optional[float] = None) -> bool:
        now = time.time() if now is None else now
        return self.validity == "e" or (self.expires is not None and self.expires <= now)


@dataclass(frozen=True)
class KeyInfo:
    """What gpg says a key file holds."""

    fingerprints: tuple[str, ...]  # primary keys, upper-case hex
    uids: tuple[str, ...]
    armored: bool
    keys: tuple[KeyEntry, ...] = ()

    def entry(self, fingerprint: str) -> Optional[KeyEntry]:
        return next((k for k in self.keys if k.fingerprint == fingerprint), None)

    @property
    def primary(self) -> str:
        return self.fingerprints[0] if self.fingerprints else ""

    def to_json(self) -> dict[str, object]:
        return {
            "fingerprints": list(self.fingerprints),
            "uids": list(self.uids),
            "armored": self.armored,
        }


@dataclass(frozen=True)
class CheckedKey:
    """A key whose fingerprint matched: its armored text (rpm) and binary keyring (apt)."""

    url: str
    fingerprint: str
    uids: tuple[str, ...]
    armored: bytes  # the checked key alone, armored when the download was
    keyring: bytes  # dearmored: what apt's signed-by expects
    dropped: tuple[str, ...] = ()  # other keys the file held, not written anywhere
    warnings: tuple[str, ...] = ()  # e.g. the key has expired

    @property
    def short_id(self) -> str:
        """The id rpm names the key by: gpg-pubkey-<last 8 hex, lower case>."""
        return self.fingerprint[-8:].lower()


def normalize_fingerprint(text: str) -> str:
    return "".join(text.split()).upper().removeprefix("0X")


def fetch_key(url: str, timeout: float = 30.0, host: Optional[Host] = None) -> bytes:
    """Download the key; http(s) or file:// (air-gapped hosts). Errors name the cause and the
    options to use instead. On a stand-in host (demo mode) a file:// URL is that machine's."""
    parts = urllib.parse.urlparse(url)
    if parts.scheme == "file":
        path = urllib.parse.unquote(parts.path)
        try:
            if host is not None and host.stand_in_root:
                return host.path(path).read_bytes()
            return Path(path).read_bytes()
        except OSError as exc:
            raise KeyUnavailable(
                f"Cannot read the signing key file {path}: {exc.strerror}",
                "Check the path given to --key-url. " + MIRROR_REMEDY,
            ) from exc
    if parts.scheme not in ("http", "https"):
        raise KeyUnavailable(
            f"The key URL {url!r} is neither http(s) nor file://",
            "Pass --key-url https://… or file:///path/to/gpgkey.",
        )
    shown = mask_login(url)  # the URL as messages show it (a login never reaches here)
    req = urllib.request.Request(url, headers={"User-Agent": "gpuwizard"})
    try:
        with download.urlopen(req, timeout=timeout) as resp:
            data: bytes = resp.read(1 << 20)
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            raise KeyUnavailable(
                f"The signing key at {shown} wants a login (HTTP 401)",
                "gpuwizard downloads the key with none: fetch it yourself (curl -fsSL -u USER "
                f"{shown} -o /root/nvidia-gpgkey) and pass --key-url file:///root/nvidia-gpgkey; "
                "--key-fingerprint is still checked.",
            ) from exc
        raise KeyUnavailable(
            f"Downloading the NVIDIA signing key from {shown} failed: HTTP {exc.code} {exc.reason}",
            "Check the URL. " + MIRROR_REMEDY,
        ) from exc
    except download.FAILURES as exc:
        reason = getattr(exc, "reason", exc)
        raise KeyUnavailable(
            f"Cannot download the NVIDIA signing key from {shown}: {reason}",
            "Check the network and any proxy (https_proxy). " + MIRROR_REMEDY,
        ) from exc
    if not data:
        raise KeyUnavailable(f"The key at {shown} is empty", "Check --key-url. " + MIRROR_REMEDY)
    return data


@contextlib.contextmanager
def throwaway_gnupghome() -> Iterator[Path]:
    """A private GNUPGHOME, removed (and its agent stopped, if one started) afterwards. Every
    gpg run in it passes --no-autostart: public keys need no agent, and gpg 2.2 keeps an
    agent's sockets under /run/user, where the clean-up below does not look."""
    home = Path(tempfile.mkdtemp(prefix="gpuwizard-gpg-"))
    home.chmod(0o700)
    try:
        yield home
    finally:
        if shutil.which("gpgconf") and any(home.glob("S.*")):
            import subprocess

            subprocess.run(
                ["gpgconf", "--homedir", str(home), "--kill", "all"],
                capture_output=True,
                check=False,
            )
        shutil.rmtree(home, ignore_errors=True)


def _gpg(host: Host, home: Path, args: list[str], data: Optional[bytes] = None) -> str:
    try:
        res = host.run(
            ["gpg", "--homedir", str(home), "--batch", "--no-autostart", *args],
            inside=False,
            input=data,
            timeout=60,
            remedy="Install gnupg (apt-get install gnupg / dnf install gnupg2).",
        )
    except CommandFailed as exc:
        raise WizardError(
            "gpg could not read the key: " + (exc.output_tail.splitlines() or ["no output"])[-1],
            "The file at --key-url is not an OpenPGP key. " + MIRROR_REMEDY,
            exc.output_tail,
        ) from exc
    return res.stdout


def inspect_key(host: Host, data: bytes) -> KeyInfo:
    """Read fingerprints and user ids without importing anything anywhere."""
    with throwaway_gnupghome() as home:
        out = _gpg(host, home, ["--with-colons", "--import-options", "show-only", "--import"], data)
    return parse_colons(out, armored=data.lstrip().startswith(b"-----BEGIN PGP"))


def parse_colons(out: str, armored: bool = True) -> KeyInfo:
    """Primary keys (the fpr line right after each pub line), each with its own uids,
    validity and expiry."""
    entries: list[dict[str, Any]] = []
    expect_primary = False
    for line in out.splitlines():
        fields = line.split(":")
        if fields[0] == "pub":
            expect_primary = True
            expires = fields[6] if len(fields) > 6 else ""
            entries.append(
                {
                    "fpr": "",
                    "uids": [],
                    "validity": fields[1] if len(fields) > 1 else "",
                    "expires": int(expires) if expires.isdigit() else None,
                }
            )
        elif fields[0] == "sub":
            expect_primary = False
        elif fields[0] == "fpr" and expect_primary and len(fields) > 9 and entries:
            entries[-1]["fpr"] = fields[9].upper()
            expect_primary = False
        elif fields[0] == "uid" and len(fields) > 9 and entries:
            entries[-1]["uids"].append(fields[9])
    keys = tuple(
        KeyEntry(e["fpr"], tuple(e["uids"]), e["validity"], e["expires"])
        for e in entries
        if e["fpr"]
    )
    return KeyInfo(
        tuple(k.fingerprint for k in keys),
        tuple(u for k in keys for u in k.uids),
        armored,
        keys,
    )


def dearmor(host: Host, data: bytes) -> bytes:
    """The binary keyring apt's signed-by wants. `--yes` so a re-run never prompts (the
    documented `gpg --dearmor -o` without it breaks the second time)."""
    if not data.lstrip().startswith(b"-----BEGIN PGP"):
        return data
    with throwaway_gnupghome() as home:
        out = home / "keyring.gpg"
        _gpg(host, home, ["--yes", "--dearmor", "-o", str(out)], data)
        return out.read_bytes()


def export_one(host: Host, data: bytes, fingerprint: str, armor: bool) -> bytes:
    """The key `fingerprint` alone (with its subkeys and signatures), out of a file that may
    hold others: imported into a throwaway GNUPGHOME and exported by fingerprint."""
    with throwaway_gnupghome() as home:
        _gpg(host, home, ["--import"], data)
        out = home / "one.key"
        args = ["--yes", "--output", str(out)] + (["--armor"] if armor else [])
        _gpg(host, home, [*args, "--export", fingerprint + "!"], None)
        exported = out.read_bytes()
    if not exported:
        raise WizardError(
            f"gpg exported nothing for the key {fingerprint}",
            "The key file may be damaged. " + MIRROR_REMEDY,
        )
    return exported


def checked_key(host: Host, url: str, expected: str) -> CheckedKey:
    """Download and check a key; a wrong fingerprint is an error that names both.

    Only the key whose fingerprint was checked is ever written: a file that also holds other
    keys has that one exported alone (the others are named in the plan, never trusted). A
    revoked key is refused; an expired one is a warning (apt then refuses the repository)."""
    data = fetch_key(url, host=host)
    info = inspect_key(host, data)
    want = normalize_fingerprint(expected)
    if want not in info.fingerprints:
        got = ", ".join(info.fingerprints) or "no key at all"
        raise WizardError(
            f"The key at {url} has fingerprint {got}, but {want} was expected",
            "Nothing was written. The download may have been tampered with, or a mirror "
            "re-signs with its own key: if you trust that key, pass its fingerprint with "
            "--key-fingerprint.",
        )
    entry = info.entry(want) or KeyEntry(want)
    if entry.revoked:
        raise WizardError(
            f"The key {want} at {url} has been revoked by its owner",
            "Nothing was written. A revoked key must not be trusted: get the current key "
            "(NVIDIA's gpgkey URL, or your mirror's) and its fingerprint.",
        )
    warnings: list[str] = []
    if entry.expired():
        when = time.strftime("%Y-%m-%d", time.gmtime(entry.expires)) if entry.expires else "?"
        warnings.append(
            f"the key {want} expired on {when}: apt and dnf refuse packages signed with it; "
            "download the current key (re-run gpuwizard when NVIDIA or your mirror has one)"
        )
    dropped = tuple(f for f in info.fingerprints if f != want)
    if dropped:
        warnings.append(
            f"the key file held {len(info.fingerprints)} keys; only {want} (checked) is "
            f"written, the other(s) are left out: {', '.join(dropped)}"
        )
        data = export_one(host, data, want, armor=info.armored)
    return CheckedKey(url, want, entry.uids, data, dearmor(host, data), dropped, tuple(warnings))


def keyring_fingerprints(host: Host, keyring: Path) -> list[tuple[str, str]]:
    """(fingerprint, uid) of every primary key in a legacy keyring such as trusted.gpg."""
    with throwaway_gnupghome() as home:
        try:
            res = host.run(
                [
                    "gpg",
                    "--homedir",
                    str(home),
                    "--batch",
                    "--no-autostart",
                    "--no-default-keyring",
                    "--keyring",
                    f"gnupg-ring:{keyring}",
                    "--with-colons",
                    "--list-keys",
                ],
                inside=False,
                timeout=60,
                check=False,
            )
        except WizardError:
            return []
    out: list[tuple[str, str]] = []
    fpr_pending = False
    for line in res.stdout.splitlines():
        f = line.split(":")
        if f[0] == "pub":
            fpr_pending = True
        elif f[0] == "fpr" and fpr_pending and len(f) > 9:
            out.append((f[9].upper(), ""))
            fpr_pending = False
        elif f[0] == "uid" and out and not out[-1][1] and len(f) > 9:
            out[-1] = (out[-1][0], f[9])
        elif f[0] == "sub":
            fpr_pending = False
    return out


def keyring_without(host: Host, keyring: Path, fingerprints: list[str]) -> bytes:
    """The bytes of a legacy keyring with some keys deleted (the original is not touched)."""
    with throwaway_gnupghome() as home:
        copy = home / "work.gpg"
        shutil.copyfile(keyring, copy)
        host.run(
            [
                "gpg",
                "--homedir",
                str(home),
                "--batch",
                "--no-autostart",
                "--yes",
                "--no-default-keyring",
                "--keyring",
                f"gnupg-ring:{copy}",
                "--delete-keys",
                *fingerprints,
            ],
            inside=False,
            timeout=60,
        )
        return copy.read_bytes()


def keyring_file_fingerprints(host: Host, path: str) -> Optional[list[str]]:
    """The primary-key fingerprints in a keyring file apt's signed-by names (gpg on this
    machine reads it); None without gpg, [] when it holds no key gpg can read."""
    if shutil.which("gpg") is None:
        return None
    try:
        return list(inspect_key(host, host.path(path).read_bytes()).fingerprints)
    except (WizardError, OSError):
        return []
