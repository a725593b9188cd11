"""Bundle targets: `DISTRO VERSION/ARCH`, e.g. `ubuntu24.04/amd64`, `rhel9/x86_64`.

NVIDIA publishes one repository for every deb-based distribution (`stable/deb/$(ARCH)`) and
one for every rpm-based one (`stable/rpm/$basearch`: dnf, yum and zypper read the same), so a
target chooses the family and the architecture; the distribution and its version are recorded
(and compared on the offline host) so a bundle says what it was made for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gpuwizard.errors import WizardError

# distribution -> family; the releases NVIDIA's toolkit supports
APT_DISTROS = {"ubuntu": ("20.04", "22.04", "24.04"), "debian": ("11", "12", "13")}
RPM_DISTROS = {
    "rhel": ("8", "9", "10"),
    "rocky": ("8", "9"),
    "almalinux": ("8", "9"),
    "centos": ("8", "9"),
    "fedora": ("40", "41", "42"),
    "amzn": ("2", "2023"),
    "opensuse-leap": ("15.5", "15.6"),
    "sles": ("15",),
}
DEB_ARCHES = {"amd64": "amd64", "x86_64": "amd64", "arm64": "arm64", "aarch64": "arm64"}
RPM_ARCHES = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}
SUPPORTED = (
    "ubuntu20.04|22.04|24.04, debian11|12|13 (apt); rhel, rocky, almalinux, centos 8|9, "
    "rhel10, fedora40-42, amzn2|2023, opensuse-leap15.5|15.6, sles15 (dnf/zypper); "
    "each on amd64 (x86_64) or arm64 (aarch64)"
)
EXAMPLES = "ubuntu24.04/amd64, debian12/arm64, rhel9/x86_64"
_FORM = re.compile(r"^(?P<distro>[a-z][a-z-]*?)(?P<version>\d[\d.]*)/(?P<arch>[a-z0-9_]+)$")


@dataclass(frozen=True)
class Target:
    """What a bundle is for."""

    distro: str  # ubuntu
    version: str  # 24.04
    arch: str  # the package architecture: amd64 / arm64 (apt), x86_64 / aarch64 (rpm)
    family: str = "apt"  # apt | rpm

    @property
    def name(self) -> str:
        return f"{self.distro}{self.version}/{self.arch}"

    def to_json(self) -> dict[str, str]:
        return {
            "name": self.name,
            "distro": self.distro,
            "version": self.version,
            "arch": self.arch,
            "family": self.family,
        }


def parse_target(text: str) -> Target:
    """`ubuntu24.04/amd64` -> Target; anything else is a clear error naming the forms."""
    m = _FORM.match(text.strip().lower())
    if not m:
        raise WizardError(
            f"Cannot read the bundle target {text!r}",
            f"Write DISTRO+VERSION/ARCH, e.g. {EXAMPLES}. Supported: {SUPPORTED}.",
        )
    distro, version, arch = m.group("distro"), m.group("version"), m.group("arch")
    family = "rpm" if distro in RPM_DISTROS else "apt"
    releases = (RPM_DISTROS if family == "rpm" else APT_DISTROS).get(distro)
    if releases is None:
        raise WizardError(
            f"Unknown distribution {distro!r} in the bundle target {text!r}",
            f"Supported: {SUPPORTED} (e.g. {EXAMPLES}).",
        )
    if version not in releases:
        raise WizardError(
            f"{distro} {version} is not a release the NVIDIA Container Toolkit supports",
            f"Pick one of {', '.join(distro + r for r in releases)}.",
        )
    pkg_arch = (RPM_ARCHES if family == "rpm" else DEB_ARCHES).get(arch)
    if pkg_arch is None:
        raise WizardError(
            f"Unknown architecture {arch!r} in the bundle target {text!r}",
            "NVIDIA publishes amd64 (x86_64) and arm64 (aarch64).",
        )
    return Target(distro, version, pkg_arch, family)
