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
from gpuwizard.host import early_probes
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


# -- started before the plan (host/early_probes.py) -----------------------------------------


def _early_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "gpuwizard-early-probe"]


def test_probes_started_before_the_plan_are_its_answers_and_end_with_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The CLI starts both probes before it imports the steps; the plan takes those answers
    (nothing is probed twice) and, when it ends, no probe thread is left (a worker forked
    after the plan must start single-threaded)."""
    calls: list[str] = []
    release = threading.Event()

    def engines(host: Host) -> str:
        calls.append("engines")
        release.wait(10)
        return "early engines"

    def facts(host: Host, docker_host: Any, daemon_json: Any) -> str:
        calls.append("engine")
        release.wait(10)
        return "early engine"

    monkeypatch.setattr(eng, "probe_engines", engines)
    monkeypatch.setattr(engine, "probe_engine", facts)
    host, options, sim = Host(tmp_path), Options(), Simulation()
    early_probes.prefetch(host, options)
    assert len(_early_threads()) == 2  # running while the caller goes on
    with probes.started(host, options, sim, [DaemonConfigStep(), PodmanStep()]):
        release.set()
        assert probes.answer(sim, probes.ENGINES, str, lambda: "asked late") == "early engines"
        assert probes.answer(sim, probes.ENGINE_FACTS, str, lambda: "late") == "early engine"
    assert sorted(calls) == ["engine", "engines"]
    assert _early_threads() == []
    assert host.early_probes == {}  # the next plan probes afresh


def test_a_plan_with_other_options_asks_again_and_still_waits_for_the_early_probes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    asked: list[Any] = []

    def facts(host: Host, docker_host: Any, daemon_json: Any) -> str:
        asked.append(docker_host)
        return f"engine at {docker_host}"

    monkeypatch.setattr(eng, "probe_engines", lambda host: "engines")
    monkeypatch.setattr(engine, "probe_engine", facts)
    host, sim = Host(tmp_path), Simulation()
    early_probes.prefetch(host, Options(docker_host="unix:///run/one.sock"))
    other = Options(docker_host="unix:///run/other.sock")
    with probes.started(host, other, sim, [DaemonConfigStep()]):
        got = probes.answer(sim, probes.ENGINE_FACTS, str, lambda: "late")
    assert got == "engine at unix:///run/other.sock"
    assert sorted(asked) == ["unix:///run/one.sock", "unix:///run/other.sock"]
    assert _early_threads() == []


def test_the_cli_starts_the_engine_probes_before_it_imports_the_steps(tmp_path: Path) -> None:
    """In a fresh interpreter, as a user runs it: when `gpuwizard plan` first asks what the
    engines are, the steps and actions (0.1 s of imports) are not imported yet, so the
    engines answer while they are. Fails where the probes start inside the plan."""
    script = (
        "import sys\n"
        "from gpuwizard.host import engines as eng\n"
        "real = eng.probe_engines\n"
        "seen = []\n"
        "def probe(host):\n"
        "    seen.append(sorted(m for m in ('gpuwizard.wizard', 'gpuwizard.actions') "
        "if m in sys.modules))\n"
        "    return real(host)\n"
        "eng.probe_engines = probe\n"
        "from gpuwizard import cli\n"
        f"code = cli.main(['plan', '--root', {str(tmp_path)!r}, '--state-dir', "
        f"{str(tmp_path / 'state')!r}])\n"
        "print('SEEN', seen, code)\n"
    )
    import subprocess
    import sys

    res = subprocess.run(  # noqa: S603
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert "SEEN [[]]" in res.stdout, res.stdout[-2000:] + res.stderr[-2000:]
