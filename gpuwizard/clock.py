"""The wall clock as gpuwizard shows and records it: run ids, start times, deadlines, "at 19:28".

One seam so that screenshot mode can freeze it: `scripts/screenshots.py` sets
`GPUWIZARD_SCREENSHOT_CLOCK` to an epoch, and every process of that session (the app and the
detached worker it starts) then reads that instant, so regenerated screenshots are
byte-identical. Nothing else sets it; a value that is not a number is ignored (the real clock).
Durations that only pace work (sleeps, timeouts) keep using `time.monotonic()`.
"""

from __future__ import annotations

import os
import time
from typing import Optional

SCREENSHOT_ENV = "GPUWIZARD_SCREENSHOT_CLOCK"


def frozen_at() -> Optional[float]:
    """The screenshot-mode instant, or None on a normal run."""
    value = os.environ.get(SCREENSHOT_ENV)
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def now() -> float:
    """Seconds since the epoch: the real time, or the frozen instant in screenshot mode."""
    frozen = frozen_at()
    return time.time() if frozen is None else frozen


def hhmm(when: Optional[float] = None) -> str:
    """`19:28` in local time, for notices ("passed at 19:28")."""
    return time.strftime("%H:%M", time.localtime(now() if when is None else when))
