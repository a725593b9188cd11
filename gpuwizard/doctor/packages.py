"""The toolkit's packages: judged from host.packages' database reading and host.toolkit."""

from __future__ import annotations

from gpuwizard.doctor.links import BROKEN, OK, SKIPPED, WARN, Link, Walk, from_failure
from gpuwizard.host import packages as pkgs
from gpuwizard.host import toolkit


def probe_packages(walk: Walk) -> Link:
    host = walk.host
    walk.hook = toolkit.hook(host)
    names = toolkit.TOOLKIT_PACKAGES + toolkit.LEGACY_PACKAGES
    found = pkgs.read_installed(host, names, walk.package_manager)
    if found is None:
        return Link(
            "packages",
            SKIPPED,
            "no package database to read (dpkg or rpm)",
            facts={"hook": walk.hook},
        )
    installed = {n: v for n, v in found.items() if n in toolkit.TOOLKIT_PACKAGES}
    legacy = {n: v for n, v in found.items() if n in toolkit.LEGACY_PACKAGES}
    facts = {"installed": found, "hook": walk.hook}
    install = {
        "debian": "sudo apt-get install",
        "rhel": "sudo dnf install",
        "suse": "sudo zypper install",
    }.get(walk.family, "install")
    everything = " ".join(toolkit.TOOLKIT_PACKAGES)
    if not installed:
        summary = "the NVIDIA Container Toolkit is not installed"
        if legacy:
            summary += f" (only legacy {', '.join(sorted(legacy))})"
        return walk.absent(
            "packages",
            "",
            summary,
            cause="Nothing gives dockerd the NVIDIA hook or runtime.",
            remedy="Install the four toolkit packages at one version (gpuwizard pins them).",
            next_command=f"{install} {everything}",
            facts=facts,
        )
    missing = [n for n in toolkit.TOOLKIT_PACKAGES if n not in installed]
    listing = ", ".join(f"{n} {v}" for n, v in installed.items())
    if missing:
        return Link(
            "packages",
            BROKEN,
            f"missing {', '.join(missing)} (have {listing})",
            cause="The toolkit is four packages; one missing leaves it half installed.",
            next_command=f"{install} {' '.join(missing)}",
            facts=facts,
        )
    upstreams = {pkgs.upstream_of(v) for v in installed.values()}
    if len(upstreams) > 1:
        strict = pkgs.needs_exact_match(max(upstreams, key=pkgs.version_key))
        pinned = " ".join(
            f"{n}={installed['nvidia-container-toolkit']}" for n in toolkit.TOOLKIT_PACKAGES
        )
        return Link(
            "packages",
            BROKEN if strict else WARN,
            f"versions differ: {listing}",
            cause=(
                "Since 1.18 the libnvidia-container libraries must match the "
                "toolkit version exactly."
                if strict
                else "The four packages should be at one version."
            ),
            remedy="Pin all four to one version (gpuwizard does).",
            next_command=f"{install} {pinned}"
            if walk.family == "debian"
            else f"{install} {everything}",
            facts=facts,
        )
    version = installed["nvidia-container-toolkit"]
    if host.path("/snap/bin/docker").exists():
        return from_failure(
            "packages",
            "snap-docker",
            f"toolkit {version} installed beside snap Docker, which bundles its own",
            walk,
            verdict=BROKEN if walk.gpu else WARN,
            next_command="snap list docker",
            facts=facts,
        )
    warnings = []
    if pkgs.below_floor(version):
        warnings.append(
            f"{version} is older than {toolkit.SECURITY_FLOOR} and has known CVEs "
            "(CVE-2025-23266 among them): upgrade"
        )
    if not pkgs.is_nvidia_build(version):
        warnings.append(f"{version} is not an NVIDIA build (a vendor or distribution package)")
    if legacy:
        warnings.append(
            f"legacy {', '.join(sorted(legacy))} installed: remove it (never purge: "
            "nvidia-docker2 <= 2.13 owns /etc/docker/daemon.json)"
        )
    if walk.hook is None:
        return Link(
            "packages",
            BROKEN,
            f"toolkit {version} installed but {toolkit.HOOK} is not on PATH",
            cause="The package is there but its hook binary is not.",
            next_command=f"{install} --reinstall nvidia-container-toolkit"
            if walk.family == "debian"
            else f"{install} nvidia-container-toolkit",
            facts=facts,
        )
    if warnings:
        return Link(
            "packages",
            WARN,
            f"toolkit {version}; " + "; ".join(warnings),
            remedy="Upgrade to the current 1.20.x and remove legacy packages (gpuwizard).",
            next_command="gpuwizard plan",
            facts=facts,
        )
    return Link("packages", OK, f"toolkit {version}, all four packages at one version", facts=facts)
