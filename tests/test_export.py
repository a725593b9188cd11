"""`gpuwizard plan --export sh|cloud-init`: the artefact, run for real in a fresh Debian root.

The exported script runs under the root's own /bin/sh (dash) in a chroot, against the signed
repository on 127.0.0.1, and must leave the root as `gpuwizard apply` leaves a sibling root
from the same base: the same source list bytes, the same keyring, the same packages, a
daemon.json with the same meaning (the user's keys kept). A second run changes nothing; a key
with another fingerprint is refused before anything is trusted.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
from debroot import TOOLKIT, NvidiaRepo, RepoServer, debian_root, dpkg_set, snapshot

pytestmark = pytest.mark.slow

LIST = "etc/apt/sources.list.d/nvidia-container-toolkit.list"
KEYRING = "usr/share/keyrings/nvidia-container-toolkit-keyring.gpg"
DAEMON_JSON = "etc/docker/daemon.json"
USER_DAEMON_JSON = {
    "log-driver": "json-file",
    "log-opts": {"max-size": "10m", "max-file": "3"},
    "registry-mirrors": ["https://mirror.example.invalid"],
    "runtimes": {"crun": {"path": "/usr/bin/crun"}},
}
STEPS = [
    "--step",
    "repository",
    "--step",
    "packages",
    "--step",
    "daemon-config",
    "--step",
    "restart",
]
WATCHED = ("/etc/apt", "/usr/share/keyrings", "/etc/docker", "/var/lib/dpkg/status")


@pytest.fixture
def two_roots(debroot_tools_base: Path, tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """Two fresh sibling roots (gpg and python3 in them, as on a cloud image)."""
    first, second = tmp_path / "a", tmp_path / "b"
    with debian_root(debroot_tools_base, first) as a, debian_root(debroot_tools_base, second) as b:
        yield a, b


@pytest.fixture
def tools_root(debroot_tools_base: Path, tmp_path: Path) -> Iterator[Path]:
    with debian_root(debroot_tools_base, tmp_path) as root:
        yield root


def _cli(cmd: list[str], args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=300)  # noqa: S603


def _repo_args(repo: NvidiaRepo, key_url: str = "") -> list[str]:
    return [
        "--repo-url",
        repo.repo_url,
        "--key-url",
        key_url or repo.key_url,
        "--key-fingerprint",
        repo.key.fingerprint,
    ]


def _prepare(root: Path, repo: NvidiaRepo) -> None:
    """What a real host has before: a user's daemon.json, an old nvidia-docker source."""
    (root / "etc/docker").mkdir(parents=True, exist_ok=True)
    (root / DAEMON_JSON).write_text(json.dumps(USER_DAEMON_JSON, indent=2) + "\n")
    (root / "etc/apt/sources.list.d/nvidia-docker.list").write_text(
        f"deb {repo.server.url}/nvidia-docker/ubuntu18.04/$(ARCH) /\n"
    )


def _run_script(
    root: Path, text: str, name: str = "gpu-setup.sh"
) -> subprocess.CompletedProcess[str]:
    (root / "root" / name).write_text(text)
    return subprocess.run(  # noqa: S603
        ["chroot", str(root), "/bin/sh", f"/root/{name}"],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"},
    )


