"""doctor and plan read daemon.json through one parser and one set of rules
(gpuwizard.daemon_json): on every file of the corpus, and on the hand edits that broke them
apart before (a key set twice), what plan refuses doctor calls broken, with the same words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gpuwizard.doctor import BROKEN, Walk
from gpuwizard.doctor.daemon_config import probe_daemon_config
from gpuwizard.host.system import Host
from gpuwizard.options import Options
from gpuwizard.steps.base import FAILED, Simulation
from gpuwizard.steps.daemon_config import DaemonConfigStep

CORPUS = Path(__file__).parent / "daemon_json_corpus"
FILES = sorted(CORPUS.glob("*.json")) + sorted((CORPUS / "bad").glob("*.json"))
HAND_EDITS = {
    "log-driver-twice": b'{\n  "log-driver": "json-file",\n  "log-driver": "journald"\n}\n',
    "runtime-twice": b'{"runtimes": {"nvidia": {"path": "a"}, "nvidia": {"path": "b"}}}',
    "path-and-runtimetype": b'{"runtimes": {"x": {"path": "/a", "runtimeType": "io.b"}}}',
}
# Broken today but not the plan's to refuse: a default-runtime nvidia without the runtime (the
# plan adds it), and a runtime binary this bare root lacks (a fact of the host, not the file)
NOT_THE_FILE = {"default-runtime-undefined", "nvidia-runtime-binary-missing"}


def _both(root: Path, data: bytes) -> tuple[Any, Any]:
    (root / "etc/docker/daemon.json").write_bytes(data)
    host = Host(root=root)
    plan = DaemonConfigStep().plan(host, Options(), Simulation())
    walk = Walk(host, Options(), "debian", "systemd", "apt", gpu=True)
    return plan, probe_daemon_config(walk)


def _agree(plan: Any, link: Any, root: Path) -> None:
    if plan.state == FAILED:
        assert link.verdict == BROKEN, (plan, link)
        # the plan names the file under the root it was given; doctor by its system path
        reason = plan.reason.replace(f" (under {root})", "")
        assert link.summary.startswith(reason), (reason, link.summary)
    else:
        assert link.verdict != BROKEN or link.code in NOT_THE_FILE, (plan, link)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_doctor_and_plan_agree_on_every_file_of_the_corpus(sandbox: Path, path: Path) -> None:
    _agree(*_both(sandbox, path.read_bytes()), sandbox)


@pytest.mark.parametrize("name", sorted(HAND_EDITS))
def test_a_file_plan_refuses_is_never_ok_in_doctor(sandbox: Path, name: str) -> None:
    plan, link = _both(sandbox, HAND_EDITS[name])
    assert plan.state == FAILED
    _agree(plan, link, sandbox)


def test_a_key_dockerd_gets_from_its_unit_is_judged_alike(sandbox: Path) -> None:
    unit = sandbox / "lib/systemd/system/docker.service"
    unit.parent.mkdir(parents=True)
    unit.write_text("[Service]\nExecStart=/usr/bin/dockerd -H fd:// --log-driver=journald\n")
    plan, link = _both(sandbox, b'{"log-driver": "json-file"}\n')
    assert plan.state == FAILED
    _agree(plan, link, sandbox)
    assert link.code == "daemon-flag-conflict"
