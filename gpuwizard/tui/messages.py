"""Typed messages that carry results from thread workers to the screens.

Workers never touch widgets: they post one of these, and a handler on the UI thread draws it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Optional

from textual.message import Message


@dataclass
class PlanReady(Message):
    """A fresh plan of every step (a `gpuwizard.wizard.Plan`)."""

    plan: Any
    bubble: ClassVar[bool] = False


@dataclass
class PlanFailed(Message):
    """Planning failed; `cause` and `remedy` are shown as they are."""

    cause: str
    remedy: str
    bubble: ClassVar[bool] = False


@dataclass
class HostProbed(Message):
    """Lines describing the host, keyed by topic (system, gpus, driver, docker)."""

    topic: str
    lines: list[str]
    bubble: ClassVar[bool] = False


@dataclass
class EngineEvent(Message):
    """One event from the detached worker's events file (a `gpuwizard.events` event)."""

    run_id: str
    event: Any
    bubble: ClassVar[bool] = False


@dataclass
class FollowEnded(Message):
    """The worker's event stream ended (the run finished, failed or was rolled back)."""

    run_id: str
    error: Optional[str] = None
    bubble: ClassVar[bool] = False


@dataclass
class GpuSamples(Message):
    """One round of GPU readings (a list of `GpuReading`) and, maybe, a raw nvidia-smi frame."""

    readings: list[Any]
    raw: Optional[list[str]] = None
    error: Optional[str] = None
    bubble: ClassVar[bool] = False
