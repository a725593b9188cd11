"""The packages step against a real Debian root: real apt and dpkg install, pin, remove and
roll back the four NVIDIA-named stand-in packages from the signed local repository."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time
from pathlib import Path

import pytest
from debroot import (
    CONFIG_TOML,
    TOOLKIT,
    NvidiaRepo,
    build_deb,
    dpkg_set,
    lock_held,
    plan_and_apply,
    plan_only,
    release,
    rollback_latest,
)

from gpuwizard.options import Options

pytestmark = pytest.mark.slow


def _opts(repo: NvidiaRepo, **kw: object) -> Options:
    args: dict[str, object] = {"steps": ("repository", "packages"), "lock_wait": 30, **kw}
    return Options(
        repo_url=repo.repo_url, key_url=repo.key_url, key_fingerprint=repo.key.fingerprint, **args
    )  # type: ignore[arg-type]


def _versions(root: Path) -> dict[str, str]:
    out = {}
    for line in dpkg_set(root).splitlines():
        name, version, status = line.split(" ", 2)
        if status.startswith("ii"):
            out[name] = version
    return out


def test_fresh_host_gets_the_four_packages_pinned_to_the_newest_and_rollback_restores_the_set(
    debroot: Path, nvidia_repo: NvidiaRepo, tmp_path: Path
) -> None:
    pristine = dpkg_set(debroot)
    out = plan_and_apply(debroot, _opts(nvidia_repo), tmp_path / "state")
    assert out.error is None, out.error
    pkg_plan = out.plan.step("packages")
    # planned against the simulation: the index does not exist yet at plan time
    assert pkg_plan.state == "pending"
    assert "resolved after" in pkg_plan.facts["version"]
    # a --root image without systemd: the daemon-reload warning does not apply there
    # (tests/test_systemd_paths.py has a systemd host where it does)
    assert not any("daemon-reload" in w for w in pkg_plan.warnings)

    versions = _versions(debroot)
    assert {n: versions.get(n) for n in TOOLKIT} == {n: "1.20.1-1" for n in TOOLKIT}
    assert (debroot / "usr/bin/nvidia-ctk").exists()
    assert (debroot / "usr/bin/nvidia-container-runtime-hook").exists()
    # live output line by line, and a progress bar fed by APT::Status-Fd
    assert any("Unpacking nvidia-container-toolkit" in line for line in out.logs())
    labels = [p.label for p in out.progress()]
    assert any(lbl.startswith("Installing nvidia-container-toolkit") for lbl in labels)
    fractions = [p.fraction for p in out.progress() if p.fraction is not None]
    assert fractions and max(fractions) == 1.0

    again = plan_only(debroot, _opts(nvidia_repo))
    assert [again.step(s).state for s in ("repository", "packages")] == ["done", "done"]
    assert again.step("packages").actions == []

    assert (debroot / CONFIG_TOML.lstrip("/")).exists()
    assert (debroot / "usr/bin/nvidia-container-toolkit").is_symlink()

    report = rollback_latest(debroot, tmp_path / "state")
    assert dpkg_set(debroot) == pristine
    assert not (debroot / "etc/apt/sources.list.d/nvidia-container-toolkit.list").exists()
    # installed fresh, so purged: no config.toml left, no dpkg state `rc`, no empty folder
    assert "purged" in json.dumps(report)
    assert not (debroot / CONFIG_TOML.lstrip("/")).exists()
    assert not (debroot / "etc/nvidia-container-runtime").exists()
    assert " rc" not in dpkg_set(debroot)
    assert not (debroot / "usr/bin/nvidia-container-toolkit").is_symlink()  # no dangling link


def test_pinned_old_version_warns_and_rollback_of_an_upgrade_puts_the_old_version_back(
    debroot: Path, nvidia_repo: NvidiaRepo, tmp_path: Path
) -> None:
    pristine = dpkg_set(debroot)
    state = tmp_path / "state"
    first = plan_and_apply(debroot, _opts(nvidia_repo, toolkit_version="1.17.8"), state)
    assert first.error is None, first.error
    # 1.17.8 is the floor itself: no CVE warning; the preview names the exact version
    assert not any("CVE" in w for w in first.plan.step("packages").warnings)
    assert _versions(debroot)["nvidia-container-toolkit"] == "1.17.8-1"
    after_first = dpkg_set(debroot)

    upgrade_plan = plan_only(debroot, _opts(nvidia_repo))
    step = upgrade_plan.step("packages")
    assert step.state == "pending" and step.facts["version"] == "1.20.1-1"
    assert (
        "change nvidia-container-toolkit 1.17.8-1 -> 1.20.1-1"
        in step.actions[0].params()["changes"]
    )
    second = plan_and_apply(debroot, _opts(nvidia_repo), state)
    assert second.error is None, second.error
    assert _versions(debroot)["libnvidia-container1"] == "1.20.1-1"

    report = rollback_latest(debroot, state)
    assert "put back" in " ".join(report[0]["undone"])  # type: ignore[arg-type]
    assert dpkg_set(debroot) == after_first
    rollback_latest(debroot, state)
    assert dpkg_set(debroot) == pristine


def test_rollback_says_which_versions_could_not_be_restored_when_the_repository_dropped_them(
    debroot: Path, nvidia_repo: NvidiaRepo, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    first = plan_and_apply(debroot, _opts(nvidia_repo, toolkit_version="1.17.8"), state)
    assert first.error is None, first.error
    moved = _opts(nvidia_repo)
    moved = dataclasses.replace(moved, repo_url=nvidia_repo.server.url + "/onlynew/stable")
    second = plan_and_apply(debroot, moved, state)
    assert second.error is None, second.error
    report = rollback_latest(debroot, state)
    notes = " ".join(report[0]["undone"])  # type: ignore[arg-type]
    assert "could not restore" in notes and "nvidia-container-toolkit 1.17.8-1" in notes
    # nothing half-done: the four stay together at the version that is there
    assert {n: _versions(debroot)[n] for n in TOOLKIT} == {n: "1.20.1-1" for n in TOOLKIT}


def test_version_below_the_security_floor_is_warned_about(
    debroot: Path, nvidia_repo: NvidiaRepo, tmp_path: Path
) -> None:
    from gpuwizard.steps.packages import PackagesStep

    assert PackagesStep._version_warnings("1.17.7-1")
    assert "CVE-2025-23266" in PackagesStep._version_warnings("1.14.3-1")[0]
    assert PackagesStep._version_warnings("1.17.8-1") == []
    # a version the repository does not have is refused at plan time, with the offer
    plan_and_apply(debroot, _opts(nvidia_repo, steps=("repository",)), tmp_path / "s")
    step = plan_only(debroot, _opts(nvidia_repo, toolkit_version="1.14.3")).step("packages")
    assert step.state == "blocked" and "1.14.3-1" in step.reason and "1.20.1-1" in step.reason


def _update_one_list(root: Path, name: str) -> None:
    """`apt-get update` in the root of one list under sources.list.d, the others kept."""
    subprocess.run(
        [
            "chroot",
            str(root),
            "apt-get",
            "update",
            "-q",
            "-o",
            f"Dir::Etc::sourcelist=sources.list.d/{name}",
            "-o",
            "Dir::Etc::sourceparts=-",
            "-o",
            "APT::Get::List-Cleanup=0",
        ],
        check=True,
        capture_output=True,
    )


def _install_legacy_nvidia_docker2(root: Path, repo: NvidiaRepo) -> None:
    """As the 2021 guides left hosts: the per-distro list and nvidia-docker2 from it."""
    (root / "etc/apt/sources.list.d/nvidia-docker.list").write_text(
        f"deb [trusted=yes] {repo.server.url}/nvidia-docker/ubuntu18.04/$(ARCH) /\n"
    )
    _update_one_list(root, "nvidia-docker.list")
    subprocess.run(
        ["chroot", str(root), "apt-get", "install", "-y", "-q", "nvidia-docker2"],
        check=True,
        capture_output=True,
        env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )


def test_legacy_nvidia_docker2_is_removed_not_purged_and_daemon_json_survives_and_returns(
    debroot: Path, nvidia_repo: NvidiaRepo, tmp_path: Path
) -> None:
    _install_legacy_nvidia_docker2(debroot, nvidia_repo)
    daemon_json = debroot / "etc/docker/daemon.json"
    # the user added their own key to the file the package owns
    mine = json.loads(daemon_json.read_text()) | {"log-driver": "journald"}
    daemon_json.write_text(json.dumps(mine, indent=2) + "\n")
    user_bytes = daemon_json.read_bytes()
    before = dpkg_set(debroot)

    out = plan_and_apply(debroot, _opts(nvidia_repo), tmp_path / "state")
    assert out.error is None, out.error
    assert (
        out.plan.step("repository").facts["legacy"][0]["path"]
        == "/etc/apt/sources.list.d/nvidia-docker.list"
    )
    status = {ln.split(" ")[0]: ln.split(" ", 2)[2] for ln in dpkg_set(debroot).splitlines()}
    assert status["nvidia-docker2"].startswith("rc")  # removed, config files kept: not purged
    assert daemon_json.read_bytes() == user_bytes
    assert _versions(debroot)["nvidia-container-toolkit"] == "1.20.1-1"

    rollback_latest(debroot, tmp_path / "state")
    assert dpkg_set(debroot) == before
    assert daemon_json.read_bytes() == user_bytes
    assert (debroot / "etc/apt/sources.list.d/nvidia-docker.list").exists()


def test_held_dpkg_lock_is_waited_for_with_a_countdown_naming_the_holder(
    debroot: Path, nvidia_repo: NvidiaRepo, tmp_path: Path
) -> None:
    plan_and_apply(debroot, _opts(nvidia_repo, steps=("repository",)), tmp_path / "s1")
    lock = debroot / "var/lib/dpkg/lock-frontend"
    with lock_held(lock, 120) as holder:
        seen: list[float] = []

        def release_after_two_ticks(event: object) -> None:
            if "to release" in getattr(event, "label", ""):
                seen.append(time.monotonic())
                if len(seen) == 3:
                    release(holder)  # the holder finishes while we wait

        out = plan_and_apply(
            debroot, _opts(nvidia_repo), tmp_path / "s2", on_event=release_after_two_ticks
        )
    assert out.error is None, out.error
    assert len(seen) >= 3 and seen[2] - seen[0] >= 1.5  # one tick a second
    waits = [p.label for p in out.progress() if "release" in p.label]
    assert len(waits) >= 2
    assert f"pid {holder.pid}" in waits[0] and "flock" in waits[0] and "s left" in waits[0]
    assert _versions(debroot)["nvidia-container-toolkit"] == "1.20.1-1"


def test_dpkg_lock_held_past_the_deadline_fails_naming_the_holder_and_changes_nothing(
    debroot: Path, nvidia_repo: NvidiaRepo, tmp_path: Path
) -> None:
    plan_and_apply(debroot, _opts(nvidia_repo, steps=("repository",)), tmp_path / "s1")
    before = dpkg_set(debroot)
    lock = debroot / "var/lib/dpkg/lock-frontend"
    with lock_held(lock, 60) as holder:
        out = plan_and_apply(debroot, _opts(nvidia_repo, lock_wait=2), tmp_path / "s2")
    assert out.error is not None
    assert f"pid {holder.pid}" in out.error.cause and "flock" in out.error.cause
    assert "unattended-upgrades" in out.error.remedy
    assert dpkg_set(debroot) == before


def test_vendor_built_toolkit_is_refused_with_its_version(
    debroot: Path, nvidia_repo: NvidiaRepo, tmp_path: Path
) -> None:
    deb = build_deb(tmp_path, "nvidia-container-toolkit", "1.11.0-0lambda0.22.04.1")
    (debroot / "tmp/vendor.deb").write_bytes(deb.read_bytes())
    subprocess.run(
        ["chroot", str(debroot), "dpkg", "-i", "/tmp/vendor.deb"], check=True, capture_output=True
    )
    plan = plan_only(debroot, _opts(nvidia_repo))
    for name in ("repository", "packages"):
        step = plan.step(name)
        assert step.state == "blocked"
        assert "1.11.0-0lambda0.22.04.1" in step.reason and "not NVIDIA's build" in step.reason
        assert "Lambda" in step.remedy


def test_a_root_whose_apt_lists_are_empty_is_answered_without_apt_cache(debroot: Path) -> None:
    """An image whose lists were cleaned (`rm -rf /var/lib/apt/lists/*`, as container images
    and the systemd bed are): apt has no index, so no NVIDIA version; apt-config says this is
    apt's lists folder, and `apt-cache madison` (0.1 s over the installed packages alone, per
    plan) is never run."""
    from gpuwizard.actions.packages import newest_from
    from gpuwizard.host.packages import package_manager
    from gpuwizard.host.system import Host

    lists = debroot / "var/lib/apt/lists"
    for p in lists.iterdir():
        if p.is_file():
            p.unlink()
    host = Host(root=debroot)
    pm = package_manager(host)
    assert pm is not None
    assert newest_from(pm, "nvidia-container-toolkit", "http://127.0.0.1:9/stable") is None
    ran = [" ".join(argv) for argv in host.runner.history]  # type: ignore[attr-defined]
    assert not [a for a in ran if "apt-cache" in a], ran
    assert [a for a in ran if "apt-config" in a], ran


def _impostor_repo(root: Path, genuine: list[Path], work: Path) -> None:
    """The same four names and versions, rebuilt with a marker file and another
    Installed-Size (so apt counts them as other builds), in an unsigned file: repository
    inside the root whose origin apt is told to prefer (Pin-Priority 1001): what a stale or
    hostile third-party source offering the toolkit looks like to apt."""
    repo = root / "srv/impostor"
    repo.mkdir(parents=True)
    for deb in genuine:
        tree = work / f"impostor-{deb.stem}"
        subprocess.run(["dpkg-deb", "-R", str(deb), str(tree)], check=True)
        name = deb.name.split("_")[0]
        marker = tree / f"usr/share/doc/{name}/impostor"
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("not from the NVIDIA repository\n")
        control = tree / "DEBIAN/control"
        control.write_text(control.read_text() + "Installed-Size: 4242\n")
        subprocess.run(["dpkg-deb", "-b", str(tree), str(repo / deb.name)], check=True)
    packages = subprocess.run(
        ["apt-ftparchive", "packages", "."], cwd=repo, check=True, capture_output=True, text=True
    ).stdout
    (repo / "Packages").write_text(packages)
    release = subprocess.run(
        ["apt-ftparchive", "-o", "APT::FTPArchive::Release::Origin=impostor", "release", "."],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    (repo / "Release").write_text(release)
    (root / "etc/apt/sources.list.d/impostor.list").write_text(
        "deb [trusted=yes] file:/srv/impostor ./\n"
    )
    (root / "etc/apt/preferences.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/apt/preferences.d/impostor").write_text(
        "Package: *\nPin: release o=impostor\nPin-Priority: 1001\n"
    )
    _update_one_list(root, "impostor.list")


def test_the_packages_come_from_the_checked_repository_even_where_another_source_is_preferred(
    debroot: Path, nvidia_repo: NvidiaRepo, tmp_path: Path
) -> None:
    """Another source offers the same four versions and apt's pinning prefers it: the guide's
    plain `apt-get install` takes that source's builds. gpuwizard's install reads the NVIDIA
    list alone once the simulation has shown nothing else is needed, so the packages come from
    the repository whose key it checked, and apt rebuilds no cache of every source."""
    version = nvidia_repo.versions[-1]
    _impostor_repo(debroot, nvidia_repo.debs[version], tmp_path)
    out = plan_and_apply(debroot, _opts(nvidia_repo), tmp_path / "state")
    assert out.error is None, out.error
    assert {n: _versions(debroot).get(n) for n in TOOLKIT} == {n: version for n in TOOLKIT}
    assert not list((debroot / "usr/share/doc").glob("*/impostor"))
    assert any("from the NVIDIA repository alone" in line for line in out.logs())
    # the same install by hand, as the guide types it, takes the preferred builds: the test
    # above is not passing by accident
    subprocess.run(
        ["chroot", str(debroot), "dpkg", "--purge", *TOOLKIT], check=True, capture_output=True
    )
    subprocess.run(
        ["chroot", str(debroot), "apt-get", "install", "-y", *(f"{n}={version}" for n in TOOLKIT)],
        check=True,
        capture_output=True,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive"},
    )
    assert len(list((debroot / "usr/share/doc").glob("*/impostor"))) == len(TOOLKIT)


def test_a_recommended_package_outside_the_list_makes_apt_read_every_source(
    debroot: Path, nvidia_repo: NvidiaRepo, tmp_path: Path
) -> None:
    """A toolkit build that recommends a package the NVIDIA list does not carry: an install
    from that list alone would leave it out where the guide's install brings it from the
    distribution, so gpuwizard does not take the one-list shortcut there."""
    from gpuwizard.host.packages import AptPackages
    from gpuwizard.host.sources import APT_LIST, KEYRING
    from gpuwizard.host.system import Host

    version = nvidia_repo.versions[-1]
    specs = {n: version for n in TOOLKIT}
    keyring = debroot / KEYRING.lstrip("/")
    keyring.write_bytes(
        subprocess.run(
            ["gpg", "--dearmor"], input=nvidia_repo.key.armored, check=True, capture_output=True
        ).stdout
    )
    (debroot / APT_LIST.lstrip("/")).write_text(
        f"deb [signed-by={KEYRING}] {nvidia_repo.repo_url}/deb/$(ARCH) /\n"
    )
    apt = AptPackages(Host(root=debroot))
    assert apt.update_source(APT_LIST).returncode == 0
    changes, alone = apt.resolve_install(specs)
    assert alone and sorted(c.name for c in changes) == sorted(TOOLKIT)

    # the same list, now carrying a build of the toolkit that recommends `hello`
    www = tmp_path / "www"
    debs = [
        d for d in nvidia_repo.debs[version] if not d.name.startswith("nvidia-container-toolkit_")
    ]
    debs.append(
        build_deb(
            tmp_path,
            "nvidia-container-toolkit",
            version,
            depends=f"nvidia-container-toolkit-base (= {version})",
            extra="Recommends: hello\n",
        )
    )
    from debroot import flat_repo

    flat_repo(www / "deb/amd64", debs, nvidia_repo.key)
    (debroot / "srv/rec").mkdir(parents=True)
    subprocess.run(["cp", "-a", f"{www}/deb", str(debroot / "srv/rec")], check=True)
    (debroot / APT_LIST.lstrip("/")).write_text(
        f"deb [signed-by={KEYRING}] file:/srv/rec/deb/$(ARCH) /\n"
    )
    assert apt.update_source(APT_LIST).returncode == 0
    changes, alone = apt.resolve_install(specs)
    assert not alone
    assert "nvidia-container-toolkit" in {c.name for c in changes}
