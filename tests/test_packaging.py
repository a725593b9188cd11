"""A package worth publishing: the sdist as setuptools really builds it (LICENSE, CHANGELOG, no
tests it could not run, metadata a PyPI page shows, README links that work off GitHub), and
scripts/test never swapping a Docker CE install for docker.io (checked with real dpkg in a
debootstrap root holding a package named docker-ce)."""

from __future__ import annotations

import email
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.debroot import build_deb

REPO = Path(__file__).resolve().parent.parent


def _sdist(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    tracked = subprocess.run(  # noqa: S603
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],  # noqa: S607
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for rel in (t.decode() for t in tracked if t):
        if (REPO / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, src / rel)
    out = tmp_path / "out"
    r = subprocess.run(  # noqa: S603
        [
            sys.executable,
            "-c",
            f"import setuptools.build_meta as b; print(b.build_sdist({str(out)!r}))",
        ],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return out / r.stdout.strip().splitlines()[-1]


def test_the_sdist_holds_license_changelog_and_no_tests_it_cannot_run(tmp_path: Path) -> None:
    sdist = _sdist(tmp_path)
    with tarfile.open(sdist) as tar:
        names = [n.split("/", 1)[1] for n in tar.getnames() if "/" in n]
        pkg_info = tar.extractfile(
            next(m for m in tar.getmembers() if m.name.endswith("/PKG-INFO"))
        )
        assert pkg_info is not None
        meta = email.message_from_bytes(pkg_info.read())
    for need in ("LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml", "gpuwizard/cli.py"):
        assert need in names, need
    assert "gpuwizard/data/failures.json" in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "screenshots/"))]
    assert meta["License-Expression"] == "Apache-2.0"
    assert "Apache License" in (REPO / "LICENSE").read_text()
    classifiers = meta.get_all("Classifier") or []
    assert "Programming Language :: Python :: 3.9" in classifiers
    assert "Operating System :: POSIX :: Linux" in classifiers
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
    assert {"Homepage", "Source", "Issues", "Changelog"} <= {k.title() for k in urls}
    assert "nvidia" in (meta["Keywords"] or "")
    # on PyPI a relative image or link points nowhere
    body = meta.get_payload()
    assert isinstance(body, str)
    relative = re.findall(r"\]\((?!https?://|#)([^)]+)\)", body)
    assert relative == [], relative


@pytest.mark.slow
def test_scripts_test_keeps_a_docker_ce_install(debroot: Path, tmp_path: Path) -> None:
    """scripts/test says what it would install, and leaves docker.io out next to docker-ce."""
    deb = build_deb(tmp_path, "docker-ce", "5:27.3.1-1~debian.12~bookworm")
    shutil.copy2(deb, debroot / "tmp" / deb.name)
    subprocess.run(["chroot", str(debroot), "dpkg", "-i", f"/tmp/{deb.name}"], check=True)  # noqa: S603 S607
    (debroot / "src/scripts").mkdir(parents=True)
    shutil.copy2(REPO / "scripts/test", debroot / "src/scripts/test")
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "GPUWIZARD_TEST_NO_INSTALL": "1"}
    r = subprocess.run(  # noqa: S603
        ["chroot", str(debroot), "bash", "/src/scripts/test"],  # noqa: S607
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert "docker-ce is installed: keeping it" in r.stdout
    line = next(x for x in r.stdout.splitlines() if "installs these system packages" in x)
    assert "docker.io" not in line.split() and "docker-compose" not in line.split()
    assert "debootstrap" in line and "tmux" in line  # the rest is still listed, before apt runs
    assert "install them yourself" in r.stderr
    status = subprocess.run(  # noqa: S603
        ["chroot", str(debroot), "dpkg-query", "-W", "docker-ce"],  # noqa: S607
        capture_output=True,
        text=True,
    )
    assert status.returncode == 0
