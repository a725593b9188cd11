"""The RPM side for real: Debian's dnf and zypper install the four stand-in packages from a
signed repository into an empty root (`dnf --installroot`, `zypper --root`), after gpuwizard
wrote the .repo file key by key and imported the checked key with `rpm --root … --import`."""

from __future__ import annotations

import dataclasses
import json
import shutil
import stat
from pathlib import Path

import pytest
from debroot import RepoServer, plan_and_apply, plan_only, rollback_latest
from rpmrepo import LEAP, ROCKY, RpmRepo, rpm_qa, rpm_root

from gpuwizard import events as ev
from gpuwizard.host.packages import DnfPackages
from gpuwizard.host.sources import parse_repo
from gpuwizard.host.system import Host
from gpuwizard.options import Options

pytestmark = pytest.mark.slow

TOOLKIT = (
    "nvidia-container-toolkit",
    "nvidia-container-toolkit-base",
    "libnvidia-container-tools",
    "libnvidia-container1",
)


def _opts(repo: RpmRepo, **kw: object) -> Options:
    args: dict[str, object] = {"steps": ("repository", "packages"), "lock_wait": 30, **kw}
    return Options(
        repo_url=repo.repo_url, key_url=repo.key_url, key_fingerprint=repo.key.fingerprint, **args
    )  # type: ignore[arg-type]


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"needs {tool}")


def test_dnf_installroot_gets_repo_key_and_pinned_packages_and_history_undo_rolls_back(
    rpm_repo: RpmRepo, tmp_path: Path
) -> None:
    _need("dnf")
    root = rpm_root(tmp_path, ROCKY)
    out = plan_and_apply(root, _opts(rpm_repo), tmp_path / "state")
    assert out.error is None, out.error
    repo = parse_repo((root / "etc/yum.repos.d/nvidia-container-toolkit.repo").read_text())
    main = repo["nvidia-container-toolkit"]
    assert main["repo_gpgcheck"] == "1" and main["gpgcheck"] == "0" and main["enabled"] == "1"
    assert main["baseurl"] == f"{rpm_repo.repo_url}/rpm/$basearch"
    assert repo["nvidia-container-toolkit-experimental"]["enabled"] == "0"
    short = rpm_repo.key.fingerprint[-8:].lower()
    installed = rpm_qa(root)
    assert any(p.startswith(f"gpg-pubkey {short}-") for p in installed)
    for name in TOOLKIT:
        assert f"{name} 1.20.1-1" in installed
    assert (root / "usr/bin/nvidia-ctk").exists()

    again = plan_only(root, _opts(rpm_repo))
    assert [again.step(s).state for s in ("repository", "packages")] == ["done", "done"]

    report = rollback_latest(root, tmp_path / "state")
    notes = " ".join(report[0]["undone"])  # type: ignore[arg-type]
    assert "dnf history undo" in notes
    assert rpm_qa(root) == []  # packages gone, key removed (rpm -e gpg-pubkey-…)
    assert not (root / "etc/yum.repos.d/nvidia-container-toolkit.repo").exists()


def test_dnf_rollback_of_an_upgrade_puts_the_pinned_older_version_back(
    rpm_repo: RpmRepo, tmp_path: Path
) -> None:
    _need("dnf")
    root = rpm_root(tmp_path, ROCKY)
    state = tmp_path / "state"
    first = plan_and_apply(root, _opts(rpm_repo, toolkit_version="1.17.8"), state)
    assert first.error is None, first.error
    old = rpm_qa(root)
    assert "nvidia-container-toolkit 1.17.8-1" in old
    second = plan_and_apply(root, _opts(rpm_repo), state)
    assert second.error is None, second.error
    assert "nvidia-container-toolkit 1.20.1-1" in rpm_qa(root)
    rollback_latest(root, state)
    assert rpm_qa(root) == old


def test_dnf_legacy_nvidia_docker2_removal_keeps_the_users_daemon_json_and_rollback_too(
    rpm_repo: RpmRepo, tmp_path: Path
) -> None:
    _need("dnf")
    root = rpm_root(tmp_path, ROCKY)
    state = tmp_path / "state"
    out = plan_and_apply(root, _opts(rpm_repo, steps=("repository",)), state)
    assert out.error is None, out.error
    DnfPackages(Host(root=root)).install({"nvidia-docker2": "2.13.0-1"})
    daemon_json = root / "etc/docker/daemon.json"
    daemon_json.write_text('{"log-driver": "journald"}\n')  # the user's own file now
    before = rpm_qa(root)

    out = plan_and_apply(root, _opts(rpm_repo), state)
    assert out.error is None, out.error
    assert not any(p.startswith("nvidia-docker2 ") for p in rpm_qa(root))
    # rpm moved the edited %config file to .rpmsave; gpuwizard put the user's bytes back
    assert (root / "etc/docker/daemon.json.rpmsave").exists()
    assert daemon_json.read_text() == '{"log-driver": "journald"}\n'

    report = rollback_latest(root, state)
    assert rpm_qa(root) == before
    assert daemon_json.read_text() == '{"log-driver": "journald"}\n'
    assert "kept as it was" in " ".join(report[0]["undone"])  # type: ignore[arg-type]


