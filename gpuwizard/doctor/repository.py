"""The toolkit's repository and its signing key: judged from host.sources and host.keys."""

from __future__ import annotations

from typing import Any, Iterator, Optional

from gpuwizard.doctor.links import (
    BROKEN,
    OK,
    SKIPPED,
    WARN,
    Link,
    Walk,
    from_failure,
    worst_first,
)
from gpuwizard.host import keys, sources


def probe_repository(walk: Walk) -> Link:
    if walk.package_manager in ("dnf", "yum", "zypper"):
        return _rpm_repository(walk)
    if walk.package_manager != "apt" and not walk.host.path("/etc/apt").is_dir():
        return Link("repository", SKIPPED, "no apt, dnf, yum or zypper on this system")
    return worst_first(list(_apt_repository(walk)))


def _apt_repository(walk: Walk) -> Iterator[Link]:
    """Every finding about NVIDIA's apt lists and key, most basic first."""
    host, options = walk.host, walk.options
    base = options.repo_url.rstrip("/")
    found = sources.apt_sources(host)  # NVIDIA's host: its current list and the old ones
    entries, unsupported = list(found.entries), found.unsupported
    if sources.NVIDIA_HOST not in base:  # a mirror or an air-gapped bundle: the plan's source
        entries += [e for e in sources.apt_sources(host, base).entries if e not in entries]
    current = [e for e in entries if e.uri.startswith(base + "/deb")]
    legacy = [e for e in entries if e not in current]
    facts: dict[str, Any] = {
        "current": [f"{e.file}:{e.line}" for e in current],
        "legacy": [f"{e.file}:{e.line}" for e in legacy],
    }
    if unsupported:
        yield from_failure(
            "repository",
            "unsupported-distribution",
            f"{', '.join(unsupported)} says '# Unsupported distribution!'",
            walk,
            next_command=f"cat {unsupported[0]}",
            facts=facts,
        )
    by_source: dict[tuple[str, str], set[Optional[str]]] = {}
    for e in entries:
        by_source.setdefault(e.key(), set()).add(e.signed_by)
    clashes = [k for k, signers in by_source.items() if len(signers) > 1]
    if clashes:
        files = sorted({e.file for e in entries if e.key() in clashes})
        others = [f for f in files if f != sources.APT_LIST] or files
        shown = next(e.uri for e in entries if e.key() == clashes[0])
        yield from_failure(
            "repository",
            "signed-by-conflict",
            f"{len(files)} lists name {shown} with different keys: {', '.join(files)}",
            walk,
            details={"source": shown},
            next_command=f"sudo mkdir -p /root/apt-lists-backup && sudo mv {' '.join(others)} "
            "/root/apt-lists-backup/ && sudo apt-get update",
            facts=facts,
        )
    if not current:
        if legacy:
            yield from_failure(
                "repository",
                "unsupported-distribution",
                f"only old NVIDIA lists ({', '.join(sorted({e.file for e in legacy}))}): "
                "frozen at toolkit 1.13.5",
                walk,
                verdict=WARN if walk.gpu is False else BROKEN,
                next_command="gpuwizard plan",
                facts=facts,
            )
            return
        yield walk.absent(
            "repository",
            "",
            "NVIDIA's repository is not configured",
            cause="apt does not know where to get the NVIDIA Container Toolkit.",
            remedy="Let gpuwizard add the list and the verified key.",
            next_command="gpuwizard plan",
            facts=facts,
        )
        return
    signed = sorted({e.signed_by for e in current if e.signed_by})
    if not signed:
        yield Link(
            "repository",
            WARN,
            f"{current[0].file} has no signed-by: any key in apt's global keyrings can sign it",
            remedy="Use signed-by with NVIDIA's keyring (gpuwizard does).",
            next_command=f"cat {current[0].file}",
            facts=facts,
        )
        return
    # the keyring of our own list first: the one apt should keep
    ours = [e.signed_by for e in current if e.file == sources.APT_LIST and e.signed_by]
    keyrings = list(dict.fromkeys([*ours, *signed]))
    keyring = keyrings[0]
    facts["keyring"] = keyring
    want = keys.normalize_fingerprint(options.key_fingerprint)
    fingerprints: Optional[list[str]] = None
    bad_key = False
    for ring in keyrings:
        path = host.path(ring)
        if not path.exists() or path.stat().st_size == 0:
            state = "missing" if not path.exists() else "empty (0 bytes)"
            yield from_failure(
                "repository",
                "nvidia-key-missing",
                f"the keyring {ring} is {state}: apt will say NO_PUBKEY",
                walk,
                details={"key_id": want[-16:]},
                next_command=f"ls -l {ring}",
                facts=facts,
            )
            bad_key = True
            continue
        held = keys.keyring_file_fingerprints(host, ring)
        if ring == keyring:
            fingerprints = held
            facts["fingerprints"] = held
        if held is not None and want not in held:
            what = "no readable key" if not held else ", ".join(held)
            yield from_failure(
                "repository",
                "nvidia-key-missing",
                f"{ring} holds {what}, not NVIDIA's key {want}",
                walk,
                details={"key_id": want[-16:]},
                next_command=f"gpg --show-keys {ring}",
                facts=facts,
            )
            bad_key = True
    if bad_key:
        return
    key_note = (
        "key verified" if fingerprints is not None else "key present (no gpg here to check it)"
    )
    if legacy and not clashes:
        files = sorted({e.file for e in legacy})
        yield Link(
            "repository",
            WARN,
            f"{current[0].file} ({key_note}); old lists beside it: {', '.join(files)}",
            cause="The old lists point at trees frozen at toolkit 1.13.5.",
            remedy="Back them up and remove them (gpuwizard's repository step does).",
            next_command=f"cat {' '.join(files)}",
            code="unsupported-distribution",
            facts=facts,
        )
    yield Link("repository", OK, f"{current[0].file} with {keyring} ({key_note})", facts=facts)


def _rpm_repository(walk: Walk) -> Link:
    folder = "/etc/zypp/repos.d" if walk.package_manager == "zypper" else "/etc/yum.repos.d"
    base = walk.options.repo_url.rstrip("/")
    found, unsupported = sources.repo_sections(walk.host, folder)
    if sources.NVIDIA_HOST not in base:  # a mirror or an air-gapped bundle: the plan's source
        more, _ = sources.repo_sections(walk.host, folder, base)
        found += [f for f in more if f not in found]
    if unsupported:
        return from_failure(
            "repository",
            "unsupported-distribution",
            f"{', '.join(unsupported)} says '# Unsupported distribution!'",
            walk,
            next_command=f"cat {unsupported[0]}",
        )
    current = [f for f in found if "/stable/rpm/" in f.baseurl or "/experimental/rpm/" in f.baseurl]
    legacy = [f for f in found if f not in current]
    facts = {
        "current": [f"{f.file} [{f.section}]" for f in current],
        "legacy": [f"{f.file} [{f.section}]" for f in legacy],
    }
    if not current:
        return walk.absent(
            "repository",
            "",
            "NVIDIA's repository is not configured",
            remedy="Let gpuwizard add the .repo file and import the verified key.",
            next_command="gpuwizard plan",
            facts=facts,
        )
    if legacy:
        return Link(
            "repository",
            WARN,
            f"{current[0].file}; old repos beside it: "
            + ", ".join(sorted({f.file for f in legacy})),
            remedy="Remove the old per-distribution repos (frozen at 1.13.5).",
            next_command=f"cat {legacy[0].file}",
            facts=facts,
        )
    return Link("repository", OK, f"{current[0].file} [{current[0].section}]", facts=facts)