def _fingerprints(keyring: Path) -> list[str]:
    out = subprocess.run(  # noqa: S603
        ["gpg", "--batch", "--with-colons", "--show-keys", str(keyring)],  # noqa: S607
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:")]


def _toolkit(root: Path) -> list[str]:
    return sorted(line for line in dpkg_set(root).splitlines() if line.split()[0] in TOOLKIT)


def test_exported_sh_reaches_the_state_apply_reaches_and_a_second_run_changes_nothing(
    two_roots: tuple[Path, Path], nvidia_repo: NvidiaRepo, gpuwizard_cmd: list[str]
) -> None:
    applied, scripted = two_roots
    for root in two_roots:
        _prepare(root, nvidia_repo)
    # the opt-in daemon.json keys too: the script's merge must mean what gpuwizard's means
    repo = [*_repo_args(nvidia_repo), "--set-default-runtime", "--enable-cdi"]

    out = scripted / "gpu-setup.sh.out"
    export = _cli(
        gpuwizard_cmd,
        ["plan", "--root", str(scripted), *STEPS, *repo, "--export", "sh", "-o", str(out)],
    )
    assert export.returncode == 0, export.stdout + export.stderr
    text = out.read_text()
    assert text.startswith("#!/bin/sh\n") and "set -eu" in text
    assert "| sh" not in text and "|sh" not in text  # never a download piped into a shell
    assert subprocess.run(["sh", "-n", str(out)]).returncode == 0  # noqa: S603 S607

    res = _cli(gpuwizard_cmd, ["apply", "--root", str(applied), *STEPS, *repo, "--yes"])
    assert res.returncode == 0, res.stdout + res.stderr

    first = _run_script(scripted, text)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "  changed: " in first.stdout

    # the same state as apply
    assert (scripted / LIST).read_bytes() == (applied / LIST).read_bytes()
    assert (
        _fingerprints(scripted / KEYRING)
        == _fingerprints(applied / KEYRING)
        == [nvidia_repo.key.fingerprint]
    )
    assert (scripted / KEYRING).read_bytes() == (applied / KEYRING).read_bytes()
    assert _toolkit(scripted) == _toolkit(applied)
    assert all(" 1.20.1-1 ii" in line for line in _toolkit(scripted)), _toolkit(scripted)
    assert dpkg_set(scripted) == dpkg_set(applied)
    ours = json.loads((scripted / DAEMON_JSON).read_text())
    theirs = json.loads((applied / DAEMON_JSON).read_text())
    assert ours == theirs
    for key, value in USER_DAEMON_JSON.items():
        if key != "runtimes":
            assert ours[key] == value
    assert ours["runtimes"]["crun"] == {"path": "/usr/bin/crun"}
    assert ours["runtimes"]["nvidia"]["path"] == "nvidia-container-runtime"
    assert ours["default-runtime"] == "nvidia" and ours["features"] == {"cdi": True}
    for root in two_roots:
        assert not (root / "etc/apt/sources.list.d/nvidia-docker.list").exists()
    backups = list((scripted / "var/backups/gpuwizard-export").rglob("daemon.json"))
    assert [json.loads(b.read_text()) for b in backups] == [USER_DAEMON_JSON]

    # a second run changes nothing, and says so
    before = snapshot(scripted, WATCHED)
    second = _run_script(scripted, text)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "  changed: " not in second.stdout, second.stdout
    assert "nothing changed: every block was already in place" in second.stdout
    assert snapshot(scripted, WATCHED) == before

    # exported again from the configured root: every step done, and the script says so
    again = _cli(gpuwizard_cmd, ["plan", "--root", str(scripted), *STEPS, *repo, "--export", "sh"])
    assert again.returncode == 0, again.stderr
    for step in ("repository", "packages", "daemon-config"):
        assert f"({step}): done in the plan" in again.stdout
    assert again.stdout.count("already done on") == 3


def test_a_key_with_another_fingerprint_is_refused_before_anything_is_trusted(
    tools_root: Path, nvidia_repo: NvidiaRepo, gpuwizard_cmd: list[str], tmp_path: Path
) -> None:
    """The plan checked the key; the mirror then serves another one (tampered): the script
    stops at the fingerprint check and writes nothing."""
    www = tmp_path / "keyserver"
    www.mkdir()
    (www / "gpgkey").write_bytes(nvidia_repo.key.armored)
    server = RepoServer(www)
    server.start()
    try:
        repo = _repo_args(nvidia_repo, key_url=server.url + "/gpgkey")
        res = _cli(
            gpuwizard_cmd, ["plan", "--root", str(tools_root), *STEPS, *repo, "--export", "sh"]
        )
        assert res.returncode == 0, res.stderr
        (www / "gpgkey").write_bytes(nvidia_repo.other_key.armored)
        before = snapshot(tools_root, WATCHED)
        run = _run_script(tools_root, res.stdout)
    finally:
        server.stop()
    assert run.returncode == 1, run.stdout + run.stderr
    assert nvidia_repo.other_key.fingerprint in run.stderr
    assert f"but {nvidia_repo.key.fingerprint} was expected" in run.stderr
    assert "nothing was trusted or written" in run.stderr
    assert "Traceback" not in run.stderr
    assert snapshot(tools_root, WATCHED) == before
    assert not (tools_root / KEYRING).exists()
    assert not (tools_root / LIST).exists()


def test_a_key_file_with_other_keys_writes_only_the_checked_one(
    tools_root: Path, nvidia_repo: NvidiaRepo, gpuwizard_cmd: list[str], tmp_path: Path
) -> None:
    www = tmp_path / "keyserver"
    www.mkdir()
    (www / "gpgkey").write_bytes(nvidia_repo.other_key.armored + nvidia_repo.key.armored)
    server = RepoServer(www)
    server.start()
    try:
        repo = _repo_args(nvidia_repo, key_url=server.url + "/gpgkey")
        args = ["plan", "--root", str(tools_root), "--step", "repository", *repo]
        res = _cli(gpuwizard_cmd, [*args, "--export", "sh"])
        assert res.returncode == 0, res.stderr
        run = _run_script(tools_root, res.stdout)
    finally:
        server.stop()
    assert run.returncode == 0, run.stdout + run.stderr
    assert "the key file holds 2 keys" in run.stdout
    assert _fingerprints(tools_root / KEYRING) == [nvidia_repo.key.fingerprint]
    assert "refreshed the package index" in run.stdout


def test_cloud_init_writes_the_same_script_and_runs_it(
    tools_root: Path, nvidia_repo: NvidiaRepo, gpuwizard_cmd: list[str]
) -> None:
    yaml = pytest.importorskip("yaml")
    _prepare(tools_root, nvidia_repo)
    repo = [*_repo_args(nvidia_repo), "--toolkit-version", "1.17.8"]
    args = ["plan", "--root", str(tools_root), *STEPS, *repo]
    cloud = _cli(gpuwizard_cmd, [*args, "--export", "cloud-init"])
    assert cloud.returncode == 0, cloud.stderr
    assert cloud.stdout.startswith("#cloud-config\n")
    data = yaml.safe_load(cloud.stdout)
    assert set(data) == {"write_files", "runcmd"}
    (entry,) = data["write_files"]
    assert entry["permissions"] == "0700" and entry["owner"] == "root:root"
    assert data["runcmd"] == [["sh", entry["path"]]]
    plain = _cli(gpuwizard_cmd, [*args, "--export", "sh"])
    assert entry["content"] == plain.stdout  # the sh generator's script, unchanged
    assert "VERSION=1.17.8-1" in entry["content"]

    target = tools_root / entry["path"].lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(entry["content"])  # what cloud-init's write_files does
    run = subprocess.run(  # noqa: S603 (and runcmd's command, as cloud-init runs it)
        ["chroot", str(tools_root), *data["runcmd"][0]],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "  changed: installed" in run.stdout  # a second run: the sh test's job
    assert all(" 1.17.8-1 ii" in line for line in _toolkit(tools_root)), _toolkit(tools_root)
    assert len(_toolkit(tools_root)) == 4
    doc = json.loads((tools_root / DAEMON_JSON).read_text())
    assert doc["log-opts"] == USER_DAEMON_JSON["log-opts"] and "nvidia" in doc["runtimes"]


def test_a_foreign_nvidia_runtime_is_refused_and_daemon_json_left_untouched(
    tools_root: Path, gpuwizard_cmd: list[str]
) -> None:
    """The merge runs against what that host has: another program's `nvidia` runtime there is
    not replaced (unless --replace-runtime was exported), and nothing is written."""
    res = _cli(
        gpuwizard_cmd,
        ["plan", "--root", str(tools_root), "--step", "daemon-config", "--export", "sh"],
    )
    assert res.returncode == 0, res.stderr
    theirs = b'{"runtimes": {"nvidia": {"path": "/opt/other/runtime"}}, "debug": true}\n'
    (tools_root / "etc/docker").mkdir(parents=True, exist_ok=True)
    (tools_root / DAEMON_JSON).write_bytes(theirs)
    run = _run_script(tools_root, res.stdout)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "/opt/other/runtime" in run.stderr and "--replace-runtime" in run.stderr
    assert (tools_root / DAEMON_JSON).read_bytes() == theirs
    (tools_root / DAEMON_JSON).write_bytes(b'{"debug": true,}\n')
    bad = _run_script(tools_root, res.stdout)
    assert bad.returncode == 1 and "is not valid JSON" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_export_of_a_blocked_plan_names_the_cause_and_the_way_out(
    sandbox: Path, gpuwizard_cmd: list[str]
) -> None:
    res = _cli(gpuwizard_cmd, ["plan", "--root", str(sandbox), "--export", "sh"])
    assert res.returncode == 1
    assert "Nothing exported: the plan is blocked at driver" in res.stderr
    assert "--step" in res.stderr and "Traceback" not in res.stderr
    assert res.stdout == ""
    bad = _cli(gpuwizard_cmd, ["plan", "--root", str(sandbox), "--export", "zip"])
    assert bad.returncode == 2 and "invalid choice: 'zip'" in bad.stderr
    assert "'sh'" in bad.stderr and "Traceback" not in bad.stderr
    lonely = _cli(gpuwizard_cmd, ["plan", "--root", str(sandbox), "-o", "x.sh"])
    assert lonely.returncode == 1 and "--export" in lonely.stderr
    nowhere = _cli(
        gpuwizard_cmd,
        [
            "plan",
            "--root",
            str(sandbox),
            "--step",
            "daemon-config",
            "--export",
            "sh",
            "-o",
            "/nonexistent/x.sh",
        ],
    )
    assert nowhere.returncode == 1 and "does not exist" in nowhere.stderr


def test_the_export_carries_no_credentials(sandbox: Path) -> None:
    from gpuwizard import wizard
    from gpuwizard.export import export_plan
    from gpuwizard.host.system import Host
    from gpuwizard.options import Options

    options = Options(
        repo_url="https://builder:s3cret@mirror.example.invalid/nvidia/stable",
        key_url="https://builder:s3cret@mirror.example.invalid/nvidia/gpgkey",
        steps=("daemon-config",),
    )
    host = Host(root=sandbox)
    text = export_plan(wizard.plan(host, options), host, options, "sh")
    assert "s3cret" not in text and "builder" not in text
    assert "REPO_URL=https://mirror.example.invalid/nvidia/stable" in text
    assert "user name/password" in text


def test_sh_and_ansible_headers_sum_the_steps_up_by_one_function(sandbox: Path) -> None:
    """One summary of the plan's steps (recipe.summary_lines) in both headers: the same step
    lines, each format's own wrapping for the notes and what it leaves out."""
    from gpuwizard import wizard
    from gpuwizard.export import ansible, recipe, sh
    from gpuwizard.host.system import Host
    from gpuwizard.options import Options

    options = Options(
        repo_url="https://builder:s3cret@mirror.example.invalid/nvidia/stable",
        steps=("daemon-config",),
    )
    host = Host(root=sandbox)
    r = recipe.build(wizard.plan(host, options), host, options)
    r.unsupported = ["podman: its CDI hook (the podman step) " + "and more " * 12]
    assert r.notes, "the left-out login is a note"
    summaries: dict[str, list[str]] = {}
    formats: list[tuple[str, Any, str]] = [("sh", sh, "script"), ("ansible", ansible, "playbook")]
    for fmt, module, artefact in formats:
        text = module.render(r)
        lines = recipe.summary_lines(r, artefact, module._comment)
        first = text.splitlines().index(lines[0])
        assert text.splitlines()[first : first + len(lines)] == lines, fmt
        after = text.splitlines()[first + len(lines)]  # the header ends with the summary
        assert after == "" if fmt == "sh" else after.startswith("- name: "), after
        assert f"# Not in this {artefact} (run gpuwizard on that host for it): podman:" in text
        summaries[fmt] = [ln for ln in lines if ln.startswith("#   ")]
    assert summaries["sh"] == summaries["ansible"]
    assert [ln.split()[1] for ln in summaries["sh"]] == [b.step for b in r.blocks]


def test_sh_export_is_posix_shell_for_every_family(tools_root: Path) -> None:
    """dnf and zypper hosts get their own commands; dash parses each script, YAML each
    playbook. (Only the apt family runs for real here: there is no dnf or zypper root.)"""
    from gpuwizard import wizard
    from gpuwizard.export import ansible
    from gpuwizard.export.recipe import build
    from gpuwizard.export.sh import render
    from gpuwizard.host.system import Host
    from gpuwizard.options import Options

    options = Options(steps=("daemon-config",))
    host = Host(root=tools_root)
    for family, words in (
        ("apt", ("apt-get install", "dpkg-query")),
        ("dnf", ("dnf -y --allowerasing install", "rpm --import", "nvidia-container-toolkit.repo")),
        ("zypper", ("zypper --non-interactive install", "/etc/zypp/repos.d/")),
    ):
        recipe = build(wizard.plan(host, options), host, options)
        recipe.family = family
        from gpuwizard.export import recipe as model

        model._repository(recipe, Options())
        for b in recipe.blocks:
            if b.step in ("repository", "packages"):
                b.exported = True
        text = render(recipe)
        playbook = ansible.render(recipe)
        yaml = pytest.importorskip("yaml")
        loader = type("Loader", (yaml.SafeLoader,), {})
        loader.add_constructor("!unsafe", lambda _loader, node: node.value)
        (play,) = yaml.load(playbook, Loader=loader)  # noqa: S506 (a SafeLoader)
        assert play["hosts"] == "all" and play["tasks"] and play["handlers"]
        path = tools_root / f"root/{family}.sh"
        path.write_text(text)
        assert (
            subprocess.run(
                ["chroot", str(tools_root), "/bin/sh", "-n", f"/root/{family}.sh"]
            ).returncode
            == 0
        )  # noqa: S603 S607
        for word in words:
            assert word in text, (family, word)
    assert shutil.which("sh")


# -- the Ansible playbook ---------------------------------------------------------------------


@contextlib.contextmanager
def ansible_target(root: Path, where: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """An inventory whose one host is the chroot: ansible-core's local connection with an
    interpreter that runs the modules' python inside the root (ansible-core has no chroot
    connection; community.general's is not builtin). The remote temp folder is bind-mounted
    at the same path inside the root, so a file Ansible puts there is where the module looks."""
    tmp = Path(f"/tmp/gpuwizard-ansible-{os.getpid()}-{where.name}")
    tmp.mkdir(mode=0o700)
    inside = root / tmp.relative_to("/")
    inside.mkdir(parents=True)
    subprocess.run(["mount", "--bind", str(tmp), str(inside)], check=True)  # noqa: S603 S607
    python = where / "python-in-root"
    python.write_text(f'#!/bin/sh\nexec chroot {root} /usr/bin/python3 "$@"\n')
    python.chmod(0o755)
    inventory = where / "hosts.ini"
    inventory.write_text(
        f"target ansible_connection=local ansible_python_interpreter={python} "
        f"ansible_remote_tmp={tmp}\n"
    )
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(where),
        "ANSIBLE_LOCAL_TEMP": str(where / "local-tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_PIPELINING": "1",
        "ANSIBLE_HOST_KEY_CHECKING": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_INVENTORY": str(inventory),
        "LANG": "C.UTF-8",
    }
    try:
        yield inventory, env
    finally:
        subprocess.run(["umount", str(inside)], check=False)  # noqa: S603 S607
        shutil.rmtree(tmp, ignore_errors=True)


def _playbook(playbook: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    binary = Path(sys.executable).parent / "ansible-playbook"
    return subprocess.run(  # noqa: S603
        [str(binary), str(playbook), *args], capture_output=True, text=True, timeout=300, env=env
    )


def _recap(out: str) -> dict[str, int]:
    line = next(x for x in out.splitlines() if x.startswith("target") and "ok=" in x)
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


def test_ansible_playbook_converges_like_apply_and_a_second_run_is_changed_0(
    tools_root: Path, nvidia_repo: NvidiaRepo, gpuwizard_cmd: list[str], tmp_path: Path
) -> None:
    if not (Path(sys.executable).parent / "ansible-playbook").exists():
        pytest.skip("ansible-core is not installed (pip install -e '.[test]')")
    _prepare(tools_root, nvidia_repo)
    # apt's module opens python-apt's cache on every call: without Debian's own 49 MB index
    # (nothing here installs from it) that costs a tenth of the time on this small machine
    for index in (tools_root / "var/lib/apt/lists").glob("deb.debian.org_*"):
        index.unlink()
    playbook = tmp_path / "gpu-setup.yml"
    args = ["plan", "--root", str(tools_root), *STEPS, *_repo_args(nvidia_repo), "--enable-cdi"]
    res = _cli(gpuwizard_cmd, [*args, "--export", "ansible", "-o", str(playbook)])
    assert res.returncode == 0, res.stderr
    text = playbook.read_text()
    assert "ansible.builtin.shell" not in text and "| sh" not in text
    with ansible_target(tools_root, tmp_path) as (_inventory, env):
        # (every run below parses the whole playbook first: --syntax-check on its own adds
        # nothing but time)
        pristine = snapshot(tools_root, WATCHED)
        # check mode is a real plan (the probes run, nothing changes), here on a daemon.json
        # whose `nvidia` runtime is another program's: refused there, the file untouched
        foreign = tools_root / "etc/docker/foreign.json"
        foreign.write_text('{"runtimes": {"nvidia": {"path": "/opt/other/runtime"}}}\n')
        pristine = snapshot(tools_root, WATCHED)
        check = _playbook(
            playbook,
            env,
            "--check",
            "--diff",
            "-e",
            "gpuwizard_daemon_json=/etc/docker/foreign.json",
        )
        assert check.returncode != 0
        assert "a real run refreshes the index of" in check.stdout  # the packages, planned
        assert "/opt/other/runtime" in check.stdout and "--replace-runtime" in check.stdout
        assert snapshot(tools_root, WATCHED) == pristine
        foreign.unlink()
        pristine = snapshot(tools_root, WATCHED)
        other = nvidia_repo.other_key.fingerprint
        refused = _playbook(playbook, env, "-e", f"gpuwizard_key_fingerprint={other}")
        assert refused.returncode != 0
        assert f"but {other} was expected" in refused.stdout, refused.stdout
        assert "nothing was trusted or written" in refused.stdout
        assert snapshot(tools_root, WATCHED) == pristine
        first = _playbook(playbook, env)
        assert first.returncode == 0, first.stdout + first.stderr
        assert _recap(first.stdout)["changed"] > 0
        before = snapshot(tools_root, WATCHED)
        second = _playbook(playbook, env)
        assert second.returncode == 0, second.stdout + second.stderr
        assert _recap(second.stdout)["changed"] == 0, second.stdout
        assert snapshot(tools_root, WATCHED) == before
    from gpuwizard.host.sources import own_list_lines

    assert (tools_root / LIST).read_text() == own_list_lines(
        nvidia_repo.repo_url, "/" + KEYRING, False
    )
    assert _fingerprints(tools_root / KEYRING) == [nvidia_repo.key.fingerprint]
    assert all(" 1.20.1-1 ii" in line for line in _toolkit(tools_root)), _toolkit(tools_root)
    assert len(_toolkit(tools_root)) == 4
    doc = json.loads((tools_root / DAEMON_JSON).read_text())
    assert {k: v for k, v in doc.items() if k not in ("runtimes", "features")} == {
        k: v for k, v in USER_DAEMON_JSON.items() if k != "runtimes"
    }
    assert doc["features"] == {"cdi": True} and "default-runtime" not in doc
    assert doc["runtimes"] == {
        "crun": {"path": "/usr/bin/crun"},
        "nvidia": {"args": [], "path": "nvidia-container-runtime"},
    }
    assert not (tools_root / "etc/apt/sources.list.d/nvidia-docker.list").exists()
    assert list((tools_root / "etc/docker").glob("daemon.json.*~"))  # copy's backup beside it


def test_a_bundle_plan_is_not_exported(sandbox: Path) -> None:
    """A plan on `--bundle` installs from a folder of this machine: exporting it would name
    paths the artefact's hosts do not have."""
    from gpuwizard import wizard
    from gpuwizard.errors import WizardError
    from gpuwizard.export import export_plan
    from gpuwizard.host.system import Host
    from gpuwizard.options import Options

    options = Options(bundle="/var/lib/gpuwizard-bundles/0123", steps=("daemon-config",))
    host = Host(root=sandbox)
    with pytest.raises(WizardError) as exc:
        export_plan(wizard.plan(host, options), host, options, "sh")
    assert "--bundle" in exc.value.cause and "--repo-url" in exc.value.remedy


def test_the_recorded_h200_plan_exports_every_block(
    gpuwizard_cmd: list[str], tmp_path: Path
) -> None:
    """The demo host (the project's H200, recorded: driver under /usr/local/nvidia, off PATH)
    exports all seven steps; nvidia-smi is looked for where the plan found it, nvidia-ctk gets
    the driver's bin on its PATH, and the test containers retry nvidia-smi by that path."""
    yaml = pytest.importorskip("yaml")
    script = tmp_path / "h200.sh"
    res = _cli(gpuwizard_cmd, ["--demo", "plan", "--export", "sh", "-o", str(script)])
    assert res.returncode == 0, res.stderr
    assert "wrote " in res.stderr and "sudo sh " in res.stderr
    text = script.read_text()
    assert subprocess.run(["sh", "-n", str(script)]).returncode == 0  # noqa: S603 S607
    assert os.access(script, os.X_OK)
    steps = ("driver", "repository", "packages", "cdi", "daemon-config", "restart", "gpu-test")
    for n, step in enumerate(steps, 1):
        assert re.search(rf"^# \[{n}/7\] .+ \({step}\): (done|pending) in the plan$", text, re.M)
        assert re.search(rf'^say "== \[{n}/7\] ', text, re.M), step
    assert "for p in /usr/local/nvidia/bin/nvidia-smi " in text
    assert "PATH=/usr/local/nvidia/bin:$PATH nvidia-ctk cdi generate" in text
    assert (
        "nvidia-smi || docker run --rm --gpus all ubuntu:24.04 /usr/local/nvidia/bin/nvidia-smi"
        in text
    )
    playbook = _cli(gpuwizard_cmd, ["--demo", "plan", "--export", "ansible"])
    assert playbook.returncode == 0, playbook.stderr
    loader = type("Loader", (yaml.SafeLoader,), {})
    loader.add_constructor("!unsafe", lambda _loader, node: node.value)
    (play,) = yaml.load(playbook.stdout, Loader=loader)  # noqa: S506 (a SafeLoader)
    names = [t["name"] for t in play["tasks"]]
    assert any(n.startswith("cdi: ") for n in names) and any(
        n.startswith("driver: ") for n in names
    )
    assert sum(n.startswith("gpu-test: ") for n in names) >= 4


def test_sh_merges_restarts_a_real_dockerd_and_runs_the_gpu_test_then_leaves_it_alone(
    dockerd: Any, tmp_path: Path
) -> None:
    """daemon-config, restart and gpu-test exported from the plan on this machine (its private
    dockerd, restarted by its command) and run here: daemon.json merged, Docker restarted and
    listing the nvidia runtime, a test container through the stand-in hook (the GPU's
    stand-in); the second run restarts nothing."""
    from gpuwizard import wizard
    from gpuwizard.export import export_plan
    from gpuwizard.host.system import Host
    from tests.dockerd import docker_steps, wizard_options

    dockerd.daemon_json.write_text('{\n  "log-level": "warn"\n}\n')
    options = wizard_options(dockerd, steps=("daemon-config", "restart", "gpu-test"))
    host = Host()
    text = export_plan(wizard.plan(host, options, steps=docker_steps()), host, options, "sh")
    script = tmp_path / "gpu-setup.sh"
    script.write_text(text)
    env = {"PATH": os.environ["PATH"], "GPU_SETUP_BACKUP_DIR": str(tmp_path / "backups")}
    pid = dockerd.pid()

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603
            ["sh", str(script)],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,  # noqa: S607
        )

    first = run()
    assert first.returncode == 0, first.stdout + first.stderr
    assert "restarted Docker; it lists the nvidia runtime" in first.stdout
    assert dockerd.pid() != pid and "nvidia" in dockerd.client().info()["Runtimes"]
    assert "a container reached the GPU" in first.stdout
    assert json.loads(dockerd.daemon_json.read_text())["log-level"] == "warn"
    saved = list((tmp_path / "backups").rglob("daemon.json"))
    assert [p.read_text() for p in saved] == ['{\n  "log-level": "warn"\n}\n']
    pid = dockerd.pid()
    second = run()
    assert second.returncode == 0, second.stdout + second.stderr
    assert "no restart" in second.stdout and dockerd.pid() == pid
    assert "a container reached the GPU" in second.stdout
    assert "nothing changed: every block was already in place" in second.stdout


def test_ansible_handler_restarts_a_real_dockerd_and_the_gpu_test_passes(
    dockerd: Any, tmp_path: Path
) -> None:
    """The playbook's handler against a real private dockerd (its restart command), run on
    this machine through ansible-core's local connection: daemon.json merged, Docker restarted
    and listing the nvidia runtime, a test container through the stand-in hook."""
    if not (Path(sys.executable).parent / "ansible-playbook").exists():
        pytest.skip("ansible-core is not installed (pip install -e '.[test]')")
    from gpuwizard import wizard
    from gpuwizard.export import export_plan
    from gpuwizard.host.system import Host
    from tests.dockerd import docker_steps, wizard_options

    dockerd.daemon_json.write_text('{\n  "log-level": "warn"\n}\n')
    options = wizard_options(dockerd, steps=("daemon-config", "restart", "gpu-test"))
    host = Host()
    playbook = tmp_path / "gpu-setup.yml"
    playbook.write_text(
        export_plan(wizard.plan(host, options, steps=docker_steps()), host, options, "ansible")
    )
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        f"here ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_PIPELINING": "1",
        "ANSIBLE_INVENTORY": str(inventory),
    }
    pid = dockerd.pid()
    run = _playbook(playbook, env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "RUNNING HANDLER [restart Docker]" in run.stdout
    assert dockerd.pid() != pid and "nvidia" in dockerd.client().info()["Runtimes"]
    assert json.loads(dockerd.daemon_json.read_text())["log-level"] == "warn"
    reached = run.stdout.split("TASK [gpu-test: a container reached the GPU]", 1)[1]
    assert reached.split("TASK [", 1)[0].strip("* \n").startswith("ok: [here]"), reached[:400]
    line = next(x for x in run.stdout.splitlines() if x.startswith("here") and "ok=" in x)
    assert "failed=0" in line