def test_dnf_wrong_fingerprint_writes_nothing(rpm_repo: RpmRepo, tmp_path: Path) -> None:
    _need("dnf")
    root = rpm_root(tmp_path, ROCKY)
    opts = _opts(rpm_repo)
    opts = dataclasses.replace(opts, key_url=rpm_repo.server.url + "/other-gpgkey")
    out = plan_and_apply(root, opts, tmp_path / "state")
    step = out.plan.step("repository")
    assert step.state == "failed" and rpm_repo.other_key.fingerprint in step.reason
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == [
        "etc",
        "etc/os-release",
    ]


def test_zypper_root_gets_repo_file_and_checked_key_and_the_packages(
    rpm_repo: RpmRepo, tmp_path: Path
) -> None:
    _need("zypper")
    root = rpm_root(tmp_path, LEAP)
    out = plan_and_apply(root, _opts(rpm_repo), tmp_path / "state")
    assert out.error is None, out.error
    repo = parse_repo((root / "etc/zypp/repos.d/nvidia-container-toolkit.repo").read_text())
    assert repo["nvidia-container-toolkit"]["repo_gpgcheck"] == "1"
    assert repo["nvidia-container-toolkit"]["type"] == "rpm-md"
    short = rpm_repo.key.fingerprint[-8:].lower()
    installed = rpm_qa(root)
    assert any(p.startswith(f"gpg-pubkey {short}-") for p in installed)
    for name in TOOLKIT:
        assert f"{name} 1.20.1-1" in installed
    again = plan_only(root, _opts(rpm_repo))
    assert [again.step(s).state for s in ("repository", "packages")] == ["done", "done"]

    rollback_latest(root, tmp_path / "state")
    assert rpm_qa(root) == []
    assert not (root / "etc/zypp/repos.d/nvidia-container-toolkit.repo").exists()


def test_a_root_whose_rpm_database_this_machines_rpm_would_miss_is_refused(
    rpm_repo: RpmRepo, tmp_path: Path
) -> None:
    import subprocess

    _need("dnf")
    dbpath = subprocess.run(
        ["rpm", "--eval", "%{_dbpath}"],
        capture_output=True,  # noqa: S607
        text=True,
    ).stdout.strip()
    if dbpath == "/var/lib/rpm":
        pytest.skip("this machine's rpm looks where RHEL's does")
    root = rpm_root(tmp_path, ROCKY)
    (root / "var/lib/rpm").mkdir(parents=True)  # a real RHEL image keeps its database here
    step = plan_only(root, _opts(rpm_repo)).step("repository")
    assert step.state == "blocked" and "/var/lib/rpm" in step.reason
    assert "chroot" in step.remedy


