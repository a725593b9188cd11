"""A step's checks that need nothing first run together (the GPU test's containers: each
route is a container, about a second each on a real host), their output shown in plan order,
their journal records all written, and a failure raised as the sequential loop raised it."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pytest

from gpuwizard.actions.base import Action, ApplyContext
from gpuwizard.actions.containers import RunContainer
from gpuwizard.actions.together import InOrder, run_actions
from gpuwizard.errors import WizardError
from gpuwizard.events import ActionEvent, Event, LogLine
from gpuwizard.host.system import Host
from gpuwizard.journal import Journal


@dataclass
class Check(Action):
    """A check that waits at a barrier: it can only pass if its neighbours run with it."""

    kind = "test-check"
    mutates = False
    name: str = ""
    barrier: Any = None
    fail: bool = False
    together: bool = True

    def describe(self) -> str:
        return f"check {self.name}"

    def preview(self, host: Host) -> list[Any]:
        return []

    def starts_now(self, facts: Any) -> bool:
        return self.together

    def prepare(self, ctx: ApplyContext) -> dict[str, Any]:
        return {}

    def apply(self, ctx: ApplyContext) -> dict[str, Any]:
        ctx.log(f"{self.name}: first line")
        if self.barrier is not None:
            self.barrier.wait(timeout=5)  # BrokenBarrierError if run one after another
        ctx.log(f"{self.name}: last line")
        if self.fail:
            raise WizardError(f"{self.name} failed", "it was meant to")
        return {"name": self.name}

    @classmethod
    def undo(cls, ctx: ApplyContext, undo: dict[str, Any], result: Optional[dict[str, Any]]) -> str:
        return "nothing"


def _ctx(tmp_path: Path, events: list[Event]) -> ApplyContext:
    run = Journal(tmp_path / "state").start_run(["test"])
    return ApplyContext(Host(tmp_path), run, "gpu-test", events.append)


def test_checks_that_start_now_run_at_the_same_time_and_show_in_order(tmp_path: Path) -> None:
    barrier = threading.Barrier(3)
    events: list[Event] = []
    ctx = _ctx(tmp_path, events)
    checks = [Check(name=n, barrier=barrier) for n in ("a", "b", "c")]
    run_actions(checks, ctx)
    lines = [e.text for e in events if isinstance(e, LogLine)]
    assert lines == [
        "a: first line",
        "a: last line",
        "b: first line",
        "b: last line",
        "c: first line",
        "c: last line",
    ]
    starts = [e.action for e in events if isinstance(e, ActionEvent) and e.phase == "start"]
    assert starts == ["test-check"] * 3
    records = Journal(tmp_path / "state").read_run(ctx.run.run_id).records
    assert [r.type for r in records].count("done") == 3
    seqs = [r.seq for r in records]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_a_change_between_checks_runs_alone_in_its_place(tmp_path: Path) -> None:
    events: list[Event] = []
    ctx = _ctx(tmp_path, events)
    pair = threading.Barrier(2)
    order = [
        Check(name="a", barrier=pair),
        Check(name="b", barrier=pair),
        Check(name="alone", together=False),
        Check(name="c"),
    ]
    run_actions(order, ctx)
    firsts = [e.text for e in events if isinstance(e, LogLine) and "first" in e.text]
    assert firsts == ["a: first line", "b: first line", "alone: first line", "c: first line"]


def test_the_first_failure_in_plan_order_is_raised_after_all_finished(tmp_path: Path) -> None:
    events: list[Event] = []
    ctx = _ctx(tmp_path, events)
    barrier = threading.Barrier(3)
    checks = [
        Check(name="a", barrier=barrier),
        Check(name="b", barrier=barrier, fail=True),
        Check(name="c", barrier=barrier, fail=True),
    ]
    with pytest.raises(WizardError, match="^b failed"):
        run_actions(checks, ctx)
    records = Journal(tmp_path / "state").read_run(ctx.run.run_id).records
    assert [r.type for r in records].count("done") == 1
    assert [r.type for r in records].count("failed") == 2


def test_in_order_holds_a_later_action_s_events_until_the_earlier_finished() -> None:
    out: list[Event] = []
    order = InOrder(out.append, 2)
    late, early = order.sink(1), order.sink(0)
    late(LogLine("s", "second", "info"))
    assert out == []
    early(LogLine("s", "first", "info"))
    assert [e.text for e in out if isinstance(e, LogLine)] == ["first"]
    order.finished(0)
    assert [e.text for e in out if isinstance(e, LogLine)] == ["first", "second"]
    late(LogLine("s", "live now", "info"))
    assert [e.text for e in out if isinstance(e, LogLine)][-1] == "live now"


def test_a_test_container_starts_now_only_when_its_image_is_here() -> None:
    box = RunContainer(image="local/bb:1", command=["true"])
    assert box.starts_now({None: {"local/bb:1"}})
    assert not box.starts_now({None: {"local/other:1"}})  # it pulls: alone
    assert not box.starts_now({None: None})  # engine not reachable: alone, says why
    assert not box.starts_now({})
    bare = RunContainer(image="ubuntu", command=["true"])
    assert bare.starts_now({None: {"ubuntu:latest"}})


def test_an_engine_that_does_not_answer_runs_each_container_alone(tmp_path: Path) -> None:
    gone = f"unix://{tmp_path}/no.sock"
    boxes = [RunContainer(image="local/bb:1", docker_host=gone) for _ in range(2)]
    facts = RunContainer.group_facts(Host(Path("/")), boxes)
    assert facts == {gone: None}
    assert not boxes[0].starts_now(facts)


@dataclass
class SlowToPrepare(Check):
    """A check whose prepare takes a moment (an image lookup, a device list)."""

    def prepare(self, ctx: ApplyContext) -> dict[str, Any]:
        import time

        time.sleep(0.2)
        return {}


def test_the_journal_lists_checks_run_together_in_plan_order(tmp_path: Path) -> None:
    """The history (and a rollback's list) is drawn from the journal's order: it used to be
    the order the threads reached their intents, so the same apply read differently from run
    to run (the screenshots' history scene swapped the GPU test's two routes under load)."""
    events: list[Event] = []
    ctx = _ctx(tmp_path, events)
    barrier = threading.Barrier(3)
    checks = [
        SlowToPrepare(name="a", barrier=barrier),
        Check(name="b", barrier=barrier),
        Check(name="c", barrier=barrier),
    ]
    run_actions(checks, ctx)
    records = Journal(tmp_path / "state").read_run(ctx.run.run_id).records
    intents = [r.data["describe"] for r in records if r.type == "intent"]
    assert intents == ["check a", "check b", "check c"]
    assert [r.type for r in records].count("done") == 3
