"""The command runner: the one seam through which gpuwizard starts programs.

Argument lists only (never a shell), `LC_ALL=C` so output can be parsed, output streamed
line by line to a callback as it is produced, a timeout, and the tail kept for errors.
Demo mode swaps this object, not the code that calls it.
"""

from __future__ import annotations

import collections
import contextlib
import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Protocol, Sequence

from gpuwizard.errors import CommandFailed, CommandTimeout, WizardError

LineCallback = Callable[[str, str], None]  # (stream "out"|"err", line without newline)

TAIL_LINES = 40
# With on_line, every line has gone to the caller (the journal's events file keeps them all);
# the result keeps the first and last KEPT_LINES of each stream, so 200,000 lines of apt
# output cost a bounded few MB here instead of growing with the output.
KEPT_LINES = 10_000


@dataclass(frozen=True)
class CommandResult:
    """What a finished command left: exit status, its full stdout, and the tail of both streams."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    tail: str
    duration: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class Runner(Protocol):
    """Runs a program and streams its output."""

    def run(
        self,
        argv: Sequence[str],
        *,
        on_line: Optional[LineCallback] = None,
        timeout: Optional[float] = None,
        env: Optional[Mapping[str, str]] = None,
        input: Optional[bytes] = None,
        check: bool = True,
        cwd: Optional[str] = None,
        remedy: str = "",
        pass_fds: Sequence[int] = (),
    ) -> CommandResult: ...


def base_env(extra: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """The environment every command gets: ours, with a C locale and a sane PATH."""
    env = dict(os.environ)
    env["LC_ALL"] = "C"
    env["LANG"] = "C"
    path = env.get("PATH", "")
    for d in ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        if d not in path.split(":"):
            path = f"{path}:{d}" if path else d
    env["PATH"] = path
    if extra:
        env.update(extra)
    return env


@dataclass
class SubprocessRunner:
    """Runs real programs."""

    default_timeout: float = 3600.0
    history: list[tuple[str, ...]] = field(default_factory=list)

    def run(
        self,
        argv: Sequence[str],
        *,
        on_line: Optional[LineCallback] = None,
        timeout: Optional[float] = None,
        env: Optional[Mapping[str, str]] = None,
        input: Optional[bytes] = None,
        check: bool = True,
        cwd: Optional[str] = None,
        remedy: str = "",
        pass_fds: Sequence[int] = (),
    ) -> CommandResult:
        """Run argv; `pass_fds` hands extra open descriptors to the child (apt's
        APT::Status-Fd progress pipe), as subprocess.Popen does."""
        argv = [str(a) for a in argv]
        self.history.append(tuple(argv))
        limit = self.default_timeout if timeout is None else timeout
        start = time.monotonic()
        try:
            proc = subprocess.Popen(  # argv list, never a shell
                argv,
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=base_env(env),
                cwd=cwd,
                start_new_session=False,
                pass_fds=tuple(pass_fds),
            )
        except FileNotFoundError as exc:
            raise WizardError(
                f"`{argv[0]}` is not installed (or not on PATH)",
                remedy
                or f"Install the package that provides `{argv[0]}`, then run gpuwizard again.",
            ) from exc
        except PermissionError as exc:
            raise WizardError(
                f"`{argv[0]}` cannot be executed: {exc.strerror}",
                remedy or "Check the file's permissions, or run gpuwizard as root.",
            ) from exc
        if input is not None and proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write(input)
            proc.stdin.close()
        kept = {"out": _Kept(on_line is not None), "err": _Kept(on_line is not None)}
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        partial = {"out": b"", "err": b""}
        sel = selectors.DefaultSelector()
        assert proc.stdout is not None and proc.stderr is not None
        sel.register(proc.stdout, selectors.EVENT_READ, "out")
        sel.register(proc.stderr, selectors.EVENT_READ, "err")

        def emit_all(stream: str, raw: bytes) -> None:
            """Complete lines, decoded in one go per read rather than line by line."""
            lines = [t.rstrip("\r") for t in raw.decode("utf-8", errors="replace").split("\n")]
            kept[stream].extend(lines)
            tail.extend(lines[-TAIL_LINES:])
            if on_line is not None:
                for text in lines:
                    on_line(stream, text)

        timed_out = False
        while sel.get_map():
            remaining = limit - (time.monotonic() - start)
            if remaining <= 0:
                timed_out = True
                break
            for key, _ in sel.select(timeout=min(remaining, 0.5)):
                stream = key.data
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    if partial[stream]:
                        emit_all(stream, partial[stream])
                        partial[stream] = b""
                    continue
                complete, nl, rest = (partial[stream] + chunk).rpartition(b"\n")
                partial[stream] = rest
                if nl:
                    emit_all(stream, complete)
        sel.close()
        if timed_out:
            _terminate(proc)
            raise CommandTimeout(
                f"`{' '.join(argv)}` did not finish within {limit:.0f} s and was stopped",
                remedy
                or "Check what it is waiting for (network, a lock), then run gpuwizard again.",
                "\n".join(tail),
            )
        returncode = proc.wait()
        result = CommandResult(
            argv=tuple(argv),
            returncode=returncode,
            stdout=kept["out"].text(),
            stderr=kept["err"].text(),
            tail="\n".join(tail),
            duration=time.monotonic() - start,
        )
        if check and returncode != 0:
            raise CommandFailed(list(argv), returncode, result.tail, remedy)
        return result


class _Kept:
    """The lines of one stream kept for the result: all of them, or (when a callback had
    them) the first and last KEPT_LINES with a note of how many were left out between."""

    def __init__(self, bounded: bool) -> None:
        self.head: list[str] = []
        self.tail: collections.deque[str] = collections.deque(
            maxlen=KEPT_LINES if bounded else None
        )
        self.bounded = bounded
        self.dropped = 0

    def extend(self, lines: list[str]) -> None:
        if not self.bounded:
            self.head.extend(lines)
            return
        room = KEPT_LINES - len(self.head)
        if room > 0:
            self.head.extend(lines[:room])
            lines = lines[room:]
        overflow = len(self.tail) + len(lines) - KEPT_LINES
        if overflow > 0:
            self.dropped += overflow
        self.tail.extend(lines)

    def text(self) -> str:
        lines = self.head
        if self.tail or self.dropped:
            gap = (
                [f"[… {self.dropped} lines not kept here: they went to the log …]"]
                if self.dropped
                else []
            )
            lines = [*self.head, *gap, *self.tail]
        return "\n".join(lines) + ("\n" if lines else "")


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process: TERM, then KILL after a grace period."""
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    except ProcessLookupError:
        pass
