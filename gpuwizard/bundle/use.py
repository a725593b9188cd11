"""`apply --bundle kit.tar` (and `plan`/`status --bundle`): verify the archive, unpack it into
a private folder, and hand the same steps a local repository and the bundle's images.

What changes for the steps is only their options: --repo-url and --key-url point at the
unpacked copy (file://), the fingerprint the host expects stays the one it trusts (NVIDIA's,
or the one given with --key-fingerprint: never the bundle's own say-so), the toolkit version
is pinned to the bundle's, and the gpu-test step loads the bundle's images instead of pulling.
So the preview, the journal and the rollback are those of an online run.
"""

from __future__ import annotations

import atexit
import os
import shutil
import stat
import tempfile
from dataclasses import replace
from pathlib import Path

from gpuwizard.bundle.archive import KEY_FILE, REPO_DIR, Verified, read_archive, refuse
from gpuwizard.errors import WizardError
from gpuwizard.host.keys import checked_key, normalize_fingerprint
from gpuwizard.host.packages import package_manager
from gpuwizard.host.system import Host
from gpuwizard.options import NVIDIA_KEY_URL, NVIDIA_REPO_URL, Options

# Under the root (apt in the root reads it), beside the journal rather than in it: the journal
# folder is 0700, and apt reads a file:// source as its sandbox user `_apt`, which must be able
# to reach the files. So: root's, writable by root alone, readable (public packages and images).
BUNDLES = "/var/lib/gpuwizard-bundles"
COMPLETE = ".complete"


def bundle_dir(sha256: str) -> str:
    """The system path (inside the root) of an unpacked bundle."""
    return f"{BUNDLES}/{sha256}"


