"""The live GPU panel: per-GPU sparklines and numbers, or the raw nvidia-smi frame.

It draws only; the App polls (dolphie's shape) and hands it readings. Sparklines use a fixed
0–100 % scale so an idle GPU draws nothing new, and `LineCanvas` repaints only changed cells.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from textual.content import Content

from gpuwizard.glyphs import ascii_only
from gpuwizard.tui.gpu_feed import GpuHistory, GpuReading
from gpuwizard.tui.widgets.line_canvas import LineCanvas

_BARS = "▁▁▂▃▄▅▆▇█"  # 0 % still draws a floor, so an idle GPU reads as idle, not absent
SPARK = 16


_BARS_ASCII = "_..-=+*#@"  # the Linux console's font has no eighth blocks


def sparkline(values: Sequence[float], width: int = SPARK) -> str:
    """Values in percent as block characters, newest on the right, padded on the left."""
    ascii_bars = ascii_only()
    bars = _BARS_ASCII if ascii_bars else _BARS
    tail = list(values)[-width:]
    chars = [bars[min(8, max(0, round(v / 100 * 8)))] for v in tail]
    return (("." if ascii_bars else "·") * (width - len(chars))) + "".join(chars)


def _short_name(name: str) -> str:
    for prefix in ("NVIDIA ", "Tesla ", "GeForce "):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    return name[:12]


def _fmt(value: Optional[float], unit: str, width: int) -> str:
    return ("—" if value is None else f"{value:.0f}{unit}").rjust(width)


def spark_widths(width: int) -> tuple[int, int]:
    """The two sparklines' widths for a panel `width` cells wide: the numbers always fit
    (45 cells of them), the minute of history gives way (down to 4 and 3 cells)."""
    room = max(7, width - 45)
    util = min(SPARK, max(4, room * 2 // 3))
    return util, min(10, max(3, room - util))


def gpu_line(r: GpuReading, history: GpuHistory, width: int = 80) -> Content:
    util_w, mem_w = spark_widths(width)
    util = sparkline(history.util.get(r.index, ()), util_w)
    mem = sparkline(history.mem.get(r.index, ()), mem_w)
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


_FILLER = " -="  # what a column of nvidia-smi's table may hold and still be squeezed


def _boxes(lines: list[str]) -> list[list[int]]:
    """Consecutive rows with the same column borders (| and +): one box of the frame each."""
    groups: list[list[int]] = []
    last: object = None
    for i, line in enumerate(lines):
        borders = frozenset(c for c, ch in enumerate(line) if ch in "|+") or None
        if borders is None or borders != last:
            groups.append([i])
        else:
            groups[-1].append(i)
        last = borders
    return groups


def _squeeze(rows: list[str], longest: int, target: int) -> list[str]:
    """Drop columns blank (or rule) on every row, widest runs first, one of each run kept."""
    padded = [row.ljust(longest) for row in rows]
    runs: list[list[int]] = []
    for c in range(longest):
        if all(row[c] in _FILLER for row in padded):
            if runs and runs[-1][-1] == c - 1:
                runs[-1].append(c)
            else:
                runs.append([c])
    drop: set[int] = set()
    while longest - len(drop) > target:
        run = max(runs, key=len, default=[])
        if len(run) <= 1:
            break
        drop.add(run.pop())
    # then, from the right, a last blank column next to a border: "ECC |" becomes "ECC|"
    for c in reversed([r[0] for r in runs if len(r) == 1]):
        if longest - len(drop) <= target:
            break
        if 0 < c < longest - 1 and all(row[c - 1] in "|+" or row[c + 1] in "|+" for row in padded):
            drop.add(c)
    return ["".join(ch for c, ch in enumerate(row) if c not in drop) for row in padded]


def _min_width(rows: list[str], longest: int) -> int:
    return len(_squeeze(rows, longest, 0)[0]) if rows else 0


def fit_frame(lines: list[str], width: int) -> list[str]:
    """nvidia-smi's frame (91 columns) narrowed to `width` without losing a character of text.

    nvidia-smi pads each box of its table into aligned columns, so within a box a column
    that is blank (or part of a rule) on every row can go without moving anything out of
    line; the widest runs go first, never the last column of one, so words stay apart. Every
    box shrinks to the same width, so the frame's right border stays one line. A frame that
    cannot shrink enough comes back as narrow as it gets.
    """
    longest = max((len(line) for line in lines), default=0)
    if longest <= width:
        return lines
    boxes = [g for g in _boxes(lines) if any(ch in "|+" for ch in lines[g[0]])]
    target = max([width] + [_min_width([lines[i] for i in g], longest) for g in boxes])
    out = list(lines)
    for g in boxes:
        for i, row in zip(g, _squeeze([lines[i] for i in g], longest, target)):
            out[i] = row
    return [line.rstrip() for line in out]


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
        self.set_class(self.raw_view, "-raw")
        if self.raw_view:
            text = fit_frame(
                [line.rstrip() for line in (raw or ["waiting for nvidia-smi…"])],
                self.size.width or 80,
            )
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
        width = self.size.width or 80
        util_w, mem_w = spark_widths(width)
        util_label = "utilization, last minute" if util_w >= SPARK else "utilization"
        head = Content.styled(
            f"{'#':<2}{'GPU':<13}{util_label:<{util_w + 5}} "
            f"{'memory' if mem_w >= 6 else 'mem':<{mem_w}} "
            f"{'used':>11} {'temp':>5} {'power':>5}",
            "$foreground-muted",
        )
        lines = [head] + [gpu_line(r, history, width) for r in readings]
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
