"""The console script's quick exit (cli.run): the interpreter is not torn down after the
command (0.03-0.05 s of every call), but everything an exit owes still happens: the exit
status, the output flushed to a file or a pipe, the atexit handlers (a bundle's temporary key
folder is removed by one), a closed pipe met quietly. Each runs a fresh interpreter, as a
user's shell does."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

from gpuwizard import __version__

# an object freed only by the interpreter's teardown, an atexit handler, and (LINGER=1) a
# thread still running when the command ends
PROBE = (
    "import atexit, os, sys, threading, time\n"
    "if os.environ.get('LINGER'):\n"
    "    def linger():\n"
    "        time.sleep(0.3)\n"
    "        sys.stderr.write('THREAD DONE\\n')\n"
    "    threading.Thread(target=linger).start()\n"
    "class Freed:\n"
    "    def __del__(self):\n"
    "        sys.stderr.write('TORN DOWN\\n')\n"
    "keep = Freed()\n"
    "atexit.register(lambda: sys.stderr.write('ATEXIT\\n'))\n"
    "from gpuwizard.cli import run\n"
    "run(sys.argv[1:])\n"
)


def _run(
    *args: str, stdout: object = subprocess.PIPE, env: Optional[dict[str, str]] = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        [sys.executable, "-c", PROBE, *args],
        env={**os.environ, **(env or {})},
        stdout=stdout,  # type: ignore[arg-type]
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
    )


def test_the_command_exits_without_the_teardown_but_runs_the_atexit_handlers() -> None:
    res = _run("--version")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"gpuwizard {__version__}"
    assert "ATEXIT" in res.stderr
    assert "TORN DOWN" not in res.stderr  # the ordinary exit frees it, and says so


def test_a_thread_still_running_gets_the_ordinary_exit_which_waits_for_it() -> None:
    res = _run("--version", env={"LINGER": "1"})
    assert res.returncode == 0, res.stderr
    assert "THREAD DONE" in res.stderr and "TORN DOWN" in res.stderr


def test_a_usage_error_keeps_its_status_and_its_words() -> None:
    res = _run("--no-such-option")
    assert res.returncode == 2
    assert "unrecognized arguments: --no-such-option" in res.stderr
    assert "ATEXIT" in res.stderr


def test_a_commands_failure_status_and_output_reach_a_file(tmp_path: Path) -> None:
    """Output to a file is block-buffered: without the flush it would be lost."""
    out = tmp_path / "out.json"
    with open(out, "w") as fh:
        res = _run("--demo", "plan", "--json", "--state-dir", str(tmp_path / "state"), stdout=fh)
    assert res.returncode == 0, res.stderr
    text = out.read_text()
    assert text.rstrip().endswith("}") and '"steps"' in text


def test_a_reader_that_goes_away_is_met_quietly(tmp_path: Path) -> None:
    """`gpuwizard … | head -1`: the rest of the output has nowhere to go; no traceback and no
    "Exception ignored" at exit. The pipe holds one page, so the 20 KB plan cannot all be
    written before the reader leaves."""
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, getattr(fcntl, "F_SETPIPE_SZ", 1031), 4096)
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-c", PROBE, "--demo", "plan", "--json", "--state-dir",
         str(tmp_path / "state")],
        stdout=write_end,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    os.close(write_end)
    assert proc.stderr is not None
    with os.fdopen(read_end) as reader:
        first = reader.readline()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 0
    assert first.strip() == "{"
    assert "Traceback" not in err and "Exception ignored" not in err
