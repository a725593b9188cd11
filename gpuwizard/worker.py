"""The detached worker: mutating work runs outside the terminal's session.

An SSH drop sends SIGHUP to the app; apt and dpkg must not die half way with it. So the faces
never apply anything themselves. They ask for a worker — a transient systemd unit where systemd
runs, otherwise a process in its own session with SIGHUP ignored (forked from the CLI, which has
gpuwizard imported already; a fresh interpreter from a face with threads) — which re-plans,
refuses if the host changed since the preview, applies, writes every event to the run's events
file, and keeps the auto-revert timer: unless the user confirms (or, with --yes, unless verification
passed), the disruptive part is rolled back at the deadline. A face started later replays and
follows the events; it only draws.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, Optional

from gpuwizard import clock, scope
from gpuwizard import events as ev
from gpuwizard.errors import LockHeld, PlanChanged, WizardError
from gpuwizard.host.system import Host
from gpuwizard.journal import Journal, Run, RunWriter, new_run_id, write_private
from gpuwizard.options import Options
from gpuwizard.selfexec import CHILD_CWD, clean_env, python_argv
from gpuwizard.states import TERMINAL
from gpuwizard.steps import registry

REQUEST = "request.json"
APPLY = "apply"  # a request's kind: apply the approved plan
ROLLBACK = "rollback"  # a request's kind: roll back the target runs
CONFIRM = "confirm"
REVERT = "revert"
REFUSED = "refused"  # the worker could not take the locks: why, for the face that launched it
REVERT_TIMER = "revert-timer"  # the run folder's file naming its systemd timer unit
# the run folder's mark: the forked worker could not enter its scope and started a
# systemd-run unit to be the worker instead
HANDED_TO_UNIT = "handed-to-unit"
# a face reads a run's events this often while none come (a stat of one file: cheap, about
# 30 µs: 0.3 % of a core; the face learns a run ended 5 ms later on average, not 15), and
# asks the journal whether the worker is still alive every IDLE_CHECK_EVERY empty reads (~1 s)
FOLLOW_POLL = 0.01
IDLE_CHECK_EVERY = 90
# a plan the face made a moment ago and the journal's activity mark from before it
# (session.Session._fresh_plan); a forked worker applies it if the journal shows no run since
FreshPlan = tuple[Any, tuple[Any, ...]]
# the timer fires this long after the deadline, so that a live worker reverts first
REVERT_GRACE = 3


def auto_revert_steps(run: Run) -> set[str]:
    """What auto-revert takes back in this run: the steps that did something disruptive (a
    restart, which can cut the user off from the engine) and the configuration they restarted
    on. Derived from the actions' own `disruptive` flag through the step registry."""
    pairs = [(r.data.get("step", ""), r.data.get("action", "")) for r in run.intents()]
    return registry.auto_revert_covers(registry.disruptive_steps_of(pairs))


def _events_path(journal: Journal, run_id: str) -> Path:
    return journal.runs_dir / run_id / "events.jsonl"


def state_dir_for(host: Host, options: Options) -> Path:
    """Where the journal lives: --state-dir, else /var/lib/gpuwizard under the root."""
    if options.state_dir:  # the user's own choice, links and all; absolute for the worker
        return Path(os.path.realpath(options.state_dir))
    return host.path("/var/lib/gpuwizard")  # resolved inside the root, never through it


# -- the face's side --------------------------------------------------------------------------
def write_request(
    host: Host,
    options: Options,
    digest: str,
    journal: Journal,
    argv: list[str],
    kind: str = APPLY,
    targets: Optional[list[str]] = None,
) -> str:
    """A new run's private folder and the request its worker reads; returns the run id.

    The request says what the worker must do (`apply` a plan whose digest the user approved,
    or `rollback` the target runs) and what host it works on: the host's kind is recorded
    from the host itself (the demo machine is a capability of the host, not a face's flag)."""
    if kind not in (APPLY, ROLLBACK):
        raise ValueError(f"unknown worker request {kind!r}")
    run_id = new_run_id(journal.runs_dir)
    folder = journal.runs_dir / run_id
    folder.mkdir(mode=0o700)
    (folder / "backups").mkdir(mode=0o700)
    request: dict[str, Any] = {
        "kind": kind,
        "options": options.to_json(),
        "digest": digest,
        "root": str(host.root),
        "host": "demo" if host.demo else "system",
        "argv": argv,
    }
    if kind == ROLLBACK:
        request["targets"] = list(targets or [])
    write_private(folder / REQUEST, json.dumps(request, indent=2).encode())
    return run_id


