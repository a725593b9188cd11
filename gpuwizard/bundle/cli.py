"""The command line of the air-gapped flow: the `bundle` sub-command and `--bundle` for plan,
apply and status. Kept apart from gpuwizard.cli, which only wires these in."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from gpuwizard.errors import NeedsRoot, WizardError
from gpuwizard.options import NVIDIA_KEY_FINGERPRINT, NVIDIA_KEY_URL, NVIDIA_REPO_URL, Options

BUNDLE_HELP = "collect what an offline (air-gapped) host needs into one archive"
BUNDLE_DESCRIPTION = """\
On a machine that reaches NVIDIA's repository (or a mirror), collect into one archive what an
air-gapped host needs for `gpuwizard apply --bundle`: NVIDIA's signing key (its fingerprint
checked), the four NVIDIA Container Toolkit packages at one version with the repository's
signed index (the offline host's apt verifies them with the same key), the test image(s) as a
`docker save` tarball (from this machine's Docker engine, pulled if missing), and gpuwizard
itself (gpuwizard.pyz), with a manifest of SHA-256 sums.

Targets, DISTRO+VERSION/ARCH: ubuntu20.04|22.04|24.04 and debian11|12|13 (apt: amd64,
arm64), rhel8|9|10, rocky8|9, almalinux8|9, centos8|9, fedora40|41|42, amzn2|2023 (dnf),
opensuse-leap15.5|15.6 and sles15 (zypper) (rpm: x86_64, aarch64), e.g. ubuntu24.04/amd64 or
rhel9/x86_64. NVIDIA publishes one repository per family, so the version is only recorded.

Not in a bundle: the NVIDIA driver (it depends on the offline host's kernel and GPU: install
it there first, from the distribution's media or NVIDIA's offline installer), and Docker.
"""


def add_bundle_parser(sub: Any) -> None:
    """`gpuwizard bundle --target DIST/ARCH -o kit.tar`."""
    p = sub.add_parser(
        "bundle",
        help=BUNDLE_HELP,
        description=BUNDLE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--target",
        required=True,
        metavar="DIST/ARCH",
        help="the offline host: e.g. ubuntu24.04/amd64, debian12/arm64, rhel9/x86_64",
    )
    p.add_argument("-o", "--output", required=True, metavar="KIT.tar", help="the archive to write")
    p.add_argument(
        "--repo-url",
        default=NVIDIA_REPO_URL,
        metavar="URL",
        help="the toolkit repository (a mirror; file:// works); default NVIDIA's",
    )
    p.add_argument("--key-url", default=NVIDIA_KEY_URL, metavar="URL", help="its signing key")
    p.add_argument(
        "--key-fingerprint",
        default=NVIDIA_KEY_FINGERPRINT,
        metavar="FPR",
        help="the key's expected fingerprint (default NVIDIA's); any other key is refused",
    )
    p.add_argument(
        "--toolkit-version",
        metavar="VERSION",
        help="the toolkit version to carry (default the newest)",
    )
    p.add_argument(
        "--test-image",
        default=None,
        metavar="IMAGE",
        help="the GPU test's smoke image (default ubuntu:24.04)",
    )
    p.add_argument(
        "--cuda-image",
        metavar="IMAGE",
        help="also carry this CUDA image (e.g. nvidia/cuda:12.8.1-base-ubuntu24.04)",
    )
    p.add_argument(
        "--no-images",
        action="store_true",
        help="carry no image (the offline host then needs the test image already)",
    )
    p.add_argument(
        "--docker-host",
        metavar="URL",
        help="the Docker engine the images are saved from (default DOCKER_HOST or the socket)",
    )
    p.add_argument(
        "--pyz",
        metavar="PATH",
        help="the gpuwizard.pyz to carry (default: built from this checkout, or the one running)",
    )
    p.add_argument("--no-pyz", action="store_true", help="leave gpuwizard itself out")
    p.add_argument("--json", action="store_true", help="print one JSON document")


def cmd_bundle(ns: argparse.Namespace) -> int:
    from gpuwizard.bundle.make import DEFAULT_TEST_IMAGE, NOT_CARRIED, BundleRequest, make_bundle
    from gpuwizard.bundle.target import parse_target
    from gpuwizard.inputs import check_url

    check_url("--repo-url", ns.repo_url, bundle=True)
    check_url("--key-url", ns.key_url, bundle=True)
    req = BundleRequest(
        target=parse_target(ns.target),
        out=Path(ns.output),
        repo_url=ns.repo_url,
        key_url=ns.key_url,
        key_fingerprint=ns.key_fingerprint,
        toolkit_version=ns.toolkit_version,
        test_image=ns.test_image or DEFAULT_TEST_IMAGE,
        cuda_image=ns.cuda_image,
        images=not ns.no_images,
        docker_host=ns.docker_host,
        pyz=Path(ns.pyz) if ns.pyz else None,
        with_pyz=not ns.no_pyz,
    )

    def say(text: str) -> None:
        if not ns.json:
            print("  " + text, flush=True)

    if not ns.json:
        print(f"Bundle for {req.target.name} from {req.repo_url}")
    summary = make_bundle(req, say)
    if ns.json:
        print(json.dumps(summary, indent=2))
        return 0
    m = summary["manifest"]
    name = Path(summary["archive"]).name
    print(
        f"\nWrote {summary['archive']}: {summary['size'] / (1 << 20):.1f} MiB\n"
        f"  sha256 {summary['sha256']}  (also in {name}.sha256: check the copy with "
        f"`sha256sum -c {name}.sha256`)\n"
        f"  toolkit {m['toolkit']['version']} · key {m['key']['fingerprint']} · "
        f"images: {', '.join(i['name'] for i in m['images']) or 'none'} · "
        f"gpuwizard {m['gpuwizard']['version']}"
        + (" (gpuwizard.pyz inside)" if m["gpuwizard"]["pyz"] else "")
    )
    for note in summary["notes"]:
        print(f"  ! {note}")
    print(f"  {NOT_CARRIED}")
    run = "sudo python3 gpuwizard.pyz" if m["gpuwizard"]["pyz"] else "sudo gpuwizard"
    print(
        "\nOn the offline host:"
        + (f"\n  tar -xf {name} gpuwizard.pyz" if m["gpuwizard"]["pyz"] else "")
        + f"\n  {run} plan --bundle {name}\n  {run} apply --bundle {name}"
    )
    return 0


def with_bundle(ns: argparse.Namespace, options: Options, host: Any) -> Options:
    """plan/status --bundle: verified only; apply --bundle: verified and unpacked (as root)."""
    from gpuwizard.bundle.use import bundle_options

    if ns.command not in ("plan", "apply", "status"):
        raise WizardError(
            f"--bundle goes with plan, apply and status, not {ns.command or 'the app'}",
            "Run `gpuwizard plan --bundle KIT.tar`, then `sudo gpuwizard apply --bundle KIT.tar`.",
        )
    if getattr(ns, "demo", False):
        raise WizardError(
            "--bundle and --demo do not go together",
            "Leave --demo out: a bundle is for a real host.",
        )
    apply = ns.command == "apply"
    if apply and os.geteuid() != 0:
        raise NeedsRoot(
            "`gpuwizard apply --bundle` unpacks into /var/lib/gpuwizard and changes the system: "
            "it needs root",
            "Run it as `sudo gpuwizard apply --bundle …`; `gpuwizard plan --bundle …` "
            "works without root.",
        )
    new, _verified, notes = bundle_options(host, Path(ns.bundle), options, unpack_now=apply)
    stream = sys.stderr if getattr(ns, "json", False) else sys.stdout
    for note in notes:
        print(f"bundle: {note}", file=stream)
    return new
