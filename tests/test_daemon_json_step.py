"""The daemon-config step: finds the file dockerd reads, previews the exact bytes, refuses bad
input with the file untouched, and works with no engine running (a --root image)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gpuwizard.host.system import Host
from gpuwizard.options import Options
from gpuwizard.steps.base import Simulation
from gpuwizard.steps.daemon_config import DaemonConfigStep
from tests.dockerd import Dockerd, wizard_options

CORPUS = Path(__file__).parent / "daemon_json_corpus"


def plan_in(root: Path, **kw: object):
    return DaemonConfigStep().plan(Host(root=root), Options(**kw), Simulation())  # type: ignore[arg-type]


def test_root_image_without_engine_gets_daemon_json_at_default_path(sandbox: Path) -> None:
    sp = plan_in(sandbox)
    assert sp.state == "pending"
    assert sp.facts["path"] == "/etc/docker/daemon.json"
    assert sp.diffs[0].before is None and '"nvidia"' in (sp.diffs[0].after or "")
    assert sp.diffs[0].unified().startswith("--- /dev/null")


def test_preview_is_the_same_diff_the_write_action_returns(sandbox: Path) -> None:
    (sandbox / "etc/docker/daemon.json").write_bytes((CORPUS / "02-log-opts.json").read_bytes())
    sp = plan_in(sandbox)
    assert sp.diffs == sp.actions[0].preview(Host(root=sandbox))
    assert sp.actions[0].content.decode() == sp.diffs[0].after
    assert '+  "runtimes": {' in sp.diffs[0].unified()


def test_already_configured_is_done(sandbox: Path) -> None:
    (sandbox / "etc/docker/daemon.json").write_bytes(
        (CORPUS / "19-nvidia-ctk-output.json").read_bytes()
    )
    assert plan_in(sandbox).state == "done"


@pytest.mark.parametrize("name", sorted(p.name for p in (CORPUS / "bad").glob("*.json")))
def test_bad_daemon_json_fails_the_plan_and_leaves_the_file_untouched(
    sandbox: Path, name: str
) -> None:
    target = sandbox / "etc/docker/daemon.json"
    data = (CORPUS / "bad" / name).read_bytes()
    target.write_bytes(data)
    sp = plan_in(sandbox)
    assert sp.state in ("failed", "blocked")
    assert sp.reason and sp.remedy and not sp.actions
    assert target.read_bytes() == data


def test_foreign_nvidia_runtime_blocks_with_replace_runtime_remedy(sandbox: Path) -> None:
    (sandbox / "etc/docker/daemon.json").write_bytes(
        (CORPUS / "bad/foreign-nvidia-runtime.json").read_bytes()
    )
    sp = plan_in(sandbox)
    assert sp.state == "blocked" and "--replace-runtime" in sp.remedy
    assert sp.facts["conflict"]["theirs"] == "/opt/acme/bin/acme-gpu-runtime"
    sp = plan_in(sandbox, replace_runtime=True)
    assert sp.state == "pending"


def test_directory_at_the_path_is_refused(sandbox: Path) -> None:
    (sandbox / "etc/docker/daemon.json").mkdir()
    sp = plan_in(sandbox)
    assert sp.state == "failed" and "is a directory" in sp.reason


def test_dangling_symlink_at_the_path_is_refused(sandbox: Path) -> None:
    os.symlink("/nowhere/daemon.json", sandbox / "etc/docker/daemon.json")
    sp = plan_in(sandbox)
    assert sp.state == "failed" and "does not exist" in sp.reason and "rm " in sp.remedy


def test_hosts_in_file_with_dash_h_in_unit_file_is_refused(sandbox: Path) -> None:
    unit = sandbox / "lib/systemd/system/docker.service"
    unit.parent.mkdir(parents=True)
    unit.write_text(
        "[Service]\nExecStart=/usr/bin/dockerd -H fd:// "
        "--containerd=/run/containerd/containerd.sock\n"
    )
    (sandbox / "etc/docker/daemon.json").write_bytes((CORPUS / "09-hosts.json").read_bytes())
    sp = plan_in(sandbox)
    assert sp.state == "failed" and "`hosts`" in sp.reason and "-H" in sp.reason


def test_explicit_daemon_json_option_wins(sandbox: Path) -> None:
    sp = plan_in(sandbox, daemon_json="/srv/docker/daemon.json")
    assert sp.facts["path"] == "/srv/docker/daemon.json"


def test_default_runtime_and_cdi_are_opt_in_with_warning(sandbox: Path) -> None:
    sp = plan_in(sandbox, set_default_runtime=True, enable_cdi=True)
    after = json.loads(sp.actions[0].content)
    assert after["default-runtime"] == "nvidia" and after["features"] == {"cdi": True}
    assert any("toolkit is removed later" in w for w in sp.warnings)


@pytest.mark.slow
def test_running_daemon_config_file_is_found_from_its_command_line(dockerd: Dockerd) -> None:
    opts = wizard_options(dockerd)
    sp = DaemonConfigStep().plan(Host(), opts, Simulation())
    assert sp.facts["path"] == str(dockerd.daemon_json)
    assert "--config-file" in sp.facts["found_by"]
    engine = sp.facts["engine"]
    assert engine["version"].startswith("20.10") and engine["reachable"]
    assert engine["dockerd_log"] == str(dockerd.log)
    # 20.10 has no `dockerd --validate`: detected by version, our own checks ran
    assert "validator unavailable" in sp.facts["validate"]["output"]
    assert sp.facts["validate"]["ok"] is None


@pytest.mark.slow
def test_hosts_in_file_conflicts_with_the_running_daemons_dash_h(dockerd: Dockerd) -> None:
    """The test daemon runs with -H unix://...: `hosts` in its file would stop it starting."""
    original = b'{\n  "hosts": ["unix:///run/other.sock"]\n}\n'
    dockerd.daemon_json.write_bytes(original)
    try:
        sp = DaemonConfigStep().plan(Host(), wizard_options(dockerd), Simulation())
        assert sp.state == "failed" and "`hosts`" in sp.reason and "(-H)" in sp.reason
        assert dockerd.daemon_json.read_bytes() == original
    finally:
        dockerd.daemon_json.write_bytes(b"{}\n")
