"""The repository step against a real Debian root, real apt and gpg, and a signed local
repository shaped like NVIDIA's (served on 127.0.0.1)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import pytest
from debroot import (
    NvidiaRepo,
    RepoServer,
    free_port,
    our_steps,
    plan_and_apply,
    plan_only,
    rollback_latest,
    snapshot,
)

from gpuwizard import events as ev
from gpuwizard import wizard
from gpuwizard.host.system import Host
from gpuwizard.options import Options

pytestmark = pytest.mark.slow

KEYRING = "usr/share/keyrings/nvidia-container-toolkit-keyring.gpg"
LIST = "etc/apt/sources.list.d/nvidia-container-toolkit.list"
WATCHED = ("/etc/apt", "/usr/share/keyrings", "/var/lib/dpkg/status")


def _opts(repo: NvidiaRepo, **kw: object) -> Options:
    return Options(
        repo_url=repo.repo_url,
        key_url=repo.key_url,
        key_fingerprint=repo.key.fingerprint,
        steps=("repository",),
        lock_wait=30,
        **kw,
    )  # type: ignore[arg-type]


def test_repository_adds_checked_keyring_and_list_then_second_run_changes_nothing(
    debroot: Path, nvidia_repo: NvidiaRepo, tmp_path: Path
) -> None:
    out = plan_and_apply(debroot, _opts(nvidia_repo), tmp_path / "state")
    assert out.error is None, out.error
    step = out.plan.step("repository")
    assert step.facts["fingerprint"] == nvidia_repo.key.fingerprint
    # the preview showed the real keyring bytes, and they are what landed
    keyring = (debroot / KEYRING).read_bytes()
    assert keyring[:1] != b"-" and len(keyring) > 200  # binary, dearmored
    assert (debroot / LIST).read_text() == (
        f"deb [signed-by=/{KEYRING}] {nvidia_repo.repo_url}/deb/$(ARCH) /\n"
        f"#deb [signed-by=/{KEYRING}] {nvidia_repo.server.url}/experimental/deb/$(ARCH) /\n"
    )
    madison = subprocess.run(
        ["chroot", str(debroot), "apt-cache", "madison", "nvidia-container-toolkit"],
        capture_output=True,
        text=True,
    ).stdout
    assert "1.20.1-1" in madison and "1.17.8-1" in madison

    again = plan_only(debroot, _opts(nvidia_repo))
    assert again.step("repository").state == "done"
    assert again.step("repository").actions == []

    # offline later: the key cannot be fetched, but the installed one is the expected key
    offline = _opts(nvidia_repo)
    offline = dataclasses.replace(offline, key_url=f"http://127.0.0.1:{free_port()}/gpgkey")
    step = plan_only(debroot, offline).step("repository")
    assert step.state == "done" and "expected fingerprint" in step.warnings[0]


def test_experimental_channel_line_is_enabled_when_asked(
    debroot: Path, nvidia_repo: NvidiaRepo, tmp_path: Path
) -> None:
    out = plan_and_apply(debroot, _opts(nvidia_repo, experimental=True), tmp_path / "s")
    assert out.error is None, out.error
    lines = (debroot / LIST).read_text().splitlines()
    assert lines[1].startswith("deb [signed-by=") and "/experimental/deb/$(ARCH) /" in lines[1]


def test_wrong_fingerprint_writes_nothing_and_names_both_fingerprints(
    debroot: Path, nvidia_repo: NvidiaRepo, tmp_path: Path
) -> None:
    before = snapshot(debroot, WATCHED)
    opts = _opts(nvidia_repo)
    opts = dataclasses.replace(opts, key_url=nvidia_repo.server.url + "/other-gpgkey")
    out = plan_and_apply(debroot, opts, tmp_path / "state")
    step = out.plan.step("repository")
    assert step.state == "failed"
    assert nvidia_repo.other_key.fingerprint in step.reason
    assert nvidia_repo.key.fingerprint in step.reason
    assert "--key-fingerprint" in step.remedy
    assert out.error is not None
    assert snapshot(debroot, WATCHED) == before


def test_unreachable_repository_is_a_clear_error_and_changes_nothing(
    debroot: Path, nvidia_repo: NvidiaRepo, tmp_path: Path
) -> None:
    before = snapshot(debroot, WATCHED)
    closed = f"http://127.0.0.1:{free_port()}"
    opts = _opts(nvidia_repo)
    opts = dataclasses.replace(opts, repo_url=closed + "/stable")
    out = plan_and_apply(debroot, opts, tmp_path / "a")
    step = out.plan.step("repository")
    assert step.state == "failed"
    assert "unreachable" in step.reason and closed in step.reason
    assert "--repo-url" in step.remedy and "--key-url" in step.remedy

    opts = _opts(nvidia_repo)
    opts = dataclasses.replace(opts, key_url=closed + "/gpgkey")
    out = plan_and_apply(debroot, opts, tmp_path / "b")
    step = out.plan.step("repository")
    assert step.state == "failed"
    assert "Cannot download the NVIDIA signing key" in step.reason
    assert "--key-url" in step.remedy
    assert snapshot(debroot, WATCHED) == before


def test_air_gapped_key_from_a_file_url(
    debroot: Path, nvidia_repo: NvidiaRepo, tmp_path: Path
) -> None:
    key = tmp_path / "gpgkey"
    key.write_bytes(nvidia_repo.key.armored)
    opts = _opts(nvidia_repo)
    opts = dataclasses.replace(opts, key_url=f"file://{key}")
    out = plan_and_apply(debroot, opts, tmp_path / "s")
    assert out.error is None, out.error
    assert (debroot / KEYRING).exists()


def test_repository_gone_between_preview_and_apply_rolls_the_step_back(
    debroot: Path, nvidia_repo: NvidiaRepo, tmp_path: Path
) -> None:
    before = snapshot(debroot, ("/etc/apt", "/usr/share/keyrings"))
    server = RepoServer(nvidia_repo.server.folder)
    server.start()
    opts = _opts(nvidia_repo)
    opts = dataclasses.replace(opts, repo_url=server.url + "/stable")
    host = Host(root=debroot)
    the_plan = wizard.plan(host, opts, steps=our_steps())  # type: ignore[arg-type]
    assert the_plan.step("repository").state == "pending"
    server.stop()
    from gpuwizard.errors import WizardError
    from gpuwizard.journal import Journal

    run = Journal(tmp_path / "state").start_run(["test"])
    with pytest.raises(WizardError) as err:
        wizard.apply(host, opts, the_plan, run, steps=our_steps())  # type: ignore[arg-type]
    assert "could not read the NVIDIA repository" in err.value.cause
    assert "--repo-url" in err.value.remedy
    assert snapshot(debroot, ("/etc/apt", "/usr/share/keyrings")) == before


def _legacy_files(root: Path, repo: NvidiaRepo) -> dict[str, bytes]:
    files = {
        "etc/apt/sources.list.d/nvidia-docker.list": (
            f"deb {repo.server.url}/nvidia-docker/ubuntu18.04/$(ARCH) /\n".encode()
        ),
        "etc/apt/sources.list.d/libnvidia-container.list": b"# Unsupported distribution!\n# Check https://nvidia.github.io/nvidia-docker\n",
        "etc/apt/sources.list.d/mixed.sources": b"Types: deb\nURIs: https://nvidia.github.io/nvidia-container-runtime/stable/"
        b"ubuntu18.04/amd64\nSuites: /\n\n"
        b"Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n"
        b"Components: main\n",
    }
    for rel, data in files.items():
        (root / rel).write_bytes(data)
    return files


def _trusted_gpg(root: Path, repo: NvidiaRepo, tmp_path: Path) -> bytes:
    """What `apt-key add` left on old systems: NVIDIA's key in the legacy trusted.gpg, here
    next to another vendor's key that must stay."""
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    keys = tmp_path / "keys.asc"
    keys.write_bytes(repo.key.armored + repo.other_key.armored)
    target = root / "etc/apt/trusted.gpg"
    subprocess.run(
        [
            "gpg",
            "--homedir",
            str(home),
            "--batch",
            "--no-default-keyring",
            "--keyring",
            f"gnupg-ring:{target}",
            "--import",
            str(keys),
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True)
    (root / "etc/apt/trusted.gpg~").unlink(missing_ok=True)
    return target.read_bytes()


def _keys_in(keyring: Path, tmp_path: Path) -> set[str]:
    home = tmp_path / "list-home"
    home.mkdir(mode=0o700, exist_ok=True)
    out = subprocess.run(
        [
            "gpg",
            "--homedir",
            str(home),
            "--batch",
            "--no-default-keyring",
            "--keyring",
            f"gnupg-ring:{keyring}",
            "--with-colons",
            "--list-keys",
        ],
        capture_output=True,
        text=True,
    ).stdout
    return {ln.split(":")[9] for ln in out.splitlines() if ln.startswith("fpr:")}


def test_legacy_sources_and_apt_key_entry_are_removed_and_rollback_restores_them(
    debroot: Path, nvidia_repo: NvidiaRepo, tmp_path: Path
) -> None:
    files = _legacy_files(debroot, nvidia_repo)
    trusted = _trusted_gpg(debroot, nvidia_repo, tmp_path)
    sources_list = (debroot / "etc/apt/sources.list").read_bytes()

    out = plan_and_apply(debroot, _opts(nvidia_repo), tmp_path / "state")
    assert out.error is None, out.error
    legacy = out.plan.step("repository").facts["legacy"]
    assert {x["path"] for x in legacy} == {"/" + p for p in files}
    assert not (debroot / "etc/apt/sources.list.d/nvidia-docker.list").exists()
    assert not (debroot / "etc/apt/sources.list.d/libnvidia-container.list").exists()
    mixed = (debroot / "etc/apt/sources.list.d/mixed.sources").read_text()
    assert "nvidia.github.io" not in mixed and "deb.debian.org" in mixed
    assert _keys_in(debroot / "etc/apt/trusted.gpg", tmp_path) == {
        nvidia_repo.other_key.fingerprint
    }
    assert (debroot / "etc/apt/sources.list").read_bytes() == sources_list

    report = rollback_latest(debroot, tmp_path / "state")
    assert report and report[0]["undone"]
    for rel, data in files.items():
        assert (debroot / rel).read_bytes() == data
    assert (debroot / "etc/apt/trusted.gpg").read_bytes() == trusted
    assert not (debroot / LIST).exists() and not (debroot / KEYRING).exists()


def test_keep_legacy_leaves_old_sources_alone(
    debroot: Path, nvidia_repo: NvidiaRepo, tmp_path: Path
) -> None:
    files = _legacy_files(debroot, nvidia_repo)
    plan = plan_only(debroot, _opts(nvidia_repo, keep_legacy=True))
    step = plan.step("repository")
    assert not any(getattr(a, "path", "") in {"/" + p for p in files} for a in step.actions)
    assert any("--keep-legacy" in w for w in step.warnings)


def test_snap_docker_is_refused_with_the_snap_remedy(
    debroot: Path, nvidia_repo: NvidiaRepo
) -> None:
    (debroot / "snap/bin").mkdir(parents=True)
    (debroot / "snap/bin/docker").write_text("#!/bin/sh\n")
    plan = plan_only(debroot, _opts(nvidia_repo))
    step = plan.step("repository")
    assert step.state == "blocked" and "snap" in step.reason
    assert "nvidia-support" in step.remedy
    (debroot / "snap/bin/docker").unlink()
    (debroot / "root/.docker").mkdir(parents=True)
    (debroot / "root/.docker/config.json").write_text('{"currentContext": "desktop-linux"}')
    step = plan_only(debroot, _opts(nvidia_repo)).step("repository")
    assert step.state == "blocked" and "Docker Desktop" in step.reason


def test_repository_signed_by_another_key_fails_at_update_and_the_step_is_rolled_back(
    debroot: Path, nvidia_repo: NvidiaRepo, tmp_path: Path
) -> None:
    """The key the user vouched for is not the one the repository is signed with (a mirror
    that re-signs, a wrong --key-url): apt says NO_PUBKEY, and nothing stays behind."""
    before = snapshot(debroot, ("/etc/apt", "/usr/share/keyrings"))
    opts = _opts(nvidia_repo)
    opts = dataclasses.replace(opts, key_url=nvidia_repo.server.url + "/other-gpgkey")
    opts = dataclasses.replace(opts, key_fingerprint=nvidia_repo.other_key.fingerprint)
    out = plan_and_apply(debroot, opts, tmp_path / "state")
    assert out.error is not None
    assert "NO_PUBKEY" in out.error.cause or "not signed" in out.error.cause
    assert "--key-fingerprint" in out.error.remedy
    assert snapshot(debroot, ("/etc/apt", "/usr/share/keyrings")) == before


def test_a_mirror_that_wants_a_login_works_through_apt_auth_conf_and_nothing_shows_it(
    debroot: Path, nvidia_repo: NvidiaRepo, tmp_path: Path
) -> None:
    """What --repo-url's refusal of user:password@ tells the user to do: the login in
    /etc/apt/auth.conf.d, the URL without it. The probe's 401 is a warning (gpuwizard sends
    no login; apt does), apt installs from the mirror, and no file gpuwizard wrote, no event
    and no plan holds the password. Without the login, apt's refusal rolls the step back."""
    secret = "s3cr3t-Mirror-Pw"
    server = RepoServer(nvidia_repo.server.folder, login=f"builder:{secret}")
    server.start()
    try:
        key = tmp_path / "gpgkey"  # the key fetched by hand, as the --key-url refusal says
        key.write_bytes(nvidia_repo.key.armored)
        opts = dataclasses.replace(
            _opts(nvidia_repo), repo_url=server.url + "/stable", key_url=f"file://{key}"
        )
        before = snapshot(debroot, WATCHED)
        no_login = plan_and_apply(debroot, opts, tmp_path / "no-login")
        assert no_login.plan.step("repository").state == "pending"
        assert no_login.error is not None
        assert "it wants a login (401 Unauthorized)" in no_login.error.cause
        machine = f"machine http://127.0.0.1:{server.port} login USER password PASSWORD"
        assert machine in no_login.error.remedy
        assert snapshot(debroot, WATCHED) == before

        auth = debroot / "etc/apt/auth.conf.d/nvidia.conf"
        auth.parent.mkdir(parents=True, exist_ok=True)
        # apt: a machine with no protocol matches https only
        auth.write_text(f"machine http://127.0.0.1:{server.port} login builder password {secret}\n")
        auth.chmod(0o600)
        state = tmp_path / "state"
        out = plan_and_apply(debroot, opts, state)
        assert out.error is None, out.error
        step = out.plan.step("repository")
        assert any("HTTP 401" in w and "/etc/apt/auth.conf.d/" in w for w in step.warnings)
        listing = (debroot / LIST).read_text()
        assert listing.startswith(f"deb [signed-by=/{KEYRING}] {server.url}/stable/deb/$(ARCH) /")
        assert "builder" not in listing
        madison = subprocess.run(
            ["chroot", str(debroot), "apt-cache", "madison", "nvidia-container-toolkit"],
            capture_output=True,
            text=True,
        ).stdout
        assert "1.20.1-1" in madison
        shown = json.dumps(out.plan.to_json()) + json.dumps([ev.to_json(e) for e in out.events])
        assert secret not in shown
        written = [p for p in state.rglob("*") if p.is_file()]
        assert written and not [p for p in written if secret.encode() in p.read_bytes()]
    finally:
        server.stop()


def test_a_step_not_selected_never_contacts_the_repository(debroot: Path) -> None:
    """`--step packages` shows the repository step as not selected, judged from the disk: its
    key download (30 s of timeout on a firewalled host) and index probe wait for a run that
    selects it. The same plan with the step selected does ask the server."""
    import http.server
    import threading

    asked: list[str] = []

    class Counting(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the handler's protocol)
            asked.append(self.path)
            self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Counting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        opts = Options(
            repo_url=f"{base}/stable",
            key_url=f"{base}/gpgkey",
            key_fingerprint="0" * 40,
            steps=("packages",),
        )
        plan = plan_only(debroot, opts)
        step = plan.step("repository")
        assert asked == [], asked
        assert step.state == "skipped" and step.reason == "not selected (pending)"
        assert any("only when this step is selected" in w for w in plan.warnings), plan.warnings
        selected = plan_only(debroot, dataclasses.replace(opts, steps=("repository",)))
        assert asked == ["/gpgkey"], asked
        assert selected.step("repository").state == "failed"
    finally:
        server.shutdown()
        server.server_close()
