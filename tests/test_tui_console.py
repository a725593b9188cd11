"""The Linux console (TERM=linux): every character the app and the CLI print is one its font
has (glyphs.CONSOLE_SAFE), in as many cells as before, so the layout does not move; anywhere
else nothing changes. The screens are the snapshot tests' (a pinned sandbox host) and the demo
app's (the recorded H200), 80×24 first."""

from __future__ import annotations

import io
import os
import re
import select
import subprocess
import sys
import time
import unicodedata
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest
from rich.cells import cell_len

from gpuwizard import cli, glyphs
from gpuwizard.demo import ROOT_ENV
from gpuwizard.events import ActionEvent, LogLine, Progress, RunState, StepState
from gpuwizard.tui.messages import EngineEvent
from tests import tui_plans
from tests.test_tui_layout import demo_app, planned
from tests.test_tui_screens import BUSY, LaunchRecorder, make_app, pilot_test, settle

REPO = Path(__file__).resolve().parent.parent
RUN = "20260101T120000Z-5a5a5a"
Scene = Callable[[Any, Any], Awaitable[None]]


@pytest.fixture(autouse=True)
def demo_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(ROOT_ENV, str(tmp_path / "demo"))
    for name in ("GPUWIZARD_ASCII", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "demo"


def unsafe(text: str) -> list[str]:
    return sorted({ch for ch in text if ch not in glyphs.CONSOLE_SAFE})


def strips(app: Any) -> list[Any]:
    return list(app.screen._compositor.render_strips())


def rows(app: Any) -> list[str]:
    return ["".join(seg.text for seg in strip) for strip in strips(app)]


# -- the screens ------------------------------------------------------------------------------
async def overview(app: Any, pilot: Any) -> None:
    await settle(app, pilot)


async def step_daemon_json(app: Any, pilot: Any) -> None:
    await settle(app, pilot)
    app.open_step("daemon-config")
    await settle(app, pilot)


async def confirm_diff(app: Any, pilot: Any) -> None:
    await step_daemon_json(app, pilot)
    await pilot.press("a")
    await settle(app, pilot)
    await pilot.press("d")
    await settle(app, pilot)


async def help_screen(app: Any, pilot: Any) -> None:
    await settle(app, pilot)
    await pilot.press("question_mark")
    await settle(app, pilot)


async def command_palette(app: Any, pilot: Any) -> None:
    await settle(app, pilot)
    await pilot.press("ctrl+p")
    await settle(app, pilot)
    await pilot.pause(0.3)


async def gpu_panel(app: Any, pilot: Any) -> None:
    await settle(app, pilot)
    await pilot.press("g")
    for _ in range(50):
        if app.gpu_readings:
            break
        await pilot.pause(0.05)
    await settle(app, pilot)


def _post(app: Any, *events: Any) -> None:
    for event in events:
        app.post_message(EngineEvent(RUN, event))


async def run_output(app: Any, pilot: Any) -> None:
    await settle(app, pilot)
    app.follow_run(RUN)
    await settle(app, pilot)
    _post(
        app,
        RunState(RUN, "running"),
        StepState("packages", "done"),
        StepState("cdi", "running"),
        LogLine("cdi", "Reading package lists… “done” — 100%"),  # a command's own Unicode
        Progress("cdi", 0.75, "Setting up libnvidia-container1"),
        ActionEvent("cdi", "write-file", "start", "write the CDI spec"),
    )
    await pilot.pause(0.3)


async def failure(app: Any, pilot: Any) -> None:
    await settle(app, pilot)
    app.follow_run(RUN)
    await settle(app, pilot)
    error = {
        "cause": "Docker did not come back: unknown or invalid runtime name: nvidia",
        "remedy": "daemon.json was restored and Docker started on it.",
    }
    _post(
        app,
        StepState("restart", "running"),
        LogLine("restart", "Job for docker.service failed.", "err"),
        ActionEvent("restart", "restart-docker", "failed", "restart Docker", error),
        StepState("restart", "failed", error["cause"]),
        RunState(RUN, "failed", error["cause"]),
    )
    await settle(app, pilot)


def applied(app: Any) -> None:
    """A finished run in the journal, for the history screens."""
    from gpuwizard import wizard
    from gpuwizard.options import Options

    options = Options(steps=("repository", "packages", "daemon-config"))
    the_plan = tui_plans.planner(app.host, options)
    writer = app.journal.start_run(["apply"], run_id=RUN)
    wizard.apply(app.host, options, the_plan, writer, steps=tui_plans.steps())
    writer.append("end", {"status": "finished"})


async def history(app: Any, pilot: Any) -> None:
    applied(app)
    await settle(app, pilot)
    await pilot.press("h")
    await settle(app, pilot)


async def rollback_preview(app: Any, pilot: Any) -> None:
    await history(app, pilot)
    await pilot.press("b")
    await settle(app, pilot)


async def full_log(app: Any, pilot: Any) -> None:
    await history(app, pilot)
    await pilot.press("l")
    await settle(app, pilot)
    assert type(app.screen).__name__ == "FullLogScreen"


def no_kw() -> dict[str, Any]:
    return {}


# name: (the way there, make_app's keywords, made fresh for each test)
PINNED: dict[str, tuple[Scene, Callable[[], dict[str, Any]]]] = {
    "overview": (overview, no_kw),
    "step": (step_daemon_json, no_kw),
    "confirm-diff": (confirm_diff, no_kw),
    "help": (help_screen, no_kw),
    "command-palette": (command_palette, no_kw),
    "gpu-panel": (gpu_panel, lambda: {"feed": tui_plans.ReadingsFeed([[BUSY]])}),
    "run-output": (run_output, lambda: {"engine": LaunchRecorder()}),
    "failure": (failure, lambda: {"engine": LaunchRecorder()}),
    "history": (history, no_kw),
    "rollback-preview": (rollback_preview, no_kw),
    "full-log": (full_log, no_kw),
    "not-root": (overview, lambda: {"euid": 1000}),
}


async def demo_step(app: Any, pilot: Any) -> None:
    await planned(app, pilot)
    await pilot.press("down", "down", "enter")
    await settle(app, pilot)


async def demo_gpu(app: Any, pilot: Any) -> None:
    await planned(app, pilot)
    await pilot.press("g")
    await pilot.pause(1.5)
    await settle(app, pilot)


async def demo_gpu_raw(app: Any, pilot: Any) -> None:
    await demo_gpu(app, pilot)
    await pilot.press("v")
    await pilot.pause(1.5)
    await settle(app, pilot)


DEMO: dict[str, tuple[Scene, tuple[int, int]]] = {
    "demo-overview-80x24": (planned, (80, 24)),
    "demo-overview-60x20": (planned, (60, 20)),
    "demo-overview-120x30": (planned, (120, 30)),
    "demo-step": (demo_step, (80, 24)),
    "demo-gpu-panel": (demo_gpu, (80, 24)),
    "demo-gpu-nvidia-smi": (demo_gpu_raw, (80, 24)),
}


async def shoot(app: Any, scene: Scene, size: tuple[int, int]) -> tuple[list[Any], list[Any]]:
    """The screen as drawn, and the same frame with the console filter off."""
    async with app.run_test(size=size) as pilot:
        await scene(app, pilot)
        drawn = strips(app)
        console = getattr(app, "console_glyphs", None)
        if console is None:  # no filter to turn off: check_console_frame says what is drawn
            return drawn, drawn
        console.enabled = False
        try:
            unfiltered = strips(app)
        finally:
            console.enabled = True
        assert [s.text for s in strips(app)] == [s.text for s in drawn], "the screen moved"
    return drawn, unfiltered


def check_console_frame(name: str, size: tuple[int, int], drawn: Any, unfiltered: Any) -> None:
    text = ["".join(seg.text for seg in strip) for strip in drawn]
    raw = ["".join(seg.text for seg in strip) for strip in unfiltered]
    screen = "\n".join(text)
    # (a) only what the console's font has
    assert not unsafe(screen), f"{name}: {unsafe(screen)} on the Linux console:\n{screen}"
    # (b) the same cells: each row as wide as the screen and as the unfiltered row, each
    # segment as wide as before and in the same style; only characters differ, as mapped
    width = size[0]
    assert [cell_len(r) for r in text] == [cell_len(r) for r in raw] == [width] * size[1], name
    assert text == [glyphs.to_console(r) for r in raw], name
    for y, (after, before) in enumerate(zip(drawn, unfiltered)):
        a, b = list(after), list(before)
        assert [s.style for s in a] == [s.style for s in b], (name, y)
        assert [cell_len(s.text) for s in a] == [cell_len(s.text) for s in b], (name, y)


@pytest.mark.parametrize("name", sorted(PINNED))
@pilot_test
async def test_each_screen_on_the_linux_console_draws_only_console_characters_in_place(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TERM", "linux")
    scene, kw = PINNED[name]
    drawn, unfiltered = await shoot(make_app(tmp_path, **kw()), scene, (80, 24))
    check_console_frame(name, (80, 24), drawn, unfiltered)


@pytest.mark.parametrize("name", sorted(DEMO))
@pilot_test
async def test_the_demo_app_on_the_linux_console_draws_only_console_characters_in_place(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TERM", "linux")
    scene, size = DEMO[name]
    drawn, unfiltered = await shoot(demo_app(), scene, size)
    check_console_frame(name, size, drawn, unfiltered)


@pilot_test
async def test_the_console_filter_has_work_to_do_and_keys_are_named_in_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What it replaces is really there (Textual's rounded corners, the footer's ▏, ⏎)."""
    monkeypatch.setenv("TERM", "linux")
    drawn, unfiltered = await shoot(make_app(tmp_path), help_screen, (80, 24))
    raw = "\n".join("".join(s.text for s in strip) for strip in unfiltered)
    assert {"╭", "╯"} <= set(raw), raw
    text = "\n".join("".join(s.text for s in strip) for strip in drawn)
    assert text.startswith("┌─") and "enter" in text and "⏎" not in raw, text
    drawn, unfiltered = await shoot(make_app(tmp_path), overview, (80, 24))
    raw = "\n".join("".join(s.text for s in strip) for strip in unfiltered)
    assert "▏" in raw and "·" in raw, raw
    footer = "".join(s.text for s in drawn[-1])
    assert "|^p palette" in footer, footer


# (e) anywhere else nothing changes
@pilot_test
async def test_off_the_console_the_app_keeps_its_unicode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    app = make_app(tmp_path)
    assert app.console_glyphs is None
    async with app.run_test(size=(80, 24)) as pilot:
        await help_screen(app, pilot)
        assert not any(
            type(f).__name__ == "ConsoleGlyphs"
            for f in app.screen.query_one("*").get_line_filters()
        )
        text = "\n".join(rows(app))
        assert text.startswith("╭─") and "⏎" in text, text
        await pilot.press("escape")
        await settle(app, pilot)
        text = "\n".join(rows(app))
        assert "✓" in text and "·" in text and "▏" in text, text


# (d) the mapping itself
def test_every_replacement_is_console_safe_and_as_wide_as_what_it_replaces() -> None:
    for ch, stand_in in glyphs.CONSOLE.items():
        assert ch not in glyphs.CONSOLE_SAFE, ch
        assert not unsafe(stand_in), (ch, stand_in)
        assert cell_len(stand_in) == cell_len(ch) >= 1, (ch, stand_in)
        assert glyphs.to_console(ch) == stand_in
    for ch in glyphs.CONSOLE_SAFE:
        assert glyphs.to_console(ch) == ch
    # the ones the console really lacks and gpuwizard prints
    for ch, stand_in in {
        "·": ".",
        "—": "-",
        "–": "-",
        "…": ".",
        "▏": "|",
        "╭": "┌",
        "╯": "┘",
    }.items():
        assert glyphs.CONSOLE[ch] == stand_in


def test_to_console_keeps_the_width_of_anything_and_prints_only_console_characters() -> None:
    from gpuwizard.tui.console import console_text

    samples = [
        "".join(chr(c) for c in range(start, start + 256)) for start in range(0xA0, 0x3000, 256)
    ]
    samples += [
        "Ubuntu 24.04 · amd64 — kernel 6.8 … ≥ 13.0 → ok ✓ ✗ ↺ ▶ ○ 58°C 3×H200",
        "日本語のログ 🔎 emoji 👍🏽 ☺\ufe0f family 👨\u200d👩\u200d👧 e\u0301 soft\u00adhyphen",
        "\u00a0nbsp and\u2009thin spaces",
    ]
    for text in samples:
        printable = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cs"))
        mapped = glyphs.to_console(printable)
        assert not unsafe(mapped), (printable, unsafe(mapped))
        held = console_text(printable)  # the app's: held to rich's width, graphemes and all
        assert not unsafe(held)
        assert cell_len(held) == cell_len(printable), printable
    assert glyphs.to_console("café naïve ²") == "cafe naive 2"
    assert glyphs.to_console("plain ASCII\n\x1b[32m+\x1b[0m") == "plain ASCII\n\x1b[32m+\x1b[0m"


# (c) the CLI
class Terminal(io.StringIO):
    """A stream that says it is a terminal, as the console's tty would."""

    def isatty(self) -> bool:
        return True


def on_a_terminal(*argv: str) -> tuple[int, str]:
    """`gpuwizard ARGV` in this process, its stdout and stderr a terminal's."""
    out, err = Terminal(), Terminal()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        try:
            code = cli.main(list(argv))
        except SystemExit as exc:  # --help
            code = int(exc.code or 0)
        left = sys.stdout is out and sys.stderr is err
    finally:
        sys.stdout, sys.stderr = saved
    assert left, "the CLI left its console streams behind"
    return code, out.getvalue() + err.getvalue()


def test_the_cli_on_the_linux_console_prints_only_console_characters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TERM", "linux")
    printed = {}
    for argv in (
        ("--demo", "plan"),
        ("--demo", "status"),
        ("--demo", "doctor"),
        ("--demo", "apply", "--yes", "--no-detach"),
        ("--demo", "history"),
        ("--demo", "rollback", "--yes", "--no-detach"),
        ("--demo", "history"),
        ("--help",),
    ):
        code, text = on_a_terminal(*argv)
        assert code in (0, 1, 2), (argv, code, text)  # doctor: 1 when broken
        assert not unsafe(text), f"{argv}: {unsafe(text)}:\n{text}"
        printed[argv] = re.sub(r"\x1b\[[0-9;]*m", "", text)  # the colours a terminal gets
    assert "Host: Ubuntu 24.04.2 LTS . amd64" in printed[("--demo", "plan")]
    assert "+ hardware" in printed[("--demo", "doctor")]  # doctor's ✓
    assert "pending - " in printed[("--demo", "plan")]  # the em dash
    assert ": finished - kept" in printed[("--demo", "apply", "--yes", "--no-detach")]


def test_off_the_console_or_off_a_terminal_the_cli_prints_what_it_always_did(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # the one place the CLI's output goes through: a terminal's stream on the console only
    terminal, pipe = Terminal(), io.StringIO()
    for env, wrapped in (({"TERM": "xterm-256color"}, False), ({"TERM": "linux"}, True)):
        saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = terminal, pipe
        try:
            with glyphs.console_output(env):
                seen = sys.stdout, sys.stderr
                print("a · b", end="")
        finally:
            sys.stdout, sys.stderr = saved
        assert isinstance(seen[0], glyphs.ConsoleStream) is wrapped and seen[1] is pipe, env
        assert terminal.getvalue() == ("a . b" if wrapped else "a · b"), env
        terminal.seek(0)
        terminal.truncate()

    monkeypatch.setenv("TERM", "xterm-256color")
    _, text = on_a_terminal("--demo", "doctor")
    assert "\x1b[32m✓\x1b[0m hardware" in text, text
    _, text = on_a_terminal("--demo", "plan")
    assert " · amd64" in text and "pending — " in text
    # TERM=linux into a pipe or a file: the same bytes (an exported script, JSON stay exact)
    monkeypatch.setenv("TERM", "linux")
    cli.main(["--demo", "plan"])
    assert " · amd64" in capsys.readouterr().out


def test_gpuwizard_on_a_real_linux_console_tty_prints_only_console_characters(
    tmp_path: Path,
) -> None:
    """The real command on a pseudo-terminal, as a person on the console runs it."""
    env = dict(os.environ, TERM="linux", **{ROOT_ENV: str(tmp_path / "demo")})
    for name in ("GPUWIZARD_ASCII", "NO_COLOR"):
        env.pop(name, None)
    for argv in (("--demo", "plan"), ("--demo", "doctor")):
        code, text = run_on_a_pty([sys.executable, "-m", "gpuwizard", *argv], env)
        assert code in (0, 1, 2) and "NVIDIA" in text, (argv, code, text)
        assert not unsafe(text), f"{argv}: {unsafe(text)}:\n{text}"


def run_on_a_pty(argv: list[str], env: dict[str, str], timeout: float = 60) -> tuple[int, str]:
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env, cwd=REPO
        )
    finally:
        os.close(slave)
    chunks: list[bytes] = []
    until = time.monotonic() + timeout
    try:
        while time.monotonic() < until:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the command has gone and closed its side
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    try:
        code = proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = proc.wait()
    return code, b"".join(chunks).decode("utf-8", "replace")
