"""Run a step's actions: changes one at a time, in order; checks that need nothing first (the
GPU test's containers, whose image is here) at the same time.

Each way to the GPU is its own container, and on a real host each one takes about a second
(runc, the NVIDIA hook, nvidia-smi); run one after another, four routes and a CUDA image keep
the user waiting five seconds for answers that do not depend on each other. Run together,
their output would interleave line by line (two nvidia-smi tables cut into each other), so
it is shown in plan order: the first streams live, each next one's lines are held until the
one before it has finished, then shown at once. The journal gets every record as before
(appends are serialised by RunWriter), and a failure is raised as the sequential loop would
have raised it: the first failing action's, in plan order, once all have finished.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Sequence

from gpuwizard.actions.base import Action, ApplyContext
from gpuwizard.events import Event, EventSink


class InOrder:
    """Events of N concurrent actions, passed on in action order: action k's events are held
    until actions 0..k-1 have finished."""

    def __init__(self, emit: EventSink, n: int) -> None:
        self._emit = emit
        self._lock = threading.Lock()
        self._turn = 0
        self._held: list[list[Event]] = [[] for _ in range(n)]
        self._finished = [False] * n

    def sink(self, index: int) -> EventSink:
        def put(event: Event) -> None:
            with self._lock:
                if index == self._turn:
                    self._emit(event)
                else:
                    self._held[index].append(event)

        return put

    def finished(self, index: int) -> None:
        with self._lock:
            self._finished[index] = True
            while self._turn < len(self._finished) and self._finished[self._turn]:
                self._turn += 1
                if self._turn < len(self._held):
                    for event in self._held[self._turn]:
                        self._emit(event)
                    self._held[self._turn] = []


def run_actions(actions: Sequence[Action], ctx: ApplyContext) -> None:
    """The step's actions, in order; consecutive ones that start now run together."""
    kinds = {type(a) for a in actions if type(a).starts_now is not Action.starts_now}
    facts = {k: k.group_facts(ctx.host, [a for a in actions if type(a) is k]) for k in kinds}
    i = 0
    while i < len(actions):
        j = i
        while j < len(actions) and actions[j].starts_now(facts.get(type(actions[j]))):
            j += 1
        if j - i > 1:
            run_together(actions[i:j], ctx)
            i = j
            continue
        action = actions[i]
        action.step = ctx.step
        action.run(ctx)
        i += 1


def run_together(actions: Sequence[Action], ctx: ApplyContext) -> None:
    """Run these actions at once; events in order; the first failure (in order) re-raised.
    Their intents are journaled first, one by one in plan order (a check's prepare is
    quick), so the journal's order does not depend on which thread is scheduled first."""
    order = InOrder(ctx.emit, len(actions))
    errors: list[Optional[BaseException]] = [None] * len(actions)
    contexts = [
        ApplyContext(ctx.host, ctx.run, ctx.step, order.sink(i)) for i in range(len(actions))
    ]
    begun: dict[int, int] = {}
    for index, action in enumerate(actions):
        action.step = ctx.step
        try:
            begun[index] = action.begin(contexts[index])
        except BaseException as failure:  # re-raised below, in plan order
            errors[index] = failure

    def one(index: int) -> None:
        try:
            if index in begun:
                actions[index].finish(contexts[index], begun[index])
        except BaseException as exc:  # re-raised below, in plan order
            errors[index] = exc
        finally:
            order.finished(index)

    with ThreadPoolExecutor(max_workers=len(actions), thread_name_prefix="gw-check") as pool:
        list(pool.map(one, range(len(actions))))
    for exc in errors:
        if exc is not None:
            raise exc
