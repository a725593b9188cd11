"""The plan's engine probes, started before the plan (and before the steps are imported).

A CLI call spends 0.1-0.15 s importing the steps, actions and host modules before its plan
asks anything; the two slow read-only probes (steps/probes.py: each engine's `--version`,
Docker's socket) mostly wait on other programs, so started as soon as the command has its
host and options they answer during those imports. This module imports only what the probes
need. The first plan on the host takes the answers its options ask for and waits for every
started thread to end: no probe outlives that plan, and a worker forked after it starts
single-threaded, as before.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any, Callable, Sequence

from gpuwizard.host import docker as engine
from gpuwizard.host import engines as eng
from gpuwizard.host.system import Host
from gpuwizard.options import Options

ENGINES = "_engines"  # sim.facts: eng.Engines (or its Future while it is probed)
ENGINE_FACTS = "_engine_facts"  # sim.facts: engine.EngineFacts (or its Future)


class _Early:
    """One probe started before its plan: its answer, the thread that finds it, and the
    question it was asked (a plan with other options asks again)."""

    def __init__(self, question: tuple[Any, ...], probe: Callable[[], Any]) -> None:
        self.question = question
        self.future: Future[Any] = Future()
        self.thread = threading.Thread(target=self._work, args=(probe,), daemon=True)
        self.thread.name = "gpuwizard-early-probe"
        self.thread.start()

    def _work(self, probe: Callable[[], Any]) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            self.future.set_result(probe())
        except BaseException as exc:  # the asking step raises it, as if it had probed
            self.future.set_exception(exc)


def questions(options: Options) -> dict[str, tuple[Any, ...]]:
    return {ENGINES: (), ENGINE_FACTS: (options.docker_host, options.daemon_json)}


def prefetch(host: Host, options: Options) -> None:
    """Start both probes now, for the next plan on this host."""
    if host.early_probes:
        return
    asked = questions(options)
    host.early_probes[ENGINES] = _Early(asked[ENGINES], lambda: eng.probe_engines(host))
    host.early_probes[ENGINE_FACTS] = _Early(
        asked[ENGINE_FACTS],
        lambda: engine.probe_engine(host, options.docker_host, options.daemon_json),
    )


def take(host: Host, options: Options) -> tuple[dict[str, Future[Any]], list[_Early]]:
    """The started probes this plan's options ask (by key), and every one started (to wait
    for). They are the host's no longer: a later plan probes afresh."""
    early = dict(host.early_probes)
    host.early_probes.clear()
    asked = questions(options)
    usable = {k: e.future for k, e in early.items() if e.question == asked.get(k)}
    return usable, list(early.values())


def join(early: Sequence[_Early]) -> None:
    """Wait for the started probes' threads (each ends when its probe does)."""
    for e in early:
        e.thread.join()
