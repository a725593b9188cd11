"""The containerd steps against a real, private containerd, through the real CLI:
drop-in + imports merge, validation, guarded restart, verification, and rollback.

containerd here is bookworm's 1.6.20 (the `containerd` package docker.io depends on): it has
no CDI, so the step writes the nvidia runtime only; the stand-in nvidia-container-runtime
(tests/stand_ins, test suite only) is what it names.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
from containerd_daemon import Containerd

from gpuwizard.host.engines import parse_config
from gpuwizard.steps.containerd import dropin_text, merged_config

HERE = Path(__file__).resolve().parent
STAND_INS = HERE / "stand_ins"

needs_containerd = pytest.mark.skipif(
    not shutil.which("containerd") or os.geteuid() != 0, reason="needs root and containerd"
)


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "gpuwizard", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )


@pytest.fixture
def ctd(tmp_path: Path) -> Iterator[Containerd]:
    c = Containerd(shutil.which("containerd") or "containerd", shutil.which("ctr") or "ctr")
    yield c
    c.stop()
    subprocess.run(["umount", "-R", str(c.base / "state")], capture_output=True)  # noqa: S603,S607
    shutil.rmtree(c.base, ignore_errors=True)


def _args(c: Containerd, state: Path) -> list[str]:
    return [
        "--step",
        "containerd",
        "--step",
        "containerd-restart",
        "--containerd",
        "--containerd-config",
        str(c.config),
        "--containerd-socket",
        str(c.sock),
        "--containerd-restart-command",
        c.restart_command(),
        "--containerd-wait",
        "20",
        "--state-dir",
        str(state),
    ]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{STAND_INS}:{env.get('PATH', '/usr/bin:/bin')}"
    return env


def _dump(c: Containerd) -> str:
    res = subprocess.run(  # noqa: S603
        [c.binary, "--config", str(c.config), "config", "dump"], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    return res.stdout


# -- the config text, no daemon ----------------------------------------------------------------
def test_parse_config_reads_version_imports_and_disabled_cri() -> None:
    text = (
        "# comment\nversion = 2\nimports = [\n  '/etc/a/*.toml',\n  \"/x.toml\",\n]\n"
        'disabled_plugins = ["cri"]\n[plugins]\n  imports = ["/not/top/level"]\n'
    )
    cfg = parse_config(text, 2)
    assert cfg.version == 2
    assert cfg.imports == ("/etc/a/*.toml", "/x.toml")
    assert cfg.cri_disabled
    assert parse_config(None, 3).exists is False
    assert parse_config("[plugins]\n", 2).version == 1  # 1.x reads an unversioned file as v1


def test_merged_config_adds_the_import_before_the_first_table_or_extends_a_list() -> None:
    base = "version = 2\n\n[grpc]\n  address = '/x'\n"
    out = merged_config(base, "/etc/containerd/conf.d/*.toml", 2)
    assert out.index("imports = [") < out.index("[grpc]")
    assert parse_config(out, 2).imports == ("/etc/containerd/conf.d/*.toml",)
    out2 = merged_config('version = 2\nimports = ["/a.toml"]\n[grpc]\n', "/b/*.toml", 2)
    assert parse_config(out2, 2).imports == ("/a.toml", "/b/*.toml")
    assert merged_config(None, "/b/*.toml", 3).startswith("version = 3\nimports = [")


def test_dropin_names_the_cri_plugin_of_its_schema() -> None:
    v2 = dropin_text(2, "/usr/bin/nvidia-container-runtime", ("/etc/cdi",))
    v3 = dropin_text(3, None, ("/etc/cdi",))
    assert 'plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia' in v2
    assert "enable_cdi = true" in v2
    assert 'plugins."io.containerd.cri.v1.runtime"' in v3 and "runtimes.nvidia" not in v3


# -- a real containerd -------------------------------------------------------------------------
@pytest.mark.slow
@needs_containerd
def test_apply_adds_the_runtime_restarts_and_rollback_restores_everything(
    ctd: Containerd, tmp_path: Path
) -> None:
    original = ctd.base_config(2).encode()
    ctd.config.write_bytes(original)
    os.chmod(ctd.config, 0o600)
    ctd.start()
    first_pid = ctd.pid
    env = _env()
    state = tmp_path / "state"

    plan = _cli(["plan", *_args(ctd, state)], env)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "conf.d/99-nvidia.toml" in plan.stdout
    assert "imports = [" in plan.stdout  # the one-line merge is previewed

    res = _cli(["apply", *_args(ctd, state), "--yes", "--no-auto-revert"], env)
    assert res.returncode == 0, res.stdout + res.stderr
    dropin = ctd.etc / "conf.d" / "99-nvidia.toml"
    assert dropin.exists()
    dump = _dump(ctd)
    assert "runtimes.nvidia]" in dump and str(STAND_INS / "nvidia-container-runtime") in dump
    assert ctd.pid != first_pid  # restarted, and answering
    assert "containerd answers" in res.stdout + res.stderr

    again = _cli(["plan", *_args(ctd, state)], env)
    assert "already" in again.stdout or "in place" in again.stdout, again.stdout

    second_pid = ctd.pid
    back = _cli(["rollback", "--state-dir", str(state), "--yes"], env)
    assert back.returncode == 0, back.stdout + back.stderr
    assert ctd.config.read_bytes() == original
    assert oct(ctd.config.stat().st_mode & 0o777) == "0o600"
    assert not dropin.exists()
    assert not dropin.parent.exists()  # the conf.d folder gpuwizard made is gone too
    assert "runtimes.nvidia" not in _dump(ctd)
    assert ctd.pid != second_pid  # restarted on the restored files


@pytest.mark.slow
@needs_containerd
def test_a_config_containerd_rejects_is_never_restarted_on(ctd: Containerd, tmp_path: Path) -> None:
    # containerd cannot decode this (a string where a table is expected), but the file's
    # top-level keys are fine: gpuwizard plans the drop-in, and the guard must stop it
    original = (
        ctd.base_config(2) + '\n[plugins."io.containerd.grpc.v1.cri".containerd]\n'
        '  default_runtime_name = ["not", "a", "string"]\n'
    ).encode()
    ctd.config.write_bytes(original)
    bad_ok = subprocess.run(  # noqa: S603
        [ctd.binary, "--config", str(ctd.config), "config", "dump"], capture_output=True
    )
    if bad_ok.returncode == 0:
        pytest.skip("this containerd accepts the broken file: no guard to test")
    ctd.config.write_bytes(ctd.base_config(2).encode())
    ctd.start()
    ctd.config.write_bytes(original)  # broken after the start: the running daemon is fine
    pid = ctd.pid
    state = tmp_path / "state"
    res = _cli(["apply", *_args(ctd, state), "--yes", "--no-auto-revert"], _env())
    assert res.returncode != 0
    assert "containerd rejects" in res.stdout + res.stderr
    assert ctd.config.read_bytes() == original  # restored byte-exact
    assert not (ctd.etc / "conf.d" / "99-nvidia.toml").exists()
    assert ctd.pid == pid  # the running containerd was left alone


def test_k3s_is_told_apart_with_its_config_template_and_service(tmp_path: Path) -> None:
    # k3s's own layout: its binary, the config.toml it generates, its unit
    (tmp_path / "usr/local/bin").mkdir(parents=True)
    k3s = tmp_path / "usr/local/bin/k3s"
    k3s.write_bytes(b"\x7fELF")
    k3s.chmod(0o755)
    cfg = tmp_path / "var/lib/rancher/k3s/agent/etc/containerd/config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text('version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd]\n')
    (tmp_path / "etc/systemd/system").mkdir(parents=True)
    (tmp_path / "etc/systemd/system/k3s-agent.service").write_text("[Service]\n")
    (tmp_path / "etc/os-release").write_text("ID=debian\nVERSION_ID=12\n")
    env = dict(os.environ)
    res = _cli(["status", "--json", "--root", str(tmp_path)], env)
    assert res.returncode == 0, res.stderr
    import json

    c = json.loads(res.stdout)["engines"]["containerd"]
    assert (c["flavour"], c["service"]) == ("k3s", "k3s-agent")
    assert c["template"] == "/var/lib/rancher/k3s/agent/etc/containerd/config.toml.tmpl"
    plan = _cli(["plan", "--root", str(tmp_path), "--step", "containerd"], env)
    assert "k3s writes /var/lib/rancher/k3s/agent/etc/containerd/config.toml itself" in plan.stdout
    assert "config.toml.tmpl" in plan.stdout and "restart k3s-agent" in plan.stdout


def test_the_overview_shows_one_line_per_other_engine() -> None:
    from gpuwizard.steps.base import StepPlan
    from gpuwizard.tui.plan_text import host_lines
    from gpuwizard.wizard import Plan

    lines = ["Docker: running", "Podman 4.3.1 · reads CDI specs up to 0.5.0", "containerd 2.1.9"]
    plan = Plan([StepPlan("podman", "Podman (CDI)", "pending", facts={"engines": lines})], ())
    shown = host_lines(plan)
    assert "Podman 4.3.1 · reads CDI specs up to 0.5.0" in shown
    assert "containerd 2.1.9" in shown
    assert "Docker: running" not in shown  # Docker has its own line already