def launch(
    host: Host,
    options: Options,
    digest: str,
    journal: Journal,
    argv: list[str],
    wait: float = 15.0,
    kind: str = APPLY,
    targets: Optional[list[str]] = None,
    fresh: Optional[FreshPlan] = None,
) -> str:
    """Start a detached worker for this request; return its run id once it has begun.

    `fresh` (the plan the caller made a moment ago and the journal's mark from before it) is
    handed to a forked worker, which applies it if the journal shows no run since."""
    journal.ensure_writable()
    holder = journal.lock_holder()
    if holder:
        raise LockHeld(
            f"Another gpuwizard run is in progress (pid {holder.get('pid')}, started "
            f"{holder.get('started')}, run {holder.get('run')})",
            "Wait for it to finish, or follow it with `gpuwizard attach`.",
        )
    run_id = write_request(host, options, digest, journal, argv, kind, targets)
    folder = journal.runs_dir / run_id
    if _use_systemd_run(host):
        if _can_fork() and scope.available():
            unit = scope.scope_name(run_id)
            (folder / "unit").write_text(unit)
            _start_forked(journal, run_id, folder, fresh if kind == APPLY else None, unit)
        else:
            _start_unit(journal, run_id, folder)
    elif _can_fork():
        _start_forked(journal, run_id, folder, fresh if kind == APPLY else None)
    else:
        _start_process(journal, run_id, folder)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        run = journal.read_run(run_id)
        if run.records:
            return run_id
        _raise_if_refused(folder)
        if _worker_exited(folder):
            _raise_if_refused(folder)
            break
        time.sleep(0.005)  # the worker's first record comes in ~10 ms
    tail = (folder / "worker.log").read_text(errors="replace")[-2000:]
    raise WizardError(
        "The gpuwizard worker did not start",
        f"Read {folder / 'worker.log'}; the end of it is below.",
        tail,
    )


def _worker_log_fd(folder: Path) -> int:
    """The worker's stdout and stderr: the run folder's private worker.log."""
    return os.open(
        folder / "worker.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600
    )


def _worker_log(folder: Path) -> BinaryIO:
    return os.fdopen(_worker_log_fd(folder), "ab")


def _worker_cmd(journal: Journal, run_id: str) -> list[str]:
    return python_argv("_worker", "--state-dir", os.path.abspath(journal.state_dir), run_id)


def _start_unit(journal: Journal, run_id: str, folder: Path) -> None:
    """Where systemd runs: a transient service, outside the SSH session's scope (logind may
    kill that scope's processes on logout), logged to the journal, collected when done."""
    unit = f"gpuwizard-{run_id.lower()}"
    full = [
        "systemd-run",
        "--unit",
        unit,
        "--collect",
        "--quiet",
        f"--working-directory={CHILD_CWD}",
        *_worker_cmd(journal, run_id),
    ]
    with _worker_log(folder) as log:
        subprocess.run(
            full, check=True, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=clean_env()
        )
    (folder / "unit").write_text(unit)


def _start_process(journal: Journal, run_id: str, folder: Path) -> None:
    """A fresh interpreter in its own session (the face has threads: no fork then)."""
    with _worker_log(folder) as log:
        proc = subprocess.Popen(  # argv list
            _worker_cmd(journal, run_id),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=clean_env(),
            cwd=CHILD_CWD,
            start_new_session=True,
            close_fds=True,
        )
    (folder / "spawned-pid").write_text(str(proc.pid))


def _can_fork() -> bool:
    """A face with one thread (the CLI) forks its worker: the worker then starts with
    gpuwizard already imported, which a fresh interpreter takes 0.2-0.4 s to do. A face with
    threads (the app) never forks: only the forking thread would live on in the child."""
    if os.environ.get("GPUWIZARD_WORKER_EXEC") or not hasattr(os, "fork"):
        return False
    import threading

    return threading.active_count() == 1


