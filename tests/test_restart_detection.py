"""How gpuwizard finds the engine's config and the way to restart it, on hosts unlike this one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuwizard.actions.services import METHODS, detect_method, restart_argv
from gpuwizard.errors import WizardError
from gpuwizard.host import docker as engine
from gpuwizard.host.system import Host


def proc(*argv: str, exe: str = "/usr/bin/dockerd") -> engine.DockerdProcess:
    return engine.DockerdProcess(1234, ("dockerd", *argv), exe, None)


def test_config_file_on_the_command_line_wins_over_the_default(sandbox: Path) -> None:
    host = Host(root=sandbox)
    p = proc("-H", "fd://", "--config-file=/srv/d.json")
    assert engine.daemon_json_path(host, p, False, None)[0] == "/srv/d.json"
    assert (
        engine.daemon_json_path(host, proc("--config-file", "/x.json"), False, None)[0] == "/x.json"
    )
    assert engine.daemon_json_path(host, p, False, "/given.json") == (
        "/given.json",
        "given with --daemon-json",
    )


def test_snap_and_rootless_read_their_own_daemon_json(
    sandbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = Host(root=sandbox)
    snap = proc(exe="/snap/docker/2915/bin/dockerd")
    assert (
        engine.daemon_json_path(host, snap, False, None)[0]
        == "/var/snap/docker/current/config/daemon.json"
    )
    monkeypatch.setenv("HOME", "/home/ada")
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    assert (
        engine.daemon_json_path(host, None, True, None)[0] == "/home/ada/.config/docker/daemon.json"
    )
    assert engine.daemon_json_path(host, proc(), False, None)[0] == "/etc/docker/daemon.json"


def test_dockerd_hosts_are_read_in_every_spelling() -> None:
    p = proc("-H", "fd://", "--host=unix:///a.sock", "-Htcp://127.0.0.1:2375")
    assert p.hosts() == ["fd://", "unix:///a.sock", "tcp://127.0.0.1:2375"]


def test_docker_desktop_context_is_recognised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".docker").mkdir()
    (tmp_path / ".docker/config.json").write_text(json.dumps({"currentContext": "desktop-linux"}))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert engine.desktop_context(Host())
    assert "virtual machine" in engine.DESKTOP_CAUSE
    assert "docker context use default" in engine.DESKTOP_REMEDY


def test_validate_is_used_from_docker_23_on_by_version_not_exit_code() -> None:
    base = {"installed": True, "reachable": True, "docker_host": "unix:///x"}
    assert not engine.EngineFacts(version="20.10.24+dfsg1", **base).has_validate
    assert engine.EngineFacts(version="23.0.0", **base).has_validate
    assert engine.EngineFacts(version="29.1.3", **base).has_validate


def test_cdi_is_opt_in_from_25_and_on_by_default_from_28_2() -> None:
    assert engine._cdi_enabled({}, "20.10.24") is False
    assert engine._cdi_enabled({"CDISpecDirs": []}, "27.1.0") is False
    assert engine._cdi_enabled({"CDISpecDirs": ["/etc/cdi"]}, "27.1.0") is True
    assert engine._cdi_enabled({}, "28.2.0") is True


@pytest.mark.parametrize(
    "distro,expected",
    [
        ('ID=debian\nVERSION_ID="12"\n', "apt-get install docker.io"),
        ('ID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\n', "engine/install/ubuntu"),
        ('ID=fedora\nVERSION_ID="41"\n', "dnf install moby-engine"),
        ('ID=rocky\nID_LIKE="rhel centos fedora"\n', "docker-ce from Docker's repository"),
        ('ID=opensuse-leap\nID_LIKE="suse opensuse"\n', "zypper install docker"),
    ],
)
def test_docker_not_installed_says_how_to_install_it_for_this_distribution(
    sandbox: Path, distro: str, expected: str
) -> None:
    (sandbox / "etc/os-release").write_text(distro)
    host = Host(root=sandbox)
    assert not engine.installed(host)
    assert expected in engine.install_remedy(host)


@pytest.mark.parametrize("init,expected", [("systemd", "systemd"), ("openrc", "openrc")])
def test_restart_method_follows_the_init_system(sandbox: Path, init: str, expected: str) -> None:
    if init == "systemd":
        (sandbox / "lib/systemd").mkdir(parents=True)
        (sandbox / "lib/systemd/systemd").write_text("")
    else:
        (sandbox / "sbin").mkdir()
        (sandbox / "sbin/openrc").write_text("")
    assert detect_method(Host(root=sandbox), None) == expected


def test_snap_and_rootless_restart_their_own_way(sandbox: Path) -> None:
    base = {"installed": True, "reachable": True, "docker_host": "unix:///x"}
    host = Host(root=sandbox)
    assert detect_method(host, engine.EngineFacts(snap=True, **base)) == "snap"
    assert detect_method(host, engine.EngineFacts(rootless=True, **base)) == "systemd-user"
    assert restart_argv("snap", None) == ["snap", "restart", "docker"]
    assert restart_argv("service", None) == ["service", "docker", "restart"]
    assert restart_argv("openrc", None) == ["rc-service", "docker", "restart"]
    assert restart_argv("command", ["/usr/local/bin/restart-docker"]) == [
        "/usr/local/bin/restart-docker"
    ]
    assert set(METHODS) >= {"systemd", "service", "snap", "openrc"}
    with pytest.raises(WizardError) as err:
        restart_argv("command", None)
    assert "--restart-command" in err.value.remedy
