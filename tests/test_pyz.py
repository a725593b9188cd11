"""gpuwizard.pyz: built reproducibly, pure Python, and it runs on a Debian root that has python3
and nothing else (no pip, no venv): `status --json`, `--demo apply --yes`, the app's first frame
on a pty. The root is the suite's debootstrap root plus Debian's python3 (apt, once, cached by
content like the base root). GPUWIZARD_TEST_OLDEST_PYTHON=1 also runs it on bullseye's
Python 3.9 (a second debootstrap, minutes on these machines, so not in CI by default)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Iterator

import pytest

from tests.debroot import CACHE_DIR, MIRROR, debian_root, mount_binds, unmount_binds

REPO = Path(__file__).resolve().parent.parent
PY_ROOT_VERSION = "bookworm-python3-v1"

pytestmark = pytest.mark.slow


def _build(out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        [sys.executable, str(REPO / "scripts" / "build_pyz.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="session")
def pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pyz") / "gpuwizard.pyz"
    r = _build(out)
    if r.returncode != 0 and "could not fetch" in r.stderr:
        pytest.skip(f"no wheels and no PyPI: {r.stderr.strip()[:300]}")
    assert r.returncode == 0, r.stderr
    return out


def test_the_build_is_reproducible_pure_and_says_its_sha256(pyz: Path, tmp_path: Path) -> None:
    again = _build(tmp_path / "again.pyz")
    assert again.returncode == 0, again.stderr
    data = pyz.read_bytes()
    assert (tmp_path / "again.pyz").read_bytes() == data, "two builds gave different bytes"
    digest = hashlib.sha256(data).hexdigest()
    assert f"SHA-256 {digest}" in again.stdout
    assert (tmp_path / "again.pyz.sha256").read_text() == f"{digest}  again.pyz\n"
    with zipfile.ZipFile(pyz) as z:
        names = z.namelist()
        assert names[0] == "__main__.py" and names[1:] == sorted(names[1:])
        assert {i.date_time for i in z.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert not [n for n in names if n.endswith((".so", ".pyd"))]
    for top in ("textual", "rich", "docker", "distro", "pynvml.py", "requests", "gpuwizard"):
        assert any(n.startswith(f"lib/{top}") for n in names), top
    assert "lib/gpuwizard/data/failures.json" in names


def _python_root_tarball(base: Path, where: Path) -> Path:
    """The base debootstrap root plus python3 (Debian's, no pip, no venv), cached."""
    tarball = CACHE_DIR / f"debroot-{PY_ROOT_VERSION}.tar"
    if tarball.exists():
        return tarball
    with open(CACHE_DIR / "debroot-python3.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        if tarball.exists():
            return tarball
        with debian_root(base, where) as root:
            env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
            for argv in (
                ["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "python3"],
                ["apt-get", "clean"],
            ):
                r = subprocess.run(  # noqa: S603
                    ["chroot", str(root), *argv], capture_output=True, text=True, env=env
                )
                if r.returncode != 0:
                    pytest.skip(f"could not install python3 from {MIRROR}: {r.stderr[-300:]}")
            unmount_binds(root)
            tmp = tarball.with_suffix(".tmp")
            subprocess.run(["tar", "-C", str(root), "-cf", str(tmp), "."], check=True)  # noqa: S603 S607
            os.replace(tmp, tarball)
            mount_binds(root)  # debian_root unmounts them
    return tarball


def _oldest_tarball() -> Path:
    tarball = CACHE_DIR / "debroot-bullseye-python3-v1.tar"
    if tarball.exists():
        return tarball
    work = CACHE_DIR / f".bullseye-{os.getpid()}"
    try:
        subprocess.run(  # noqa: S603
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3",
                "bullseye",
                str(work),
                MIRROR,
            ],
            check=True,
            capture_output=True,
        )
        tmp = tarball.with_suffix(".tmp")
        subprocess.run(["tar", "-C", str(work), "-cf", str(tmp), "."], check=True)  # noqa: S603 S607
        os.replace(tmp, tarball)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tarball


SUITES = ["bookworm"] + (["bullseye"] if os.environ.get("GPUWIZARD_TEST_OLDEST_PYTHON") else [])


@pytest.fixture(scope="session", params=SUITES)
def python_base(
    request: pytest.FixtureRequest, debroot_base: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    if request.param == "bookworm":
        tarball = _python_root_tarball(debroot_base, tmp_path_factory.mktemp("pybuild"))
    else:
        tarball = _oldest_tarball()
    base = tmp_path_factory.mktemp(f"py-{request.param}") / "base"
    base.mkdir()
    subprocess.run(["tar", "-C", str(base), "-xf", str(tarball)], check=True)  # noqa: S603 S607
    return base


@pytest.fixture
def bare_root(python_base: Path, tmp_path: Path, pyz: Path) -> Iterator[Path]:
    with debian_root(python_base, tmp_path) as root:
        shutil.copy2(pyz, root / "root/gpuwizard.pyz")
        yield root


def _in(root: Path, *argv: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "NO_COLOR": "1", "HOME": "/root"}
    return subprocess.run(  # noqa: S603
        ["chroot", str(root), *argv],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_pyz_runs_where_there_is_only_python3(bare_root: Path) -> None:
    version = _in(bare_root, "python3", "--version").stdout
    # the premise: no pip, no venv here (the README's venv command would fail)
    assert _in(bare_root, "python3", "-m", "pip", "--version").returncode != 0
    venv = _in(bare_root, "python3", "-m", "venv", "/tmp/v")
    assert venv.returncode != 0, "this root was meant to have no venv"

    st = _in(bare_root, "python3", "/root/gpuwizard.pyz", "status", "--json")
    assert st.returncode == 0, st.stderr
    report = json.loads(st.stdout)
    assert report["host"]["distro_id"] == "debian", version
    assert [s["step"] for s in report["steps"]][:2] == ["driver", "repository"]
    assert report["steps"][0]["state"] == "blocked"  # no GPU here, said plainly
    cache = bare_root / "var/cache/gpuwizard/pyz"
    (unpacked,) = [p for p in cache.iterdir() if not p.name.startswith(".")]
    assert (unpacked / "gpuwizard/cli.py").is_file()
    assert list(unpacked.rglob("cli.*.pyc")), "the payload was not byte-compiled"
    assert oct(cache.stat().st_mode & 0o777) == "0o755" and cache.stat().st_uid == 0

    demo = _in(bare_root, "python3", "/root/gpuwizard.pyz", "--demo", "apply", "--yes")
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    assert "finished" in demo.stdout and "GPU test: 3 of 3 passed" in demo.stdout


def test_pyz_app_draws_its_first_frame_on_a_pty(bare_root: Path) -> None:
    from benchmarks.pty_app import PtyApp

    warm = _in(bare_root, "python3", "/root/gpuwizard.pyz", "--version")
    assert warm.returncode == 0 and "gpuwizard" in warm.stdout, warm.stderr
    app = PtyApp(["chroot", str(bare_root), "python3", "/root/gpuwizard.pyz", "--demo"])
    app.start()
    try:
        t = app.wait_for(b"Quit", 60)
        assert t is not None, app.screen[-800:].decode(errors="replace")
        assert app.wait_for(b"H200", 30) is not None, app.screen[-800:].decode(errors="replace")
    finally:
        app.stop()


def test_an_unsafe_cache_folder_is_not_used(pyz: Path, tmp_path: Path) -> None:
    """A cache folder others can write to could hand root someone else's code: not used."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    env = {**os.environ, "GPUWIZARD_PYZ_CACHE": str(shared / "pyz"), "NO_COLOR": "1"}
    os.chmod(tmp_path, 0o700)
    r = subprocess.run(  # noqa: S603
        [sys.executable, str(pyz), "--version"], capture_output=True, text=True, env=env
    )
    assert r.returncode == 0 and "gpuwizard" in r.stdout, r.stderr
    assert "is not private" in r.stderr
    assert not (shared / "pyz").exists() or not any((shared / "pyz").iterdir())