def _start_forked(
    journal: Journal,
    run_id: str,
    folder: Path,
    fresh: Optional[FreshPlan],
    unit: Optional[str] = None,
) -> None:
    """Double fork: the worker is nobody's child (init reaps it), in its own session, with
    the same isolation a fresh `python -I` worker gets (see `_become_worker`); under systemd,
    in the transient scope `unit` (gpuwizard/scope.py)."""
    import sys

    for stream in (sys.stdout, sys.stderr):  # nothing buffered here is written twice
        with contextlib.suppress(Exception):
            stream.flush()
    state_dir = os.path.abspath(journal.state_dir)
    first = os.fork()
    if first == 0:
        code = 70
        try:
            os.setsid()
            second = os.fork()
            if second == 0:
                _become_worker(state_dir, run_id, folder, fresh, unit)  # never returns
            (folder / "spawned-pid").write_text(str(second))
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(first, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise WizardError(
            "The gpuwizard worker could not be started",
            f"Run again with GPUWIZARD_WORKER_EXEC=1; {folder / 'worker.log'} may say more.",
        )


def _become_worker(
    state_dir: str,
    run_id: str,
    folder: Path,
    fresh: Optional[FreshPlan],
    unit: Optional[str] = None,
) -> None:
    """In the forked worker: what `python -I` from `/` with a clean environment gives a fresh
    worker (no cwd or PYTHONPATH on sys.path, no PYTHON* variables, cwd `/`), no descriptor of
    the face's left open (its terminal, its pipes: an SSH session or a test's pipe stays open
    until every holder closes it), default signal handlers; under systemd, its own scope and
    the journal for output; then the worker, and _exit."""
    import sys
    import traceback

    code = 70
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
        log = _worker_log_fd(folder)
        os.dup2(devnull, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        _blank_inherited_fds(keep={0, 1, 2, devnull, log}, devnull=devnull)
        _isolate_process()
        if unit is not None and not _in_own_scope(unit, run_id):
            # no scope: never run inside the SSH session's; a systemd-run unit runs it instead
            (folder / HANDED_TO_UNIT).write_text("")
            _start_unit(Journal(Path(state_dir)), run_id, folder)
            os._exit(0)
        code = worker_main(state_dir, run_id, fresh)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # the worker's own log says what broke; the journal says the rest
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def _in_own_scope(unit: str, run_id: str) -> bool:
    """Enter the transient scope; once in it, stdout and stderr go to the journal (as a
    service's do), else they stay on worker.log. False (and why, in worker.log) when systemd
    did not take this process into the scope."""
    why = scope.enter(unit, f"gpuwizard run {run_id}")
    if why is not None:
        print(
            f"gpuwizard: no scope {unit} ({why}); starting the worker with systemd-run", flush=True
        )
        return False
    stream = scope.journal_stream("gpuwizard")
    if stream is not None:
        os.dup2(stream, 1)
        os.dup2(stream, 2)
        os.close(stream)
    return True


def _isolate_process() -> None:
    """cwd `/`, the environment without PYTHON* variables (its children get that one),
    sys.path as -I gives it, Python's default signal handlers."""
    _isolate_sys_path(os.environ.get("PYTHONPATH", ""), os.getcwd())
    os.chdir(CHILD_CWD)
    env = clean_env()
    os.environ.clear()
    os.environ.update(env)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGQUIT, signal.SIGTSTP, signal.SIGTTOU, signal.SIGTTIN):
        signal.signal(sig, signal.SIG_DFL)


def _blank_inherited_fds(keep: set[int], devnull: int) -> None:
    """Point every inherited descriptor at /dev/null. Not closed: a Python object of the
    face's that still holds the number would close whatever the worker opens under it."""
    try:
        fds = [int(n) for n in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 256))
    for fd in fds:
        if fd in keep:
            continue
        with contextlib.suppress(OSError):
            os.fstat(fd)
            os.dup2(devnull, fd, inheritable=False)


