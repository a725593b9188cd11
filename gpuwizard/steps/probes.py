"""The plan's two slow read-only probes, started together when a plan begins (those that
the planned steps ask for: `Step.asks`).

Every plan asks what the container engines are (each one's `--version`: a Go binary that
takes 20-30 ms to answer) and what Docker says over its socket; the steps ask late (the
daemon-config, restart and Podman steps come after the driver, repository and package steps),
and one after the other. Started at once on two threads, the answers are ready when the
steps ask, while the earlier steps do their own probing. The probes only read; each is run
once per plan, as before, and a probe's exception reaches the step that asks for it, at the
moment it asks, as if the step had run the probe itself.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterator, Sequence, TypeVar

from gpuwizard.host import docker as engine
from gpuwizard.host import engines as eng
from gpuwizard.host.system import Host
from gpuwizard.options import Options
from gpuwizard.steps.base import Simulation, Step

ENGINES = "_engines"  # sim.facts: eng.Engines (or its Future while it is probed)
ENGINE_FACTS = "_engine_facts"  # sim.facts: engine.EngineFacts (or its Future)

T = TypeVar("T")


@contextlib.contextmanager
def started(host: Host, options: Options, sim: Simulation, steps: Sequence[Step]) -> Iterator[None]:
    """Start the probes these steps ask for; on leaving, wait for them (no probe outlives its
    plan)."""
    wanted = {key for step in steps for key in step.asks}
    if not wanted:
        yield
        return
    with ThreadPoolExecutor(max_workers=len(wanted), thread_name_prefix="gpuwizard-probe") as pool:
        if ENGINES in wanted:
            sim.facts[ENGINES] = pool.submit(eng.probe_engines, host)
        if ENGINE_FACTS in wanted:
            sim.facts[ENGINE_FACTS] = pool.submit(
                engine.probe_engine, host, options.docker_host, options.daemon_json
            )
        try:
            yield
        finally:
            for key in (ENGINES, ENGINE_FACTS):
                pending = sim.facts.get(key)
                if isinstance(pending, Future):
                    # nobody asked (a step list without the engine steps): forget it, and
                    # never let its error escape the plan
                    pending.cancel()
                    sim.facts.pop(key, None)


def answer(sim: Simulation, key: str, kind: type[T], probe: Callable[[], T]) -> T:
    """The probe's answer: the one already found, the started one once it ends, or (nothing
    started: a plan of a single step in a test) the probe run now. Kept for the plan."""
    found: Any = sim.facts.get(key)
    if isinstance(found, kind):
        return found
    if isinstance(found, Future):
        try:
            value: T = found.result()
        except BaseException:
            sim.facts.pop(key, None)  # the next step that asks probes again, as before
            raise
    else:
        value = probe()
    sim.facts[key] = value
    return value
