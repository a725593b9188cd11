"""Shared fixtures. Heavy fixtures (a real dockerd, a debootstrap root, sshd) live in their own
plugin modules under tests/ and are registered here."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

pytest_plugins: list[str] = [
    "sshd",
    "tests.dockerd",
    "tests.docker_versions",
    "debroot",
    "rpmrepo",
    "systemd_bed",
    "tests.fleet_hosts",
]


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """An empty root folder with the directories a system has."""
    root = tmp_path / "root"
    for d in ("etc/docker", "etc/apt/sources.list.d", "usr/share/keyrings", "var/lib", "usr/bin"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "etc/os-release").write_text(
        'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\nPRETTY_NAME="Debian GNU/Linux 12"\n'
    )
    return root


@pytest.fixture
def gpuwizard_cmd() -> list[str]:
    """How tests start the real CLI in a subprocess."""
    return [sys.executable, "-m", "gpuwizard"]


@pytest.fixture(autouse=True)
def _no_crash_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GPUWIZARD_CRASH_AT", raising=False)
    os.environ.setdefault("NO_COLOR", "1")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop the gpg-agents this run's test keys started (each holds an inotify instance of
    root's 128; runs after runs, they outlived their folders)."""
    from debroot import stop_gpg_agents

    stop_gpg_agents(str(session.config._tmp_path_factory.getbasetemp()))  # type: ignore[attr-defined]
