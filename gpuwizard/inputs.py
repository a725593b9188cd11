"""Checks on what a user types, before anything is probed or changed: each bad value becomes
a WizardError naming the cause and the fix (never a traceback, never a silent default)."""

from __future__ import annotations

import math
import os
import re
import urllib.parse
from pathlib import Path
from typing import Optional

from gpuwizard.errors import WizardError
from gpuwizard.events import mask_login
from gpuwizard.host.sources import login_remedy
from gpuwizard.options import Options

PATH_MAX = 4096  # Linux: the longest path a system call takes
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
URL_SCHEMES = ("http", "https", "file")


def check_root(root: str) -> Path:
    """--root: a folder that exists, named by a path the kernel accepts."""
    if "\x00" in root or len(os.fsencode(root)) >= PATH_MAX:
        raise WizardError(
            f"--root is not a usable path ({len(root)} characters)",
            f"Pass --root the folder where the target system is mounted (at most "
            f"{PATH_MAX - 1} bytes, no NUL), or leave it out for /.",
        )
    try:
        ok = Path(root).is_dir()
    except OSError as exc:
        raise WizardError(
            f"--root {root[:80]!r} cannot be used: {exc.strerror}",
            "Pass --root the folder where the target system is mounted, or leave it out for /.",
        ) from None
    if not ok:
        raise WizardError(
            f"The root folder {root} does not exist or is not a folder",
            "Pass --root the folder where the target system is mounted, or leave it out for /.",
        )
    return Path(root)


def check_url(name: str, url: str, bundle: bool = False) -> None:
    """A repository or key URL: one line, a scheme gpuwizard can fetch from, a host[:port],
    no login. An error shows the URL with any login masked (events.mask_login)."""
    shown = mask_login(url)
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise WizardError(
            f"{name} holds a space, newline or control character: {shown!r}",
            f"Pass {name} one URL on one line, e.g. https://mirror.example/libnvidia-container"
            "/stable (percent-encode a space as %20).",
        )
    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port  # a port that is not a number raises ValueError
    except ValueError:
        raise WizardError(
            f"{name} {shown!r} has no usable host[:port] (a port that is not a number up to "
            "65535, or a bracket that does not close)",
            f"Pass {name} a URL such as https://mirror.example:8443/libnvidia-container/stable"
            "; a login does not go in the URL (" + _LOGIN_ELSEWHERE + ").",
        ) from None
    if parts.scheme not in URL_SCHEMES or (parts.scheme != "file" and not parts.hostname):
        raise WizardError(
            f"{name} {shown!r} is not an http(s) or file URL",
            f"Pass {name} a URL such as https://nvidia.github.io/libnvidia-container/stable.",
        )
    if "@" in parts.netloc:
        raise WizardError(
            f"{name} {shown!r} holds a login (user:password@ before the host): gpuwizard "
            "takes no password in a URL (it would show in ps, shell history and logs, and a "
            "sources file keeps it world-readable)",
            _login_remedy(name, parts, bundle),
        )


_LOGIN_ELSEWHERE = (
    "apt reads a mirror's login from /etc/apt/auth.conf.d/, dnf from the .repo file's "
    "username=/password="
)


def _login_remedy(name: str, parts: urllib.parse.SplitResult, bundle: bool) -> str:
    """Where the login goes instead; never the login itself (USER, PASSWORD stand for it)."""
    plain = urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    if name == "--key-url":
        return (
            f"gpuwizard downloads the key with no login: fetch it yourself (curl -fsSL -u USER "
            f"{plain} -o /root/nvidia-gpgkey) and pass --key-url file:///root/nvidia-gpgkey; "
            "--key-fingerprint is still checked."
        )
    if bundle:
        return (
            "`gpuwizard bundle` downloads with no login: copy the repository (its deb/ or "
            f"rpm/ tree under {plain}) to this machine and pass --repo-url file:///path/to/it, "
            "or use a mirror this machine reaches without one."
        )
    return f"Pass {name} {plain} and give the login to the package manager. {login_remedy(plain)}."


def check_system_path(name: str, path: str) -> None:
    """A path on the target system (--daemon-json): absolute, no `..`, no control characters."""
    if not path.startswith("/"):
        raise WizardError(
            f"{name} {path!r} is a relative path",
            f"Pass {name} the absolute path on the target system, e.g. /etc/docker/daemon.json "
            "(with --root it is read under the root).",
        )
    if ".." in path.split("/") or any(ord(c) < 0x20 for c in path):
        raise WizardError(
            f"{name} {path!r} climbs out with `..` (or holds a control character)",
            f"Pass {name} the plain absolute path, e.g. /etc/docker/daemon.json.",
        )
    if len(os.fsencode(path)) >= PATH_MAX:
        raise WizardError(f"{name} is too long", f"Pass {name} a path under {PATH_MAX} bytes.")


def check_seconds(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise WizardError(
            f"{name} {value!r} is not a number of seconds >= 0",
            f"Pass {name} a number of seconds such as 120 (0 turns it off).",
        )


def check_options(o: Options) -> None:
    """Every option a face passes on, checked once (the CLI, the app and the worker)."""
    check_url("--repo-url", o.repo_url)
    check_url("--key-url", o.key_url)
    if o.daemon_json:
        check_system_path("--daemon-json", o.daemon_json)
    check_seconds("--auto-revert", o.auto_revert)
    check_seconds("--docker-wait", o.docker_wait)
    check_seconds("--lock-wait", o.lock_wait)
    if not re.fullmatch(r"[0-9A-F]{40}", o.key_fingerprint or ""):
        raise WizardError(
            f"--key-fingerprint {o.key_fingerprint!r} is not a 40-digit fingerprint",
            "Pass the key's full fingerprint (gpg --show-keys --with-fingerprint KEYFILE).",
        )


def check_run_id(run_id: Optional[str]) -> str:
    """A run id as gpuwizard names them: never a path (`../../etc`)."""
    if not run_id or not RUN_ID.fullmatch(run_id):
        raise WizardError(
            f"{run_id!r} is not a run id",
            "Run ids look like 20260101T120000Z-a1b2c3; list them with `gpuwizard history`.",
        )
    return run_id