def _check_owned(path: Path, what: str) -> None:
    """A folder gpuwizard trusts: a real folder (no symlink), ours (root's), writable by
    nobody else."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise WizardError(
            f"{path} ({what}) is a symbolic link or not a folder",
            "Nothing was changed. Remove it (it is not gpuwizard's), then apply the bundle again.",
        )
    if st.st_uid != os.geteuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise WizardError(
            f"{path} ({what}) belongs to uid {st.st_uid} or others can write to it "
            f"(mode {stat.S_IMODE(st.st_mode):o})",
            f"Nothing was changed. Make it root's and writable by root alone (chown root: "
            f"{path}; chmod 755 {path}), or remove it, then apply the bundle again.",
        )


def _owned_folder(path: Path, what: str) -> None:
    if not os.path.lexists(path):
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)  # an empty root: /var/lib
        path.mkdir(mode=0o755)
        os.chmod(path, 0o755)  # whatever the umask
    _check_owned(path, what)


def unpack(host: Host, verified: Verified) -> Path:
    """Unpack a verified archive into /var/lib/gpuwizard-bundles/<sha256> under the root (once
    per archive: a complete folder of the same archive is used again). Every member is
    checked again as it is written."""
    archive = verified.archive
    bundles = host.lpath(BUNDLES)  # lstat sees a symlink put there
    _owned_folder(bundles, "the unpacked bundles")
    final = bundles / verified.sha256
    if os.path.lexists(final):
        _check_owned(final, "an unpacked bundle")
        marker = final / COMPLETE
        if (
            marker.is_file()
            and not marker.is_symlink()
            and marker.read_text().strip() == verified.sha256
        ):
            return final
        shutil.rmtree(final)
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=bundles))
    try:
        again = read_archive(archive, dest=staging)
        if again.sha256 != verified.sha256:
            raise refuse("it changed while it was being read", archive)
        (staging / COMPLETE).write_text(verified.sha256 + "\n")
        os.chmod(staging, 0o755)  # mkdtemp made it 0700: apt's `_apt` must read it
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def _key_copy(verified: Verified) -> Path:
    """The bundle's key in a private temporary file (removed when the process ends): checked
    before anything is unpacked, and what plan and status read."""
    folder = Path(tempfile.mkdtemp(prefix="gpuwizard-bundle-key-"))
    atexit.register(shutil.rmtree, folder, True)
    key = folder / "gpgkey"
    key.write_bytes(verified.kept[KEY_FILE])
    return key


def check_fits(host: Host, verified: Verified, options: Options) -> list[str]:
    """Refuse a bundle this host must not use; the notes for one that fits."""
    archive = verified.archive
    want = normalize_fingerprint(options.key_fingerprint)
    if verified.fingerprint != want:
        raise refuse(
            f"its repository key is {verified.fingerprint}, not the key this host trusts ({want})",
            archive,
            "Make the bundle again from NVIDIA's repository; or, if it was made from a mirror "
            f"that re-signs with its own key and you trust that key, pass --key-fingerprint "
            f"{verified.fingerprint}.",
        )
    if options.repo_url != NVIDIA_REPO_URL or options.key_url != NVIDIA_KEY_URL:
        raise WizardError(
            "--bundle brings its own repository and key: --repo-url and --key-url do not go "
            "with it",
            "Leave --repo-url and --key-url out (or leave --bundle out to use a mirror).",
        )
    if options.experimental:
        raise WizardError(
            "--experimental does not go with --bundle: a bundle carries one channel",
            "Leave --experimental out; to carry the experimental channel, make the bundle with "
            "--repo-url …/experimental.",
        )
    if options.toolkit_version:
        full = options.toolkit_version
        full = full if "-" in full else f"{full}-1"
        if full != verified.version:
            raise WizardError(
                f"The bundle carries nvidia-container-toolkit {verified.version}, not {full}",
                "Leave --toolkit-version out (the bundle's version is used), or make a bundle "
                f"with --toolkit-version {options.toolkit_version}.",
            )
    facts = host.facts
    target = verified.manifest["target"]
    family = target.get("family")
    managers = ("apt",) if family == "apt" else ("dnf", "yum", "zypper")
    pm = package_manager(host)  # as the steps find it (dnf on this machine for an rpm root)
    if pm is None or pm.name not in managers:
        raise refuse(
            f"it is for {target.get('name')} ({'apt' if family == 'apt' else 'dnf/zypper'}), "
            f"and this host uses {pm.name if pm else 'no package manager gpuwizard knows'}",
            archive,
            "Make a bundle for this host's distribution (gpuwizard bundle --target …).",
        )
    here_arch = facts.arch if family == "apt" else facts.machine
    if here_arch != verified.arch:
        raise refuse(
            f"it holds {verified.arch} packages and this host is {here_arch}",
            archive,
            f"Make a bundle with --target {target.get('distro')}{target.get('version')}/"
            f"{here_arch}.",
        )
    notes = []
    here = f"{facts.distro_id}{facts.distro_version}"
    if here != f"{target.get('distro')}{target.get('version')}":
        notes.append(
            f"the bundle was made for {target.get('name')}, this host is {facts.pretty_name}: "
            "NVIDIA publishes the same packages for every release of the family"
        )
    return notes


def bundle_options(
    host: Host, archive: Path, options: Options, unpack_now: bool
) -> tuple[Options, Verified, list[str]]:
    """The options that serve the bundle to the steps. `unpack_now` (apply): unpacked into the
    private folder; otherwise (plan, status) only verified, nothing written but a temporary
    copy of the key."""
    # verified first, all of it, and its key checked as the repository step checks it:
    # nothing is written for a refused archive
    verified = read_archive(archive, keep=(KEY_FILE,))
    notes = check_fits(host, verified, options)
    key_path = _key_copy(verified)
    try:
        checked_key(host, f"file://{key_path}", options.key_fingerprint)
    except WizardError as exc:
        raise refuse(f"its {KEY_FILE}: {exc.cause}", archive, exc.remedy) from exc
    if unpack_now:
        folder = unpack(host, verified)
        key_path = folder / KEY_FILE
        notes.append(
            f"bundle verified and unpacked to {folder} (it stays after the run and its "
            f"rollback: `rm -rf {folder}` when the host no longer needs it)"
        )
    else:
        folder = host.path(bundle_dir(verified.sha256))
        notes.append("bundle verified (every member matches the manifest); nothing unpacked")
    images = verified.images
    smoke = next((i for i in images if i.get("role") == "smoke"), None)
    cuda = next((i for i in images if i.get("role") == "cuda"), None)
    changes: dict[str, object] = {
        # named as the target system sees it, so a --root image finds it once it boots; dnf
        # and zypper, which open file:// URLs on the machine they run on, are told where it is
        # here (host/packages.root_file_url); apt runs inside the root
        "repo_url": f"file://{bundle_dir(verified.sha256)}/{REPO_DIR}",
        "key_url": f"file://{key_path}",
        "toolkit_version": verified.version,
        "bundle": str(folder),
        "bundle_images": [
            {"name": i["name"], "file": i["file"], "id": i.get("id", "")} for i in images
        ],
    }
    if smoke is not None and not options.test_image:
        changes["test_image"] = smoke["name"]
    elif smoke is None:
        notes.append(
            "the bundle carries no test image: the GPU test needs "
            f"{options.test_image or 'ubuntu:24.04'} in the engine already (--test-image names "
            "a local one), since nothing can be pulled here"
        )
    if cuda is not None and not options.cuda_image:
        changes["cuda_image"] = cuda["name"]
    elif cuda is None and not options.cuda_image and not options.skip_cuda_test:
        changes["skip_cuda_test"] = True
        notes.append(
            "the bundle carries no CUDA image, so only the smoke test runs "
            "(gpuwizard bundle --cuda-image TAG adds one)"
        )
    return replace(options, **changes), verified, notes  # type: ignore[arg-type]
