"""`gpuwizard fleet`: the callback's file drawn at 80 columns and as JSON; a wrong file is a
clear error (cause and remedy), never a traceback. The end-to-end path, from a real
ansible-playbook run, is in tests/test_ansible.py; these cover what a person can hand it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from gpuwizard.fleet import load, render


def _fleet(path: Path, hosts: dict[str, object]) -> Path:
    path.write_text(json.dumps({"gpuwizard_fleet": 1, "playbook": "site.yml", "hosts": hosts}))
    return path


def _gw(step_states: dict[str, str], **host: object) -> dict[str, object]:
    return {
        "host": {"gpus": ["NVIDIA H200"] * 8, "driver": "580.159.04", "toolkit": "1.17.8-1"} | host,
        "steps": [{"step": k, "state": v} for k, v in step_states.items()],
    }


def test_eight_servers_fit_80_columns_even_with_long_names_and_failures(tmp_path: Path) -> None:
    steps = {
        "driver": "done",
        "repository": "done",
        "packages": "done",
        "cdi": "done",
        "daemon-config": "done",
        "restart": "done",
        "gpu-test": "pending",
        "containerd": "done",
    }
    hosts: dict[str, object] = {
        f"gpu-node-{i:02d}.rack7.datacenter.example.com": {"result": "ok", "gpuwizard": _gw(steps)}
        for i in range(7)
    }
    hosts["gpu-node-07.rack7.datacenter.example.com"] = {
        "result": "failed",
        "msg": "Step daemon-config is failed: /etc/docker/daemon.json sets the key "
        "'log-driver' twice (again at line 3) -> Remove one of them and run gpuwizard again.",
        "gpuwizard": _gw(steps | {"daemon-config": "failed"}),
    }
    view = load(str(_fleet(tmp_path / "f.json", hosts)))
    text = render(view)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80, text
    rows = [line for line in lines if line.startswith("gpu-node") and "×" in line]
    assert len(rows) == 8 and all("8× H200" in r and "580.159.04" in r for r in rows), text
    assert rows[-1].endswith("FAILED") and "✗" in rows[-1]
    assert rows[0].startswith("gpu-node-00 ")  # the short name: the FQDN does not fit
    assert "ctd" in lines[0]  # an engine step shows only where a host has it
    flat = " ".join(text.split())  # the message wraps at 80 columns
    assert "sets the key 'log-driver' twice (again at line 3) -> Remove one of them" in flat
    assert view.to_json()["counts"] == {"failed": 1, "ok": 7}


def test_the_cli_exits_1_when_a_host_failed_and_gives_json(tmp_path: Path) -> None:
    f = _fleet(
        tmp_path / "f.json",
        {"a": {"result": "unreachable", "msg": "ssh: connect to host a port 22: refused"}},
    )
    r = subprocess.run(
        [sys.executable, "-m", "gpuwizard", "fleet", str(f), "--json"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert doc["hosts"][0]["result"] == "unreachable" and doc["hosts"][0]["gpus"] == []
    assert doc["hosts"][0]["known"] is False  # not "no GPU": gpuwizard never ran there


def test_a_file_that_is_not_a_fleet_file_is_a_clear_error(tmp_path: Path) -> None:
    cases = {
        "missing.json": None,
        "plan.json": json.dumps({"steps": []}),
        "broken.json": "{",
    }
    for name, content in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_text(content)
        r = subprocess.run(
            [sys.executable, "-m", "gpuwizard", "fleet", str(path)], capture_output=True, text=True
        )
        assert r.returncode == 1, name
        assert "Traceback" not in r.stderr, r.stderr
        assert r.stderr.startswith("error: ") and "  -> " in r.stderr, r.stderr
        assert "gpuwizard.gpu.fleet" in r.stderr, r.stderr