def test_dnf_keeps_the_login_a_user_put_in_the_repo_file_and_nothing_shows_it(
    rpm_repo: RpmRepo, tmp_path: Path
) -> None:
    """A mirror that wants a login, the dnf way the --repo-url refusal names: username= and
    password= in the [nvidia-container-toolkit] section of gpuwizard's own .repo file. The
    file is written again with gpuwizard's keys and the login kept (mode 0600), the probe's
    401 is a warning, dnf installs through it, and no plan, diff or event shows the password
    (the run's backup of the file is the file, 0600, for rollback)."""
    _need("dnf")
    secret = "s3cr3t-Dnf-Pw"
    server = RepoServer(rpm_repo.server.folder, login=f"builder:{secret}")
    server.start()
    try:
        root = rpm_root(tmp_path, ROCKY)
        repo_file = root / "etc/yum.repos.d/nvidia-container-toolkit.repo"
        repo_file.parent.mkdir(parents=True)
        original = f"[nvidia-container-toolkit]\nusername=builder\npassword={secret}\n"
        repo_file.write_text(original)
        key = tmp_path / "gpgkey"
        key.write_bytes(rpm_repo.key.armored)
        opts = dataclasses.replace(
            _opts(rpm_repo), repo_url=server.url + "/stable", key_url=f"file://{key}"
        )
        # a wrong password: dnf's 401 is named, with where the login goes; rolled back
        repo_file.write_text(original.replace(secret, "not-it"))
        wrong = plan_and_apply(root, opts, tmp_path / "wrong")
        assert wrong.error is not None and "it wants a login (HTTP 401)" in wrong.error.cause
        assert "username=USER and password=PASSWORD" in wrong.error.remedy
        assert repo_file.read_text() == original.replace(secret, "not-it")
        repo_file.write_text(original)

        the_plan = plan_only(root, opts)
        step = the_plan.step("repository")
        assert step.state == "pending", (step.reason, step.remedy)
        assert any("HTTP 401" in w and "username=/password=" in w for w in step.warnings)
        assert "keeping its username/password (mode 0600)" in " ".join(
            a.describe() for a in step.actions
        )
        shown = "\n".join(d.unified() for d in step.diffs) + json.dumps(the_plan.to_json())
        assert secret not in shown and " password=********" in shown

        state = tmp_path / "state"
        out = plan_and_apply(root, opts, state)
        assert out.error is None, out.error
        main = parse_repo(repo_file.read_text())["nvidia-container-toolkit"]
        assert main["username"] == "builder" and main["password"] == secret
        assert main["baseurl"] == f"{server.url}/stable/rpm/$basearch"
        assert stat.S_IMODE(repo_file.stat().st_mode) == 0o600
        assert "nvidia-container-toolkit 1.20.1-1" in rpm_qa(root)
        assert secret not in json.dumps([ev.to_json(ev.masked(e)) for e in out.events])
        holding = [p for p in state.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
        assert holding and all(
            "backups" in p.parts and stat.S_IMODE(p.stat().st_mode) == 0o600 for p in holding
        )
        rollback_latest(root, state)  # the user's own file comes back, login and all
        assert repo_file.read_text() == original
    finally:
        server.stop()


# -- a root's file:// repository, as dnf and zypper on this machine reach it -----------------

KIT = "/var/lib/gpuwizard-bundles/abc/repo/rpm"


def _root_with_repos(tmp_path: Path, baseurl: str) -> tuple[Host, Path]:
    root = tmp_path / "root"
    repos = root / "etc/yum.repos.d"
    repos.mkdir(parents=True)
    (root / KIT.lstrip("/")).mkdir(parents=True)
    (repos / "nvidia-container-toolkit.repo").write_text(
        f"[nvidia-container-toolkit]\nname=NVIDIA\nbaseurl={baseurl}\nenabled=1\n"
    )
    (repos / "other.repo").write_text("[other]\nbaseurl=https://mirror.example/el9\n")
    return Host(root), repos


def test_a_kit_under_the_root_is_read_from_a_copy_with_its_url_rebased(tmp_path: Path) -> None:
    """The root's .repo names the kit as the booted system will see it; the copy the tools
    read for one command names it as this machine reaches it, $basearch left for dnf; the
    other .repo files come along as they are, and what is not a plain file is left out (a
    FIFO would block the copy forever)."""
    import os

    from gpuwizard.host.packages import repos_as_seen_here

    host, repos = _root_with_repos(tmp_path, f"file://{KIT}/$basearch")
    os.mkfifo(repos / "stuck.repo")
    (repos / "folder.repo").mkdir()
    with repos_as_seen_here(host, "/etc/yum.repos.d/nvidia-container-toolkit.repo") as here:
        assert here is not None
        copied = sorted(p.name for p in here.iterdir())
        ours = parse_repo((here / "nvidia-container-toolkit.repo").read_text())
        other = (here / "other.repo").read_text()
    assert copied == ["nvidia-container-toolkit.repo", "other.repo"]
    assert ours["nvidia-container-toolkit"]["baseurl"] == f"file://{host.root}{KIT}/$basearch"
    assert other == (repos / "other.repo").read_text()
    assert not here.exists()  # one command's copy
    # the root's own file still names the target's path
    assert (
        f"baseurl=file://{KIT}/$basearch" in (repos / "nvidia-container-toolkit.repo").read_text()
    )


@pytest.mark.parametrize(
    "baseurl", ["file:///srv/not-in-the-root/$basearch", "https://nvidia.github.io/x/rpm"]
)
def test_anything_else_is_left_as_it_is(tmp_path: Path, baseurl: str) -> None:
    from gpuwizard.host.packages import repos_as_seen_here

    host, _ = _root_with_repos(tmp_path, baseurl)
    with repos_as_seen_here(host, "/etc/yum.repos.d/nvidia-container-toolkit.repo") as here:
        assert here is None
    assert (
        "--setopt=reposdir=" + str(host.root) + "/etc/yum.repos.d" in DnfPackages(host).root_args()
    )
