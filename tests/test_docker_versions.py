"""The Docker version matrix fixture itself: each engine starts, is the version it says, runs a
container, and shows the CDI default of its release (the matrices built on it rely on that)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.docker_versions import ALL_VERSIONS, RELEASES, DockerVersions

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_engine_of_each_version_runs_a_container(versioned_dockerd, version: str) -> None:
    d = versioned_dockerd(version, stand_ins=False)
    server = d.docker("version", "--format", "{{.Server.Version}}").stdout.strip()
    assert server.startswith(version + "."), server
    if version in RELEASES:  # the host's CLI may be any version; these come with their own
        client = d.docker("version", "--format", "{{.Client.Version}}").stdout.strip()
        assert client.startswith(version + "."), client
    out = d.docker("run", "--rm", "local/bb:1", "/bin/echo", "hi").stdout
    assert out == "hi\n"


def test_cdi_default_differs_by_version(versioned_dockerd, tmp_path: Path) -> None:
    """28.5 resolves a CDI device without features.cdi; 26.1 needs it."""
    specs = tmp_path / "cdi"
    specs.mkdir()
    (specs / "t.json").write_text(
        json.dumps(
            {
                "cdiVersion": "0.5.0",
                "kind": "example.com/thing",
                "devices": [{"name": "one", "containerEdits": {"env": ["THING=one"]}}],
            }
        )
    )
    conf = {"cdi-spec-dirs": [str(specs)]}
    run = ("run", "--rm", "--device", "example.com/thing=one", "local/bb:1", "/bin/env")
    new = versioned_dockerd("28.5", stand_ins=False, daemon_json=json.dumps(conf).encode())
    assert "THING=one" in new.docker(*run).stdout
    old = versioned_dockerd("26.1", stand_ins=False, daemon_json=json.dumps(conf).encode())
    refused = old.docker(*run, check=False)
    assert refused.returncode != 0
    assert 'could not select device driver "cdi"' in refused.stderr
    on = versioned_dockerd(
        "26.1",
        stand_ins=False,
        daemon_json=json.dumps({**conf, "features": {"cdi": True}}).encode(),
    )
    assert "THING=one" in on.docker(*run).stdout


def test_cache_is_reused_and_keyed(docker_versions: DockerVersions) -> None:
    for v in RELEASES:
        b = docker_versions.binaries(v)
        assert b.bin is not None and (b.bin.parent / "manifest.json").exists()
        assert b.bin.parent == docker_versions.folder(v)
        assert b.debian_versions["docker.io"].startswith(v + ".")
    assert docker_versions.folder("26.1") != docker_versions.folder("28.5")
