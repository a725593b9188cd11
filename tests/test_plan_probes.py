"""The plan's shared probes (steps/probes.py): started together when the plan begins, each
answered once, a probe's error raised in the step that asks, nothing left running after the
plan. The probes here are STAND-INS (functions that meet at a barrier), since what is tested is
the timing and the hand-over, not what a probe reads."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from gpuwizard.host import docker as engine
from gpuwizard.host import engines as eng
from gpuwizard.host.system import Host
from gpuwizard.options import Options
from gpuwizard.steps import probes
from gpuwizard.steps.base import Simulation
from gpuwizard.steps.daemon_config import DaemonConfigStep, engine_facts
from gpuwizard.steps.podman import PodmanStep, engines_of


def test_both_probes_run_at_the_same_time(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each stand-in waits for the other at a barrier: probed one after the other, as the
    steps used to, the first would wait alone and the barrier break."""
    meet = threading.Barrier(2, timeout=10)
    calls: list[str] = []

    def engines(host: Host) -> str:
        calls.append("engines")
        meet.wait()
        return "the engines"

    def facts(host: Host, docker_host: Any, daemon_json: Any) -> str:
        calls.append("engine")
        meet.wait()
        return "the engine"

    monkeypatch.setattr(eng, "probe_engines", engines)
    monkeypatch.setattr(engine, "probe_engine", facts)
    sim = Simulation()
    with probes.started(Host(tmp_path), Options(), sim, [DaemonConfigStep(), PodmanStep()]):
        assert probes.answer(sim, probes.ENGINES, str, lambda: "asked late") == "the engines"
        assert probes.answer(sim, probes.ENGINE_FACTS, str, lambda: "asked late") == "the engine"
        # kept for the plan: asked again, nothing runs again
        assert probes.answer(sim, probes.ENGINES, str, lambda: "again") == "the engines"
    assert sorted(calls) == ["engine", "engines"]


def test_only_the_probes_the_planned_steps_ask_for_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    started: list[str] = []
    monkeypatch.setattr(eng, "probe_engines", lambda host: started.append("engines"))
    monkeypatch.setattr(engine, "probe_engine", lambda *a: started.append("engine"))
    sim = Simulation()
    with probes.started(Host(tmp_path), Options(), sim, [DaemonConfigStep()]):
        pass
    assert started == ["engine"]
    assert sim.facts == {}  # nobody asked: nothing of it is left in the plan


def test_a_probes_error_reaches_the_step_that_asks_and_the_next_asks_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """As when each step probed itself: a normal user's plan meets "permission denied" in the
    step that asks (which reports that step's state as unknown), and a later step probes
    again."""
    tries: list[int] = []

    def facts(host: Host, docker_host: Any, daemon_json: Any) -> Any:
        tries.append(1)
        if len(tries) == 1:
            raise PermissionError(13, "Permission denied", "/run/docker.sock")
        return "second answer"

    monkeypatch.setattr(engine, "probe_engine", facts)
    host, options, sim = Host(tmp_path), Options(), Simulation()
    with probes.started(host, options, sim, [DaemonConfigStep()]):
        with pytest.raises(PermissionError):
            engine_facts(host, options, sim)
        monkeypatch.setattr(engine, "EngineFacts", str)  # the retry's answer is a str here
        assert engine_facts(host, options, sim) == "second answer"
    assert len(tries) == 2


def test_without_a_started_probe_the_step_probes_itself(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(eng, "probe_engines", lambda host: "probed now")
    monkeypatch.setattr(eng, "Engines", str)
    assert engines_of(Host(tmp_path), Simulation()) == "probed now"
