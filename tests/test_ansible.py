"""The gpuwizard.gpu collection with ansible-core from PyPI against three real hosts: sshd's on
127.0.0.1 ports, each chrooted into a Debian root of its own (tests/fleet_hosts.py), with the
suite's signed toolkit repository on 127.0.0.1. The play copies gpuwizard.pyz (SHA-256 checked)
and runs it there headless; what a host ends up with is read from its own root."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.debroot import NvidiaRepo
from tests.fleet_hosts import Fleet, closed_port, recap, recap_lines

pytestmark = pytest.mark.slow

# the steps a GPU-less root can take: no driver, no dockerd in a chroot
STEPS = ["repository", "packages", "daemon-config"]
# what gpuwizard may change on a host, and its journal (compared byte for byte)
WATCHED = (
    "etc/apt",
    "etc/docker",
    "etc/nvidia-container-runtime",
    "usr/share/keyrings",
    "usr/bin",
    "usr/lib/x86_64-linux-gnu",
    "var/lib/dpkg/status",
    "var/lib/gpuwizard",
)
SOMEONES_DAEMON_JSON = (
    b'{\n  "log-driver": "journald",\n  "registry-mirrors": ["https://m.example"]\n}\n'
)


def _opts(repo: NvidiaRepo, **more: Any) -> dict[str, Any]:
    return {
        "gpuwizard_steps": STEPS,
        "gpuwizard_repo_url": repo.repo_url,
        "gpuwizard_key_url": repo.key_url,
        "gpuwizard_key_fingerprint": repo.key.fingerprint,
        "gpuwizard_toolkit_version": repo.versions[0],
        # a chroot sees this machine's /proc and so other sessions' dockerd: name the file
        "gpuwizard_daemon_json": "/etc/docker/daemon.json",
        **more,
    }


def _tree(root: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for top in WATCHED:
        base = root / top
        if base.is_file():
            out[top] = base.read_bytes()
        for p in sorted(base.rglob("*")) if base.is_dir() else []:
            if p.is_symlink():
                out[str(p.relative_to(root))] = b"-> " + str(p.readlink()).encode()
            elif p.is_file():
                out[str(p.relative_to(root))] = p.read_bytes()
            elif p.is_dir():
                out[str(p.relative_to(root)) + "/"] = b""
    return out


def _dpkg(root: Path, package: str) -> str:
    r = subprocess.run(
        ["chroot", str(root), "dpkg-query", "-W", "-f", "${Status} ${Version}", package],
        capture_output=True,
        text=True,
    )
    return r.stdout.strip()


def _ok(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-3000:]
    return res.stdout


def _seed(fleet: Fleet) -> None:
    for h in fleet.hosts:
        (h.root / "etc/docker").mkdir(parents=True, exist_ok=True)
        (h.root / "etc/docker/daemon.json").write_bytes(SOMEONES_DAEMON_JSON)


def _system(root: Path) -> dict[str, bytes]:
    """What a rollback must give back byte for byte (the journal stays, it is the record)."""
    return {k: v for k, v in _tree(root).items() if not k.startswith("var/lib/gpuwizard")}


def test_converge_twice_then_rollback_restores_every_host_byte_exact(
    fleet: Fleet, nvidia_repo: NvidiaRepo
) -> None:
    _seed(fleet)
    original = {h.name: _system(h.root) for h in fleet.hosts}
    first = _ok(fleet.playbook("site.yml", **_opts(nvidia_repo)))
    numbers = recap(first)
    assert sorted(numbers) == ["host1", "host2", "host3"], first[-3000:]
    for h in fleet.hosts:
        assert numbers[h.name]["failed"] == 0 and numbers[h.name]["changed"] >= 2, numbers
        assert _dpkg(h.root, "nvidia-container-toolkit") == (
            f"install ok installed {nvidia_repo.versions[0]}"
        )
        daemon = json.loads((h.root / "etc/docker/daemon.json").read_text())
        assert daemon["runtimes"]["nvidia"]["path"] == "nvidia-container-runtime"
        assert daemon["log-driver"] == "journald"  # merged, not clobbered
        runs = list((h.root / "var/lib/gpuwizard/runs").iterdir())
        assert len(runs) == 1  # each host's journal is in its own root
    second = _ok(fleet.playbook("site.yml", **_opts(nvidia_repo)))
    print("\n".join(recap_lines(first) + [""] + recap_lines(second)))
    for h in fleet.hosts:
        assert recap(second)[h.name]["changed"] == 0, second[-4000:]
        assert len(list((h.root / "var/lib/gpuwizard/runs").iterdir())) == 1

    undo = _ok(fleet.playbook("rollback.yml"))
    for h in fleet.hosts:
        assert recap(undo)[h.name]["changed"] == 1, undo[-4000:]
        now = _system(h.root)
        assert sorted(now) == sorted(original[h.name]), h.name
        assert now == original[h.name], h.name
        assert _dpkg(h.root, "nvidia-container-toolkit") == ""
    again = _ok(fleet.playbook("rollback.yml"))
    assert all(recap(again)[h.name]["changed"] == 0 for h in fleet.hosts), again[-3000:]


SKIP_IN_TREE = (
    "proc",
    "dev",
    "sys",
    "run",
    "tmp",
    "root/.ansible",  # Ansible's own remote temp folder, made and removed by every task
    "usr/local/lib/gpuwizard",  # the tool itself: installed in check mode too
    "var/cache/gpuwizard",  # where gpuwizard.pyz unpacks itself once
    "var/cache/debconf",
)


def _whole_root(root: Path) -> dict[str, tuple[Any, ...]]:
    """Every path of a root with its type, mode, owner, size and mtime, and the bytes of the
    files gpuwizard may change: 'changes nothing on disk', checked as a whole."""
    out: dict[str, tuple[Any, ...]] = {}
    for top, dirs, files in os.walk(root):
        rel = os.path.relpath(top, root)
        dirs[:] = [d for d in dirs if os.path.normpath(os.path.join(rel, d)) not in SKIP_IN_TREE]
        for name in dirs + files:
            p = Path(top) / name
            st = p.lstat()
            link = os.readlink(p) if p.is_symlink() else ""
            key = os.path.normpath(os.path.join(rel, name))
            if stat.S_ISDIR(st.st_mode):  # a folder's mtime moves when Ansible's temp comes
                out[key] = (st.st_mode, st.st_uid, st.st_gid)
            else:
                out[key] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, link)
    return out | {k: (v,) for k, v in _tree(root).items()}


def test_check_mode_shows_gpuwizard_plan_as_the_diff_and_changes_nothing(
    fleet: Fleet, nvidia_repo: NvidiaRepo
) -> None:
    _seed(fleet)
    before = {h.name: _whole_root(h.root) for h in fleet.hosts}
    # as a new user runs it: ansible/ and dist/ of a checkout, the build found by the defaults
    out = _ok(
        fleet.playbook("site.yml", "--check", "--diff", as_a_checkout=True, **_opts(nvidia_repo))
    )
    numbers = recap(out)
    for h in fleet.hosts:
        assert numbers[h.name]["failed"] == 0, out[-4000:]
        assert _whole_root(h.root) == before[h.name], f"check mode changed {h.name}"
        assert not (h.root / "var/lib/gpuwizard/runs").exists()
    # gpuwizard's own diffs, per host: the merged daemon.json, the keyring, the pinned packages
    assert out.count('+  "runtimes": {') == 3, out[-6000:]
    assert out.count('-  "registry-mirrors": ["https://m.example"]') == 3
    assert out.count(f"+nvidia-container-toolkit {nvidia_repo.versions[0]}") == 3
    assert out.count("+deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring") == 3
    assert "/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg" in out
    plan = [line for line in out.splitlines() if "Plan and apply with gpuwizard" in line]
    assert plan, "the plan task did not run"


def test_a_build_other_than_the_pinned_one_is_refused_before_any_host_is_touched(
    fleet: Fleet, nvidia_repo: NvidiaRepo
) -> None:
    res = fleet.playbook("site.yml", **_opts(nvidia_repo, gpuwizard_pyz_sha256="0" * 64))
    assert res.returncode != 0
    assert "not the build you pinned" in res.stdout, res.stdout[-3000:]
    assert "python3 scripts/build_pyz.py" in res.stdout
    for h in fleet.hosts:
        assert not (h.root / "usr/local/lib/gpuwizard").exists()
    # a build with nothing to check it against (no pin, no .sha256 beside it) is refused too
    sums = fleet.pyz.with_name("gpuwizard.pyz.sha256")
    kept = sums.read_bytes()
    sums.unlink()
    try:
        res = fleet.playbook("site.yml", as_a_checkout=True, **_opts(nvidia_repo))
    finally:
        sums.write_bytes(kept)
    assert res.returncode != 0
    assert "has no SHA-256 to be checked against" in res.stdout, res.stdout[-3000:]
    for h in fleet.hosts:
        assert not (h.root / "usr/local/lib/gpuwizard").exists()


BROKEN_DAEMON_JSON = b'{\n  "log-driver": "journald",\n  "log-driver": "local"\n}\n'


def _gpuwizard_on(fleet: Fleet, name: str, *args: str) -> dict[str, Any]:
    """gpuwizard run by hand on one host (in its root), as its admin would."""
    h = next(h for h in fleet.hosts if h.name == name)
    r = subprocess.run(
        ["chroot", str(h.root), "python3", "/usr/local/lib/gpuwizard/gpuwizard.pyz", *args],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "NO_COLOR": "1"},
    )
    return dict(json.loads(r.stdout))


def test_a_bad_daemon_json_fails_only_its_host_with_gpuwizard_cause_and_remedy(
    fleet: Fleet, nvidia_repo: NvidiaRepo, tmp_path: Path
) -> None:
    _seed(fleet)
    (fleet.hosts[1].root / "etc/docker/daemon.json").write_bytes(BROKEN_DAEMON_JSON)
    before = _system(fleet.hosts[1].root)
    fleet.extra_hosts = {"host4": {"ansible_host": "127.0.0.1", "ansible_port": closed_port()}}
    results = tmp_path / "fleet.json"
    res = fleet.playbook("site.yml", results=results, **_opts(nvidia_repo))
    assert res.returncode in (2, 4), res.stdout[-4000:]  # hosts failed, one unreachable
    numbers = recap(res.stdout)
    assert numbers["host4"]["unreachable"] == 1
    assert numbers["host2"]["failed"] == 1
    assert numbers["host1"]["failed"] == numbers["host3"]["failed"] == 0
    # refused at the plan: nothing changed, no run in its journal
    assert _system(fleet.hosts[1].root) == before
    assert list((fleet.hosts[1].root / "var/lib/gpuwizard/runs").iterdir()) == []
    # the failure is gpuwizard's own words, as `gpuwizard plan` says them on that host
    plan = _gpuwizard_on(
        fleet,
        "host2",
        "plan",
        "--json",
        "--step",
        "daemon-config",
        "--daemon-json",
        "/etc/docker/daemon.json",
    )
    step = next(s for s in plan["steps"] if s["step"] == "daemon-config")
    assert step["state"] == "failed" and step["reason"] and step["remedy"]
    fatal = next(line for line in res.stdout.splitlines() if line.startswith("fatal: [host2]"))
    result = json.loads(fatal.split("=> ", 1)[1])
    assert step["reason"] in result["cause"] and result["remedy"] == step["remedy"]
    assert result["msg"] == f"{result['cause']} -> {result['remedy']}"
    for name in ("host1", "host3"):
        runs = _gpuwizard_on(fleet, name, "history", "--json")["runs"]
        assert [r["status"] for r in runs] == ["finished"]

    # the fleet view of that play: one table at 80 columns, and JSON
    view = subprocess.run(
        [sys.executable, "-m", "gpuwizard", "fleet", str(results)],
        capture_output=True,
        text=True,
    )
    assert view.returncode == 1, view.stderr  # a host failed
    print(view.stdout)
    lines = view.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    rows = {line.split()[0]: line for line in lines if line.startswith("host")}
    assert "FAILED" in rows["host2"] and rows["host1"].endswith("changed")
    assert rows["host4"].endswith("UNREACH") and rows["host4"].split()[1:4] == ["?", "?", "?"]
    assert nvidia_repo.versions[0] in rows["host1"] and "none" in rows["host1"]
    assert step["reason"][:30] in view.stdout
    doc = json.loads(
        subprocess.run(
            [sys.executable, "-m", "gpuwizard", "fleet", str(results), "--json"],
            capture_output=True,
            text=True,
        ).stdout
    )
    by = {h["host"]: h for h in doc["hosts"]}
    assert by["host1"]["toolkit"] == nvidia_repo.versions[0]
    assert by["host1"]["steps"]["daemon-config"] == "done"
    assert by["host2"]["result"] == "failed" and by["host2"]["steps"]["daemon-config"] == "failed"
    assert doc["counts"] == {"changed": 2, "failed": 1, "unreachable": 1}
    # ssh's own words for a host that is down ("… port N: Connection refused"), or, when
    # ansible was already writing to the ssh that had just exited (a loaded machine: seen in
    # CI), its own: "Data could not be sent … Make sure this host can be reached over SSH"
    msg = by["host4"]["msg"]
    assert "port" in msg or "can be reached over SSH" in msg, msg


def _demo_journal(fleet: Fleet, name: str) -> list[dict[str, Any]]:
    h = next(h for h in fleet.hosts if h.name == name)
    # the demo machine's folder: ~/.cache/gpuwizard-demo (or a private one in /tmp)
    found = [
        p
        for top in ("root/.cache", "tmp")
        for p in (h.root / top).glob("gpuwizard-demo*/root/var/lib/gpuwizard/runs/*/journal.jsonl")
    ]
    assert len(found) == 1, found
    return [json.loads(x) for x in found[0].read_text().splitlines()]


def test_the_confirmation_is_the_play_s_decision_when_verified_handler_or_never(
    fleet: Fleet, tmp_path: Path
) -> None:
    """gpuwizard's recorded H200 host (--demo: its restart and GPU test are simulated, in a
    folder of its own) on each host, so the Docker restart that arms the auto-revert happens."""
    fleet.host_vars = {
        "host1": {"gpuwizard_confirm": "when_verified"},
        "host2": {"gpuwizard_confirm": "handler"},
        "host3": {"gpuwizard_confirm": "never", "gpuwizard_auto_revert": 6},
    }
    results = tmp_path / "fleet.json"
    out = _ok(fleet.playbook("site.yml", results=results, gpuwizard_extra_args=["--demo"]))
    assert "RUNNING HANDLER [gpuwizard.gpu.setup : gpuwizard confirm]" in out
    assert "awaits `gpuwizard confirm` on the host" in out  # host3 is told its deadline
    kept = {
        name: [r["data"].get("by") for r in _demo_journal(fleet, name) if r["type"] == "confirmed"]
        for name in ("host1", "host2", "host3")
    }
    assert kept["host1"] == ["--yes (verification passed)"]
    assert kept["host2"] == ["user"]  # the handler's `gpuwizard confirm`
    assert kept["host3"] == []
    armed = next(r for r in _demo_journal(fleet, "host2") if r["type"] == "awaiting-confirmation")
    assert armed["data"]["deadline"] - armed["time"] > 850  # held: the play's end is later
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ends = [r for r in _demo_journal(fleet, "host3") if r["type"] == "end"]
        if ends:
            break
        time.sleep(0.5)
    assert ends and ends[-1]["data"]["status"] == "auto-reverted"

    # the fleet view of these three: the recorded GPU and driver on every line
    view = subprocess.run(
        [sys.executable, "-m", "gpuwizard", "fleet", str(results)], capture_output=True, text=True
    )
    assert view.returncode == 0, view.stdout + view.stderr
    print(view.stdout)
    rows = [line for line in view.stdout.splitlines() if line.startswith("host")]
    assert len(rows) == 3 and all("1× H200" in r and "580.159.04" in r for r in rows), rows
    assert max(len(line) for line in view.stdout.splitlines()) <= 80


def test_the_module_s_documentation_names_every_option_it_takes() -> None:
    """ansible-doc reads the module (a YAML slip in DOCUMENTATION makes it refuse), and the
    documented options are exactly the argument spec's."""
    import ast

    from tests.fleet_hosts import COLLECTIONS

    env = {"ANSIBLE_CONFIG": str(COLLECTIONS / "ansible.cfg"), "PATH": "/usr/bin:/bin"}
    doc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-doc"), "--json", "gpuwizard.gpu.gpuwizard"],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(COLLECTIONS),
    )
    assert doc.returncode == 0, doc.stderr
    documented = set(json.loads(doc.stdout)["gpuwizard.gpu.gpuwizard"]["doc"]["options"])
    source = (
        COLLECTIONS / "ansible_collections/gpuwizard/gpu/plugins/modules/gpuwizard.py"
    ).read_text()
    spec = next(
        n.value
        for n in ast.walk(ast.parse(source))
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "spec"
    )
    assert isinstance(spec, ast.Call)
    assert documented == {k.arg for k in spec.keywords}
