"""The live GPU panel: per-GPU sparklines and numbers, or the raw nvidia-smi frame.

It draws only; the App polls (dolphie's shape) and hands it readings. Sparklines use a fixed
0–100 % scale so an idle GPU draws nothing new, and `LineCanvas` repaints only changed cells.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from textual.content import Content

from gpuwizard.tui.gpu_feed import GpuHistory, GpuReading
from gpuwizard.tui.widgets.line_canvas import LineCanvas

_BARS = "▁▁▂▃▄▅▆▇█"  # 0 % still draws a floor, so an idle GPU reads as idle, not absent
SPARK = 16


def sparkline(values: Sequence[float], width: int = SPARK) -> str:
    """Values in percent as block characters, newest on the right, padded on the left."""
    tail = list(values)[-width:]
    chars = [_BARS[min(8, max(0, round(v / 100 * 8)))] for v in tail]
    return ("·" * (width - len(chars))) + "".join(chars)


def _short_name(name: str) -> str:
    for prefix in ("NVIDIA ", "Tesla ", "GeForce "):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    return name[:12]


def _fmt(value: Optional[float], unit: str, width: int) -> str:
    return ("—" if value is None else f"{value:.0f}{unit}").rjust(width)


def gpu_line(r: GpuReading, history: GpuHistory) -> Content:
    util = sparkline(history.util.get(r.index, ()))
    mem = sparkline(history.mem.get(r.index, ()), 10)
    mem_text = (
        "—"
        if r.mem_used is None or not r.mem_total
        else f"{r.mem_used / 1024:.1f}/{r.mem_total / 1024:.0f}G"
    )
    return Content.from_markup(
        # few style changes: each costs ~25 bytes of escapes on every repaint over SSH
        "$idx $name [$accent]$util[/]$pct [$secondary]$mem[/] $memt $temp $power",
        idx=str(r.index),
        name=_short_name(r.name).ljust(12),
        util=util,
        pct=_fmt(r.util, "%", 5),
        mem=mem,
        memt=mem_text.rjust(11),
        temp=_fmt(r.temp, "°C", 5),
        power=_fmt(r.power, "W", 5),
    )


class GpuPanel(LineCanvas):
    """Shown and hidden with `g`; `v` switches between the gauges and raw nvidia-smi."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.raw_view = False
        self._raw_height = 0
        self.set_lines(
            [Content.styled("GPU panel: waiting for the first sample…", "$foreground-muted")]
        )

    def show_error(self, text: str) -> None:
        self.set_lines([Content.styled("GPU panel: " + text, "$warning")])

    def show(
        self, readings: list[GpuReading], history: GpuHistory, raw: Optional[list[str]] = None
    ) -> None:
        if self.raw_view:
            text = [line.rstrip() for line in (raw or ["waiting for nvidia-smi…"])]
            while text and not text[0]:
                text.pop(0)  # blank lines between frames must not shift the whole frame
            while text and not text[-1]:
                text.pop()
            # frames differ in length now and then; a stable height keeps every repaint to
            # the lines that changed instead of a new layout
            self._raw_height = max(self._raw_height, len(text))
            text += [""] * (self._raw_height - len(text))
            self.set_lines([Content(line) for line in text])
            return
        self._raw_height = 0
        head = Content.styled(
            f"{'#':<2}{'GPU':<13}{'utilization, last minute':<21} {'memory':<10} "
            f"{'used':>11} {'temp':>5} {'power':>5}",
            "$foreground-muted",
        )
        lines = [head] + [gpu_line(r, history) for r in readings]
        procs = [(r.index, p) for r in readings for p in r.processes]
        if procs:
            shown = ", ".join(
                f"{name} ({pid}) {mem:.0f}M on {i}" for i, (pid, name, mem) in procs[:3]
            )
            more = f" +{len(procs) - 3}" if len(procs) > 3 else ""
            lines.append(Content.styled(f"procs {shown}{more}", "$foreground-muted"))
        else:
            lines.append(Content.styled("procs none", "$foreground-muted"))
        self.set_lines(lines)