def _isolate_sys_path(pythonpath: str, cwd: str) -> None:
    """sys.path as `python -I` and the boot line make it: this gpuwizard's own location
    first; not the face's script folder or working directory (sys.path[0], which -I does not
    add), nothing relative, nothing from PYTHONPATH. What the face already imported it had
    imported as the same user, before any of this: the worker adds nothing from those."""
    import sys

    from gpuwizard.selfexec import package_parent

    entries = list(sys.path)
    if entries and not (sys.flags.isolated or getattr(sys.flags, "safe_path", False)):
        entries = entries[1:]
    banned = {os.path.abspath(p) for p in pythonpath.split(os.pathsep) if p} | {cwd}
    own = package_parent()
    keep = [
        p
        for p in entries
        if p and os.path.isabs(p) and os.path.abspath(p) not in banned and p != own
    ]
    sys.path[:] = [own, *keep]


def _raise_if_refused(folder: Path) -> None:
    """The worker found the journal or the target root locked by another run: say who holds
    it, as an in-process run would, not "the worker did not start"."""
    try:
        why = json.loads((folder / REFUSED).read_text())
    except (OSError, ValueError):
        return
    raise LockHeld(str(why.get("cause", "")), str(why.get("remedy", "")))


def _use_systemd_run(host: Host) -> bool:
    if os.environ.get("GPUWIZARD_NO_SYSTEMD_RUN"):
        return False
    return (
        host.at_slash
        and Path("/run/systemd/system").is_dir()
        and shutil.which("systemd-run") is not None
    )


def _worker_exited(folder: Path) -> bool:
    if (folder / HANDED_TO_UNIT).exists():
        return False  # the forked worker left; the unit it started is the worker now
    try:
        pid = int((folder / "spawned-pid").read_text())
    except (OSError, ValueError):
        return False
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        return waited == pid
    except ChildProcessError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False


def follow(
    journal: Journal,
    run_id: str,
    stop: Optional[Callable[[], bool]] = None,
    poll: float = FOLLOW_POLL,
) -> Iterator[ev.Event]:
    """Replay a run's events from the start, then follow them until the run ends (or the
    worker died without ending it, which is reported as 'interrupted')."""
    for batch in follow_batches(journal, run_id, stop, poll):
        yield from batch


BATCH_MAX = 2000  # events handed over at once by follow_batches
READ_MAX = 1 << 20  # bytes of the events file read at once


def follow_batches(
    journal: Journal,
    run_id: str,
    stop: Optional[Callable[[], bool]] = None,
    poll: float = FOLLOW_POLL,
) -> Iterator[list[ev.Event]]:
    """`follow`, in batches: every event read from the file in one go (at most BATCH_MAX).

    A face should hand these to its UI a batch at a time: apt can print tens of thousands of
    lines a second, and one UI message per line is what freezes a terminal app, not drawing.
    """
    path = _events_path(journal, run_id)
    offset = 0
    buf = b""
    idle_checks = 0
    while True:
        if stop is not None and stop():
            return
        chunk = b""
        if path.exists():
            with open(path, "rb") as fh:
                fh.seek(offset)
                chunk = fh.read(READ_MAX)  # bounded: a follower far behind catches up in steps
            offset += len(chunk)
        if chunk:
            idle_checks = 0
            buf += chunk
            *lines, buf = buf.split(b"\n")
            batch: list[ev.Event] = []
            for event in ev.from_json_lines(lines):
                batch.append(event)
                if isinstance(event, ev.RunState) and event.state in TERMINAL:
                    yield batch
                    return
                if len(batch) >= BATCH_MAX:
                    yield batch
                    batch = []
            if batch:
                yield batch
            continue
        idle_checks += 1
        if idle_checks % IDLE_CHECK_EVERY == 0:
            run = journal.read_run(run_id)
            status = run.status()
            if status == "interrupted":
                yield [
                    ev.RunState(
                        run_id,
                        "interrupted",
                        "the worker stopped without finishing; roll back or resume",
                    )
                ]
                return
            if status in TERMINAL:
                return
        time.sleep(poll)


def confirm(journal: Journal, run_id: str) -> None:
    """Keep the changes of a run awaiting confirmation (stops its auto-revert)."""
    folder = journal.runs_dir / run_id
    if not folder.is_dir():
        raise WizardError(f"There is no run {run_id}", "List runs with `gpuwizard history`.")
    run = journal.read_run(run_id)
    deadline = run.confirmation_deadline()
    if deadline is None and run.status() in ("auto-reverted", "rolled-back"):
        raise WizardError(
            f"Run {run_id} was not kept: it is {run.status()}",
            "Its change is undone. Apply again to make it again.",
        )
    if deadline is not None and clock.now() >= deadline:
        raise WizardError(
            f"Too late to keep run {run_id}: its confirmation deadline passed at "
            + time.strftime("%H:%M:%S", time.localtime(deadline)),
            "The change is rolled back (the next gpuwizard command does it if nothing did "
            "yet). Apply again to make it again, and confirm before the deadline.",
        )
    (folder / CONFIRM).write_text(str(clock.now()))
    disarm_revert_timer(folder)
    if run.status() == "interrupted" and run.confirmation_deadline() is not None:
        # the worker is gone (reboot); record the confirmation ourselves
        w = journal.open_run(run_id)
        w.append("confirmed", {"by": "user"})
        w.append("end", {"status": "finished"})


def revert(journal: Journal, run_id: str) -> None:
    """Do not keep a run awaiting confirmation: its worker rolls the change back now instead
    of at the deadline."""
    folder = journal.runs_dir / run_id
    if not folder.is_dir():
        raise WizardError(f"There is no run {run_id}", "List runs with `gpuwizard history`.")
    (folder / REVERT).write_text(str(clock.now()))


def active_run(journal: Journal) -> Optional[Run]:
    """The run a face should show first: in progress, awaiting confirmation, or interrupted
    with changes not undone."""
    for run in reversed(journal.runs()):
        status = run.status()
        if status in ("in-progress", "awaiting-confirmation"):
            return run
        if status == "interrupted" and run.pending_undo():
            return run
    return None


def recover_expired(host: Host, journal: Journal, emit: ev.EventSink = ev.discard) -> list[str]:
    """Roll back runs whose confirmation deadline passed while no worker watched (a reboot
    kills timers). Returns the ids rolled back."""
    from gpuwizard import wizard

    done = []
    for run in journal.runs():
        deadline = run.confirmation_deadline()
        if deadline is None or run.status() != "interrupted" or clock.now() < deadline:
            continue
        writer = journal.open_run(run.run_id)
        emit(
            ev.LogLine(
                "",
                f"Run {run.run_id} was not confirmed before its deadline and its worker is "
                "gone: rolling back daemon.json and restarting Docker on it",
                "err",
            )
        )
        try:
            with journal.locked(run.run_id, ["recover"], host.root):
                # under the lock (which makes the run look alive: it is ours now), check
                # that nobody ended it meanwhile
                run = journal.read_run(run.run_id)
                if run.ended() is not None or run.confirmation_deadline() is None:
                    continue
                wizard.rollback_records(host, writer, run, auto_revert_steps(run), emit=emit)
                writer.append("end", {"status": "auto-reverted"})
        except LockHeld:
            continue  # another gpuwizard holds the lock; it (or the next command) reverts
        except WizardError as exc:
            writer.append("end", {"status": "failed", "error": exc.to_json()})
            emit(ev.RunState(run.run_id, "failed", _failure_text(exc)))
            continue
        emit(ev.RunState(run.run_id, "auto-reverted", "not confirmed in time: rolled back"))
        disarm_revert_timer(run.folder)
        done.append(run.run_id)
    return done


def revert_main(state_dir: str, run_id: str) -> int:
    """Entry point of `gpuwizard _revert`, which the transient systemd timer runs at the
    deadline: roll back if nobody confirmed and no worker did it. Prints to the unit's log."""

    def say(event: ev.Event) -> None:
        if isinstance(event, ev.LogLine) and event.text:
            print(event.text, flush=True)
        elif isinstance(event, ev.RunState):
            print(f"gpuwizard run {event.run_id}: {event.state} — {event.detail or ''}", flush=True)

    journal = Journal(Path(state_dir))
    try:
        run = journal.read_run(run_id)
    except (OSError, WizardError) as exc:
        print(f"gpuwizard: no run {run_id} in {state_dir} ({exc})", flush=True)
        return 0
    status = run.status()
    if status != "interrupted" or run.confirmation_deadline() is None:
        print(f"gpuwizard run {run_id} is {status}: nothing to revert", flush=True)
        return 0
    host = Host(Path(str(run.meta.get("root", "/"))))
    done = recover_expired(host, journal, emit=say)
    return 0 if run_id in done else 1


def _systemd_timer_ok(host: Host) -> bool:
    return _use_systemd_run(host)


def arm_revert_timer(host: Host, journal: Journal, run_id: str, deadline: float) -> Optional[str]:
    """A transient systemd timer that reverts the run at its deadline, even if every gpuwizard
    process is gone by then (killed, or its unit stopped). None where systemd does not run."""
    if not _systemd_timer_ok(host):
        return None
    unit = f"gpuwizard-revert-{run_id.lower()}"
    seconds = max(1, int(deadline - clock.now() + 0.999) + REVERT_GRACE)
    argv = [
        "systemd-run",
        "--unit",
        unit,
        f"--on-active={seconds}s",
        "--timer-property=AccuracySec=1s",
        "--timer-property=RemainAfterElapse=no",
        "--collect",
        "--quiet",
        f"--description=gpuwizard: revert run {run_id} unless confirmed",
        f"--working-directory={CHILD_CWD}",
        *python_argv("_revert", "--state-dir", os.path.abspath(journal.state_dir), run_id),
    ]
    res = subprocess.run(argv, capture_output=True, text=True, env=clean_env(), check=False)  # noqa: S603
    if res.returncode != 0:
        return None
    (journal.runs_dir / run_id / REVERT_TIMER).write_text(unit)
    return unit


def disarm_revert_timer(folder: Path) -> None:
    """Stop a run's revert timer (confirmed, or already reverted)."""
    try:
        unit = (folder / REVERT_TIMER).read_text().strip()
    except OSError:
        return
    if unit and shutil.which("systemctl"):
        subprocess.run(  # noqa: S603 S607
            ["systemctl", "stop", f"{unit}.timer"], capture_output=True, check=False
        )
    with contextlib.suppress(OSError):
        (folder / REVERT_TIMER).unlink()


def _failure_text(exc: WizardError) -> str:
    """A failure as a face prints it: cause, remedy, and the detail (the daemon's log)."""
    text = f"{exc.cause}\n{exc.remedy}"
    if exc.detail:
        text += "\n" + exc.detail
    return text


# -- the worker's side ------------------------------------------------------------------------
class _EventWriter:
    """Send events to the run's events file (and to a second sink, in-process)."""

    def __init__(self, writer: RunWriter, also: ev.EventSink = ev.discard) -> None:
        self.writer = writer
        self.also = also

    def __call__(self, event: ev.Event) -> None:
        self.writer.write_event(ev.to_json(ev.masked(event)))
        self.also(event)


def run_worker(
    journal: Journal,
    run_id: str,
    also: ev.EventSink = ev.discard,
    host: Optional[Host] = None,
    fresh: Optional[FreshPlan] = None,
) -> int:
    """Apply one requested run. Exit status 0 when it finished and was kept."""
    from gpuwizard import wizard

    folder = journal.runs_dir / run_id
    request = json.loads((folder / REQUEST).read_text())
    options = Options.from_json(request["options"])
    kind = request.get("kind", APPLY)
    if host is None:
        host = host_from_request(request)
    argv = list(request.get("argv", []))
    try:
        journal.acquire(run_id, argv, host.root)
    except LockHeld as exc:
        write_private(folder / REFUSED, json.dumps(exc.to_json()).encode())
        w = RunWriter(run_id, folder)
        w.write_event(ev.to_json(ev.RunState(run_id, "refused", exc.cause)))
        return 3
    try:
        meta: dict[str, Any] = {"options": options.to_json(), "root": str(host.root)}
        if kind == ROLLBACK:
            meta |= {"kind": ROLLBACK, "targets": list(request.get("targets", []))}
        else:
            _mark_resumed(journal, run_id)
        writer = journal.start_run(argv, meta=meta, run_id=run_id)
        emit = _EventWriter(writer, also)
        emit(ev.RunState(run_id, "running"))
        if kind == ROLLBACK:
            return _roll_back(host, journal, writer, options, request, emit, wizard)
        return _apply_and_keep(host, journal, writer, options, request, emit, wizard, fresh)
    finally:
        journal.release()


def host_from_request(request: dict[str, Any]) -> Host:
    """The host a request names: the demo machine, or the system under its root."""
    if request.get("host") == "demo":
        from gpuwizard.demo import demo_host

        return demo_host()
    return Host(Path(request["root"]))


def _roll_back(
    host: Host,
    journal: Journal,
    writer: RunWriter,
    options: Options,
    request: dict[str, Any],
    emit: ev.EventSink,
    wizard: Any,
) -> int:
    """A rollback of other runs, detached like an apply: an SSH drop does not stop it halfway
    (and if something does, the journal makes the next rollback finish it)."""
    run_id = writer.run_id
    steps = set(options.steps) if options.steps else None
    report: list[dict[str, Any]] = []
    try:
        for target in request.get("targets", []):
            report += wizard.rollback(
                host, journal, run_id=target, steps=steps, force=options.force, emit=emit
            )
    except WizardError as exc:
        writer.append("end", {"status": "failed", "error": exc.to_json(), "report": report})
        emit(ev.RunState(run_id, "failed", _failure_text(exc)))
        return 1
    except Exception as exc:  # an unexpected bug: still end the journal
        writer.append("end", {"status": "failed", "error": {"cause": repr(exc)}})
        emit(ev.RunState(run_id, "failed", f"internal error: {exc!r}"))
        raise
    undone = sum(len(r["undone"]) for r in report)
    writer.append("end", {"status": "finished", "report": report})
    emit(ev.RunState(run_id, "rolled-back", f"{undone} change(s) undone"))
    return 0


def _mark_resumed(journal: Journal, run_id: str) -> None:
    """An interrupted run is taken over by this one: its changes stay in its journal (so
    `rollback --all` still undoes them) but it is no longer the run to show at start-up."""
    for run in journal.runs():
        if run.run_id != run_id and run.status() == "interrupted" and run.pending_undo():
            journal.open_run(run.run_id).append("end", {"status": "resumed", "by": run_id})


def _apply_and_keep(
    host: Host,
    journal: Journal,
    writer: RunWriter,
    options: Options,
    request: dict[str, Any],
    emit: ev.EventSink,
    wizard: Any,
    fresh: Optional[FreshPlan] = None,
) -> int:
    run_id = writer.run_id
    try:
        the_plan = _fresh_or_new_plan(host, journal, run_id, options, emit, wizard, fresh)
        if the_plan.digest != request.get("digest") and not options.force:
            raise PlanChanged(
                "The host changed since the preview you approved",
                "Look at the new plan (gpuwizard plan) and apply again.",
            )
        emit(ev.DiffReady("", [d.to_json() for s in the_plan.runnable() for d in s.diffs]))
        wizard.apply(host, options, the_plan, writer, emit)
    except WizardError as exc:
        writer.append("end", {"status": "failed", "error": exc.to_json()})
        emit(ev.RunState(run_id, "failed", _failure_text(exc)))
        return 1
    except Exception as exc:  # an unexpected bug: still leave the journal consistent
        writer.append("end", {"status": "failed", "error": {"cause": repr(exc)}})
        emit(ev.RunState(run_id, "failed", f"internal error: {exc!r}"))
        raise
    if options.auto_revert > 0 and auto_revert_steps(journal.read_run(run_id)):
        return _await_confirmation(host, journal, writer, options, emit, wizard)
    writer.append("end", {"status": "finished"})
    emit(ev.RunState(run_id, "finished"))
    return 0


def _fresh_or_new_plan(
    host: Host,
    journal: Journal,
    run_id: str,
    options: Options,
    emit: ev.EventSink,
    wizard: Any,
    fresh: Optional[FreshPlan],
) -> Any:
    """The plan to apply, made under the journal's lock. A forked worker may bring the plan
    its face made a moment ago: it is that plan if, now that this worker holds the lock, the
    journal shows no run started, written or ended since it was made (another gpuwizard
    changing the host is what the lock orders; this worker's own run is not counted). Else,
    and always for a fresh interpreter, the host is probed again."""
    from gpuwizard.journal import activity_mark

    if fresh is not None:
        the_plan, mark = fresh
        if tuple(m for m in activity_mark(journal) if m[0] != run_id) == mark:
            for sp in the_plan.steps:
                emit(ev.StepState(sp.step, sp.state, sp.reason))
            return the_plan
        emit(ev.LogLine("", "another run wrote to the journal since the preview: probing again"))
    return wizard.plan(host, options, emit=emit)


def _await_confirmation(
    host: Host,
    journal: Journal,
    writer: RunWriter,
    options: Options,
    emit: ev.EventSink,
    wizard: Any,
) -> int:
    """The netplan-try part: keep the change only if someone says so before the deadline."""
    run_id = writer.run_id
    if options.yes:
        writer.append("confirmed", {"by": "--yes (verification passed)"})
        writer.append("end", {"status": "finished"})
        emit(ev.RunState(run_id, "finished", "kept: --yes and verification passed"))
        return 0
    deadline = clock.now() + options.auto_revert
    writer.append("awaiting-confirmation", {"deadline": deadline})
    timer = arm_revert_timer(host, journal, run_id, deadline)
    if timer:
        emit(ev.LogLine("", f"auto-revert armed as the systemd timer {timer}.timer", "info"))
    emit(
        ev.RunState(
            run_id,
            "awaiting-confirmation",
            f"Docker works with the new settings. Keep them? Without an answer they "
            f"are rolled back in {options.auto_revert:.0f} s.",
            deadline,
        )
    )
    confirm_file = writer.folder / CONFIRM
    revert_file = writer.folder / REVERT
    declined = False
    while clock.now() < deadline:
        if confirm_file.exists():
            disarm_revert_timer(writer.folder)
            writer.append("confirmed", {"by": "user"})
            writer.append("end", {"status": "finished"})
            emit(ev.RunState(run_id, "finished", "kept"))
            return 0
        if revert_file.exists():
            declined = True
            break
        time.sleep(0.2)
    why = (
        "not kept: rolling back daemon.json and restarting Docker on it"
        if declined
        else "no confirmation before the deadline: rolling back daemon.json and restarting "
        "Docker on it"
    )
    emit(ev.LogLine("", why, "err"))
    disarm_revert_timer(writer.folder)
    try:
        wizard.rollback_records(
            host,
            writer,
            journal.read_run(run_id),
            auto_revert_steps(journal.read_run(run_id)),
            emit=emit,
        )
    except WizardError as exc:
        # e.g. the undone daemon.json would not start Docker: stop, say so, restart nothing
        writer.append("end", {"status": "failed", "error": exc.to_json()})
        emit(ev.RunState(run_id, "failed", "could not roll back: " + _failure_text(exc)))
        return 1
    writer.append("end", {"status": "auto-reverted"})
    emit(
        ev.RunState(
            run_id,
            "auto-reverted",
            "not kept: rolled back" if declined else "not confirmed in time: rolled back",
        )
    )
    return 0  # the worker did its job: an auto-revert is not a failed unit


def worker_main(state_dir: str, run_id: str, fresh: Optional[FreshPlan] = None) -> int:
    """Entry point of `gpuwizard _worker` (and of the forked worker, which may bring the
    plan its face just made): detach from the terminal for good."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    if os.getsid(0) != os.getpid():
        with contextlib.suppress(OSError):
            os.setsid()
    return run_worker(Journal(Path(state_dir)), run_id, also=_say, fresh=fresh)


def _say(event: ev.Event) -> None:
    """The worker's own log (the unit's journal under systemd, else worker.log): what it
    decided, not every line."""
    if isinstance(event, ev.RunState):
        print(f"gpuwizard run {event.run_id}: {event.state} — {event.detail or ''}", flush=True)
    elif isinstance(event, ev.LogLine) and event.stream == "err" and not event.step:
        print(event.text, flush=True)
