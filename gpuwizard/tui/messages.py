"""Typed messages that carry results from thread workers to the screens.

Workers never touch widgets: they post one of these, and a handler on the UI thread draws it.
They do not bubble: the App receives them and hands a copy to the screen on top.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from textual.message import Message


@dataclass
class PlanReady(Message, bubble=False):
    """A fresh plan of every step (a `gpuwizard.wizard.Plan`)."""

    plan: Any


@dataclass
class PlanFailed(Message, bubble=False):
    """Planning failed; `cause` and `remedy` are shown as they are."""

    cause: str
    remedy: str


@dataclass
class HostProbed(Message, bubble=False):
    """Lines describing the host, keyed by topic (system, gpus, driver, docker)."""

    topic: str
    lines: list[str]


@dataclass
class EngineEvent(Message, bubble=False):
    """One event from the detached worker's events file (a `gpuwizard.events` event)."""

    run_id: str
    event: Any


@dataclass
class EngineBatch(Message, bubble=False):
    """Every event the worker wrote since the last batch: one message, not one per line
    (apt can print tens of thousands of lines a second)."""

    run_id: str
    events: list[Any]


@dataclass
class FollowEnded(Message, bubble=False):
    """The worker's event stream ended (the run finished, failed or was rolled back)."""

    run_id: str
    error: Optional[str] = None


@dataclass
class GpuSamples(Message, bubble=False):
    """One round of GPU readings (a list of `GpuReading`) and, maybe, a raw nvidia-smi frame."""

    readings: list[Any]
    raw: Optional[list[str]] = None
    error: Optional[str] = None
