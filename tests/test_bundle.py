"""The air-gapped flow, end to end with real parts: `gpuwizard bundle` against the signed local
repository served on 127.0.0.1 (and the test dockerd's image), then `apply --bundle` in a
second Debian root with that server stopped: real apt verifies the copied index with the same
key, real dpkg installs the four packages pinned, the engine loads the image instead of
pulling it, and rollback leaves the root as it was. Hostile archives are refused by name."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any, Iterator

import pytest
from debroot import (
    TOOLKIT,
    NvidiaRepo,
    RepoServer,
    debian_root,
    dpkg_set,
    snapshot,
)

from gpuwizard.bundle.archive import MANIFEST, SUMS, read_archive
from gpuwizard.bundle.target import parse_target
from gpuwizard.errors import WizardError
from tests.dockerd import IMAGE, Dockerd

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
SMOKE = "local/bundle-smoke:1"  # more tags of the test image, removed after the bundle
CUDA = "local/bundle-cuda:12"
BUNDLES = "var/lib/gpuwizard-bundles"


def gw(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "gpuwizard", *args],
        capture_output=True,
        text=True,
        cwd=str(REPO),
        env={**os.environ, "NO_COLOR": "1"},
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def kit(
    nvidia_repo: NvidiaRepo,
    dockerd_session: Dockerd,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    """One bundle, made from a server of its own on 127.0.0.1 that is stopped right after:
    nothing that applies it can reach the repository."""
    out = tmp_path_factory.mktemp("kit") / "kit.tar"
    server = RepoServer(nvidia_repo.server.folder)
    server.start()
    dockerd_session.docker("tag", IMAGE, SMOKE)
    dockerd_session.docker("tag", IMAGE, CUDA)
    try:
        made = gw(
            "bundle",
            "--target",
            "debian12/amd64",
            "-o",
            str(out),
            "--repo-url",
            server.url + "/stable",
            "--key-url",
            server.url + "/gpgkey",
            "--key-fingerprint",
            nvidia_repo.key.fingerprint,
            "--toolkit-version",
            "1.17.8",
            "--test-image",
            SMOKE,
            "--cuda-image",
            CUDA,
            "--docker-host",
            dockerd_session.docker_host,
        )
    finally:
        server.stop()
        dockerd_session.docker("rmi", SMOKE, CUDA, check=False)
    assert made.returncode == 0, made.stdout + made.stderr
    yield {"path": out, "stdout": made.stdout, "url": server.url}


def test_bundle_carries_key_index_four_pinned_packages_image_and_gpuwizard(
    kit: dict[str, Any], nvidia_repo: NvidiaRepo
) -> None:
    v = read_archive(kit["path"])
    m = v.manifest
    assert m["target"]["name"] == "debian12/amd64"
    assert m["key"]["fingerprint"] == nvidia_repo.key.fingerprint
    assert m["toolkit"]["version"] == "1.17.8-1"
    assert sorted(p["name"] for p in m["toolkit"]["packages"]) == sorted(TOOLKIT)
    assert {p["version"] for p in m["toolkit"]["packages"]} == {"1.17.8-1"}
    assert [(i["name"], i["role"]) for i in m["images"]] == [(SMOKE, "smoke"), (CUDA, "cuda")]
    assert m["gpuwizard"]["pyz"] == "gpuwizard.pyz"
    names = set(m["members"])
    # the signed index is carried byte for byte; only the chosen version's packages
    assert "repo/deb/amd64/InRelease" in names
    assert "repo/deb/amd64/Packages" in names
    assert not any("1.20.1" in n for n in names)
    # SHA256SUMS covers the manifest and every member, in `sha256sum -c` form
    with tarfile.open(kit["path"]) as tar:
        assert tar.getnames()[:2] == [MANIFEST, SUMS]
        sums = tar.extractfile(SUMS).read().decode()  # type: ignore[union-attr]
    assert len(sums.splitlines()) == len(names) + 1
    sidecar = kit["path"].with_name("kit.tar.sha256").read_text()
    assert sidecar == f"{v.sha256}  kit.tar\n"
    assert "sha256 " + v.sha256 in kit["stdout"]
    assert "never the NVIDIA driver" in kit["stdout"]


def test_bundle_refuses_a_repository_signed_by_another_key(
    nvidia_repo: NvidiaRepo, tmp_path: Path
) -> None:
    """The key is the expected one, but the index is signed with another: not bundled."""
    www = tmp_path / "www"
    from debroot import flat_repo

    flat_repo(www / "stable/deb/amd64", nvidia_repo.debs["1.17.8-1"], nvidia_repo.other_key)
    (www / "gpgkey").write_bytes(nvidia_repo.key.armored)
    r = gw(
        "bundle",
        "--target",
        "ubuntu24.04/amd64",
        "-o",
        str(tmp_path / "kit.tar"),
        "--repo-url",
        f"file://{www}/stable",
        "--key-url",
        f"file://{www}/gpgkey",
        "--key-fingerprint",
        nvidia_repo.key.fingerprint,
        "--no-images",
        "--no-pyz",
    )
    assert r.returncode == 1
    assert f"is not signed by the checked key {nvidia_repo.key.fingerprint}" in r.stderr
    assert not (tmp_path / "kit.tar").exists()


def test_apply_bundle_in_a_second_root_offline_pinned_image_loaded_rollback_exact(
    kit: dict[str, Any],
    nvidia_repo: NvidiaRepo,
    debroot_base: Path,
    dockerd: Dockerd,
    tmp_path: Path,
) -> None:
    fpr = nvidia_repo.key.fingerprint
    sha = read_archive(kit["path"]).sha256
    with debian_root(debroot_base, tmp_path / "second") as root:
        pristine = dpkg_set(root)
        etc = snapshot(root, ("/etc", "/usr/share/keyrings"))
        state = tmp_path / "state"
        common = ["--bundle", str(kit["path"]), "--root", str(root), "--key-fingerprint", fpr]
        plan = gw("plan", *common)
        assert plan.returncode == 0, plan.stderr
        assert "nothing unpacked" in plan.stdout
        assert "does not carry the NVIDIA driver" in plan.stdout  # no GPU in this root
        assert not (root / BUNDLES).exists()  # plan changes nothing

        applied = gw(
            "apply",
            *common,
            "--step",
            "repository",
            "--step",
            "packages",
            "--yes",  # detached, as a user runs it: the worker gets the bundle's options
            "--state-dir",
            str(state),
        )
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert "started in the background" in applied.stdout
        listing = (root / "etc/apt/sources.list.d/nvidia-container-toolkit.list").read_text()
        assert listing.startswith(
            f"deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg] "
            f"file:///var/lib/gpuwizard-bundles/{sha}/repo/deb/$(ARCH) /"
        )
        assert listing.count("\n") == 1  # one channel: no experimental line into nowhere
        assert "http" not in listing and kit["url"] not in applied.stdout
        # apt read the copy as its sandbox user, with no fall-back and no error
        assert "Err:" not in applied.stdout and "Permission denied" not in applied.stdout
        installed = {
            line.split()[0]: line.split()[1]
            for line in dpkg_set(root).splitlines()
            if line.split()[0] in TOOLKIT
        }
        assert installed == {n: "1.17.8-1" for n in TOOLKIT}
        again = gw(
            "plan", *common, "--step", "repository", "--step", "packages", "--detailed-exitcode"
        )
        assert again.returncode == 0, again.stdout + again.stderr  # nothing left to do
        folder = root / BUNDLES / sha
        assert oct(folder.stat().st_mode & 0o777) == "0o755" and folder.stat().st_uid == 0

        # the GPU test: a --root is never live, so it runs against the test engine through
        # the API, with the options `apply --bundle` made (the unpacked folder is reused)
        loaded = _gpu_test_from_bundle(root, kit["path"], fpr, dockerd, tmp_path / "gt")
        assert [r["loaded"] for r in loaded["loads"]] == [loaded["id"]] * 2
        assert len(loaded["runs"]) >= 2 and not any(r["pulled"] for r in loaded["runs"])
        assert any(r["passed"] for r in loaded["runs"])
        assert not any("pulling" in t for t in loaded["logs"])
        for tag in (SMOKE, CUDA):  # its rollback removed the tags it loaded
            assert dockerd.client().images.list(name=tag) == []

        back = gw("rollback", "--root", str(root), "--state-dir", str(state), "--yes")
        assert back.returncode == 0, back.stdout + back.stderr
        assert dpkg_set(root) == pristine
        assert snapshot(root, ("/etc", "/usr/share/keyrings")) == etc
        print("\n$ gpuwizard bundle …\n" + kit["stdout"] + "\n$ gpuwizard apply --bundle …")
        print(applied.stdout)


def _gpu_test_from_bundle(
    root: Path, kit: Path, fpr: str, dockerd: Dockerd, state: Path
) -> dict[str, Any]:
    from gpuwizard import wizard
    from gpuwizard.bundle.use import bundle_options
    from gpuwizard.host.system import Host
    from gpuwizard.journal import Journal
    from gpuwizard.options import Options
    from gpuwizard.steps.gpu_test import GpuTestStep

    base = Options(
        key_fingerprint=fpr,
        docker_host=dockerd.docker_host,
        steps=("gpu-test",),
    )
    options, verified, _ = bundle_options(Host(root=root), kit, base, unpack_now=True)
    assert options.test_image == SMOKE and options.cuda_image == CUDA
    assert not options.skip_cuda_test
    assert dockerd.client().images.list(name=SMOKE) == []
    events: list[Any] = []
    steps = [GpuTestStep()]
    the_plan = wizard.plan(Host(), options, steps=steps)
    sp = the_plan.step("gpu-test")
    assert sp.state == "pending", (sp.reason, sp.remedy)
    assert [a.kind for a in sp.actions[:2]] == ["load-image", "load-image"]
    assert CUDA in [getattr(a, "image", "") for a in sp.actions[2:]]  # the CUDA test, offline
    journal = Journal(state)
    run = journal.start_run(["test"])
    # the stand-in toolkit on the engine's PATH answers for the GPU (tests/stand_ins)
    wizard.apply(Host(), options, the_plan, run, emit=events.append, steps=steps)
    image_id = verified.images[0]["id"]
    assert dockerd.client().images.get(SMOKE).id == image_id  # docker load put it there
    records = journal.read_run(run.run_id).records
    done = {r.data.get("ref"): r.data.get("result") for r in records if r.type == "done"}
    intents = [(r.seq, r.data["action"]) for r in records if r.type == "intent"]
    loads = [done[s] for s, a in intents if a == "load-image"]
    runs = [done[s] for s, a in intents if a == "run-container" and done.get(s)]
    wizard.rollback(Host(), journal, run_id=run.run_id)
    return {
        "loads": loads,
        "id": image_id,
        "runs": runs,
        "logs": [getattr(e, "text", "") for e in events],
    }


# -- hostile archives ---------------------------------------------------------------------


def _rewrite(kit: Path, out: Path, change: Any) -> Path:
    """A copy of the kit with its members passed through `change(name, data) -> list of
    (TarInfo, bytes or None)`."""
    with tarfile.open(kit) as src, tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()  # type: ignore[union-attr]
            for info, body in change(member, data):
                dst.addfile(info, io.BytesIO(body) if body is not None else None)
    return out


def _same(member: tarfile.TarInfo, data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
    return [(member, data)]


def _tampered(member: tarfile.TarInfo, data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
    if member.name.endswith("/Packages"):
        data = data.replace(b"Version: 1.17.8-1", b"Version: 1.17.9-1", 1)
    return [(member, data)]


def _extra(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> Any:
    def change(member: tarfile.TarInfo, data: bytes) -> list[tuple[tarfile.TarInfo, Any]]:
        out: list[tuple[tarfile.TarInfo, Any]] = [(member, data)]
        if member.name == SUMS:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = link
            body = b"evil\n" if kind == tarfile.REGTYPE else None
            info.size = len(body) if body else 0
            out.append((info, body))
        return out

    return change


def _forged(other: Any, good_fpr: str, fpr_in_manifest: str) -> Any:
    """Another key in repo/gpgkey, with the manifest's sums made to match (a careful forger)."""
    import hashlib

    def change(member: tarfile.TarInfo, data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
        if member.name == "repo/gpgkey":
            data = other.armored
        elif member.name == MANIFEST:
            m = json.loads(data)
            m["members"]["repo/gpgkey"] = hashlib.sha256(other.armored).hexdigest()
            m["key"]["fingerprint"] = fpr_in_manifest
            data = json.dumps(m).encode()
        member.size = len(data)
        return [(member, data)]

    return change


HOSTILE = {
    "tampered member": (_tampered, "does not match its checksum in the manifest"),
    "dot-dot member": (_extra("../../etc/evil"), "has an absolute path, a `..`"),
    "absolute member": (_extra("/etc/evil"), "has an absolute path, a `..`"),
    "symlink member": (
        _extra("repo/stable/evil", tarfile.SYMTYPE, "/etc/shadow"),
        "is a symbolic link to /etc/shadow",
    ),
    "device member": (_extra("repo/null", tarfile.CHRTYPE), "is a device"),
    "unlisted member": (_extra("repo/stable/extra.deb"), "is not in the manifest"),
}


@pytest.mark.parametrize("case", [*HOSTILE, "other key, its own fingerprint", "other key"])
def test_hostile_bundle_is_refused_by_name_and_nothing_changes(
    case: str, kit: dict[str, Any], nvidia_repo: NvidiaRepo, debroot: Path, tmp_path: Path
) -> None:
    good = nvidia_repo.key.fingerprint
    if case == "other key, its own fingerprint":
        change, expected = (
            _forged(nvidia_repo.other_key, good, nvidia_repo.other_key.fingerprint),
            f"its repository key is {nvidia_repo.other_key.fingerprint}, not the key this "
            f"host trusts ({good})",
        )
    elif case == "other key":
        change, expected = (
            _forged(nvidia_repo.other_key, good, good),
            f"has fingerprint {nvidia_repo.other_key.fingerprint}, but {good} was expected",
        )
    else:
        change, expected = HOSTILE[case]
    bad = _rewrite(kit["path"], tmp_path / "bad.tar", change)
    before = snapshot(debroot, ("/etc", "/var/lib/dpkg/status"))
    r = gw(
        "apply",
        "--bundle",
        str(bad),
        "--root",
        str(debroot),
        "--key-fingerprint",
        good,
        "--yes",
        "--no-detach",
        "--state-dir",
        str(tmp_path / "state"),
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert expected in r.stderr, r.stderr
    assert "Nothing was" in r.stderr and "Traceback" not in r.stderr
    assert not (debroot / BUNDLES).exists()
    assert snapshot(debroot, ("/etc", "/var/lib/dpkg/status")) == before


def test_an_untouched_copy_passes_and_targets_read_as_documented(
    kit: dict[str, Any], tmp_path: Path
) -> None:
    same = _rewrite(kit["path"], tmp_path / "same.tar", _same)
    assert read_archive(same).manifest == read_archive(kit["path"]).manifest
    assert parse_target("ubuntu24.04/x86_64").name == "ubuntu24.04/amd64"
    assert parse_target("rocky9/amd64").to_json()["arch"] == "x86_64"
    for bad, says in (("rhel7/x86_64", "not a release"), ("ubuntu24.04", "DISTRO")):
        with pytest.raises(WizardError) as err:
            parse_target(bad)
        assert says in err.value.cause + err.value.remedy


def test_a_symlink_where_the_bundles_folder_goes_is_refused(
    kit: dict[str, Any], nvidia_repo: NvidiaRepo, debroot: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (debroot / BUNDLES).symlink_to(elsewhere)
    r = gw(
        "apply",
        "--bundle",
        str(kit["path"]),
        "--root",
        str(debroot),
        "--key-fingerprint",
        nvidia_repo.key.fingerprint,
        "--yes",
        "--no-detach",
        "--state-dir",
        str(tmp_path / "state"),
    )
    assert r.returncode == 1
    assert "is a symbolic link or not a folder" in r.stderr, r.stderr
    assert list(elsewhere.iterdir()) == []


def test_bundle_without_an_engine_says_so_before_downloading(
    nvidia_repo: NvidiaRepo, tmp_path: Path
) -> None:
    www = nvidia_repo.server.folder
    r = gw(
        "bundle",
        "--target",
        "debian12/amd64",
        "-o",
        str(tmp_path / "kit.tar"),
        "--repo-url",
        f"file://{www}/stable",
        "--key-url",
        f"file://{www}/gpgkey",
        "--key-fingerprint",
        nvidia_repo.key.fingerprint,
        "--docker-host",
        f"unix://{tmp_path}/no-engine.sock",
    )
    assert r.returncode == 1
    assert "No Docker engine to save the test image ubuntu:24.04 from" in r.stderr
    assert "--no-images" in r.stderr and "InRelease" not in r.stdout
    assert not (tmp_path / "kit.tar").exists()


def test_bundle_options_travel_to_the_detached_worker() -> None:
    from gpuwizard.options import Options

    o = Options(
        bundle="/var/lib/gpuwizard-bundles/ab",
        bundle_images=[{"name": "ubuntu:24.04", "file": "images/ubuntu_24.04.tar", "id": "x"}],
    )
    assert Options.from_json(json.loads(json.dumps(o.to_json()))) == o


@pytest.mark.parametrize(
    "tool,target,repo_file",
    [("dnf", "rhel9", "yum.repos.d"), ("zypper", "opensuse-leap15.6", "zypp/repos.d")],
)
def test_rpm_bundle_applied_in_an_empty_root_offline_and_rolled_back(
    rpm_repo: Any, tmp_path: Path, tool: str, target: str, repo_file: str
) -> None:
    import platform
    import shutil

    from rpmrepo import LEAP, ROCKY, rpm_qa, rpm_root

    if shutil.which(tool) is None:
        pytest.skip(f"needs {tool}")
    fpr = rpm_repo.key.fingerprint
    server = RepoServer(rpm_repo.server.folder)
    server.start()
    out = tmp_path / "rkit.tar"
    try:
        made = gw(
            "bundle",
            "--target",
            f"{target}/{platform.machine()}",
            "-o",
            str(out),
            "--repo-url",
            server.url + "/stable",
            "--key-url",
            server.url + "/gpgkey",
            "--key-fingerprint",
            fpr,
            "--toolkit-version",
            "1.17.8",
            "--no-images",
            "--no-pyz",
        )
    finally:
        server.stop()
    assert made.returncode == 0, made.stdout + made.stderr
    assert "repomd.xml of" in made.stdout and f"signed by {fpr} (checked)" in made.stdout
    sha = read_archive(out).sha256
    root = rpm_root(tmp_path, ROCKY if tool == "dnf" else LEAP)
    applied = gw(
        "apply",
        "--bundle",
        str(out),
        "--root",
        str(root),
        "--key-fingerprint",
        fpr,
        "--step",
        "repository",
        "--step",
        "packages",
        "--yes",
        "--no-detach",
        "--state-dir",
        str(tmp_path / "state"),
    )
    assert applied.returncode == 0, applied.stdout + applied.stderr
    repo = (root / f"etc/{repo_file}/nvidia-container-toolkit.repo").read_text()
    # the folder as the target system sees it (the image, once it boots); dnf --installroot
    # and zypper --root, which open file:// URLs on this machine, were told where it is here
    assert f"baseurl=file:///{BUNDLES}/{sha}/repo/rpm/$basearch" in repo
    assert "repo_gpgcheck=1" in repo and "http" not in repo
    installed = rpm_qa(root)
    for name in TOOLKIT:
        assert f"{name} 1.17.8-1" in installed
    back = gw("rollback", "--root", str(root), "--state-dir", str(tmp_path / "state"), "--yes")
    assert back.returncode == 0, back.stdout + back.stderr
    assert rpm_qa(root) == []
    assert not (root / f"etc/{repo_file}").exists() and not (root / "etc/pki").exists()


def test_an_rpm_mirror_with_zstd_metadata_makes_a_kit(rpm_repo: Any, tmp_path: Path) -> None:
    """createrepo_c writes zstd when asked (and some distributions' tools do by default);
    Python's standard library cannot read it before 3.14: the `zstd` program does, on the
    digest-checked bytes. It used to be refused."""
    import platform
    import shutil

    if shutil.which("zstd") is None:
        pytest.skip("needs the zstd program")
    www = tmp_path / "www"
    shutil.copytree(rpm_repo.server.folder, www)
    repo = www / "stable/rpm" / platform.machine()
    _primary_as_zstd(repo / "repodata")
    assert any(p.name.endswith("primary.xml.zst") for p in (repo / "repodata").iterdir())
    rpm_repo.key.sign_detached(repo / "repodata/repomd.xml", repo / "repodata/repomd.xml.asc")
    server = RepoServer(www)
    server.start()
    out = tmp_path / "zkit.tar"
    try:
        made = gw(
            "bundle",
            "--target",
            f"rhel9/{platform.machine()}",
            "-o",
            str(out),
            "--repo-url",
            server.url + "/stable",
            "--key-url",
            server.url + "/gpgkey",
            "--key-fingerprint",
            rpm_repo.key.fingerprint,
            "--toolkit-version",
            "1.17.8",
            "--no-images",
            "--no-pyz",
        )
    finally:
        server.stop()
    assert made.returncode == 0, made.stdout + made.stderr
    manifest = read_archive(out).manifest
    assert sorted(p["name"] for p in manifest["toolkit"]["packages"]) == sorted(TOOLKIT)


def _primary_as_zstd(repodata: Path) -> None:
    """What createrepo_c --general-compress-type=zstd writes for primary (Debian's build of
    createrepo_c lacks zstd): the same XML, zstd-compressed, and repomd.xml naming it with
    its checksum and size (the open-checksum of the XML is unchanged)."""
    import gzip
    import hashlib
    import xml.etree.ElementTree as ET

    ns = "http://linux.duke.edu/metadata/repo"
    ET.register_namespace("", ns)
    ET.register_namespace("rpm", "http://linux.duke.edu/metadata/rpm")
    tree = ET.parse(repodata / "repomd.xml")
    data = next(d for d in tree.getroot().iter(f"{{{ns}}}data") if d.get("type") == "primary")
    location = data.find(f"{{{ns}}}location")
    assert location is not None
    old = repodata.parent / location.get("href", "")
    xml = gzip.decompress(old.read_bytes())
    packed = subprocess.run(["zstd", "-q", "-c"], input=xml, capture_output=True, check=True).stdout
    new = old.with_name(old.name.replace(".xml.gz", ".xml.zst"))
    new.write_bytes(packed)
    old.unlink()
    location.set("href", f"repodata/{new.name}")
    checksum = data.find(f"{{{ns}}}checksum")
    assert checksum is not None and checksum.get("type") == "sha256"
    checksum.text = hashlib.sha256(packed).hexdigest()
    size = data.find(f"{{{ns}}}size")
    if size is not None:
        size.text = str(len(packed))
    tree.write(repodata / "repomd.xml", xml_declaration=True, encoding="UTF-8")


def test_with_source_date_epoch_the_same_inputs_make_the_same_kit_byte_for_byte(
    nvidia_repo: NvidiaRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib
    import time

    server = RepoServer(nvidia_repo.server.folder)
    server.start()
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    kits = []
    try:
        for n in (1, 2):
            out = tmp_path / f"kit{n}.tar"
            made = gw(
                "bundle", "--target", "debian12/amd64", "-o", str(out),
                "--repo-url", server.url + "/stable", "--key-url", server.url + "/gpgkey",
                "--key-fingerprint", nvidia_repo.key.fingerprint, "--toolkit-version", "1.17.8",
                "--no-images", "--no-pyz",
            )  # fmt: skip
            assert made.returncode == 0, made.stdout + made.stderr
            kits.append(out)
            time.sleep(1.1)  # a clock second apart: `created` would differ without it
        monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
        bad = gw(
            "bundle",
            "--target",
            "debian12/amd64",
            "-o",
            str(tmp_path / "bad.tar"),
            "--repo-url",
            server.url + "/stable",
            "--key-url",
            server.url + "/gpgkey",
            "--key-fingerprint",
            nvidia_repo.key.fingerprint,
            "--no-images",
            "--no-pyz",
        )
    finally:
        server.stop()
    assert read_archive(kits[0]).manifest["created"] == "2023-11-14T22:13:20Z"
    digests = {hashlib.sha256(k.read_bytes()).hexdigest() for k in kits}
    assert len(digests) == 1
    assert bad.returncode != 0 and "SOURCE_DATE_EPOCH is 'yesterday'" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr
