"""The journal: write-ahead records, byte-exact backups and the run lock, kept on the host.

Every mutation is preceded by an fsynced *intent* record holding what undo needs (original
bytes by content hash, mode, owner, package set, service state). After a crash, rollback reads
the records and undoes every intent in reverse order; undo is idempotent, so an intent whose
mutation never happened is harmless to undo.

Layout under the state directory (default /var/lib/gpuwizard under the root):

    lock                          flock()ed by the run in progress; names its holder
    runs/<run-id>/meta.json       what was asked for
    runs/<run-id>/journal.jsonl   the records, one JSON object a line
    runs/<run-id>/events.jsonl    the events, for a face that attaches later
    runs/<run-id>/backups/<sha256>
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import signal
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

from gpuwizard import clock
from gpuwizard.errors import JournalError, LockHeld
from gpuwizard.states import RunStatus, run_status

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
CRASH_ENV = "GPUWIZARD_CRASH_AT"  # fault injection: SIGKILL ourselves at the Nth transition


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in `path` durable."""
    fd = os.open(str(path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _private_dir(path: Path) -> None:
    """Backups hold daemon.json and apt sources, which can hold passwords and tokens: the
    state folders are 0700, whatever an older version or the umask left."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise JournalError(
            f"The state directory {path} is a symlink or not a folder",
            "Remove it (or pass --state-dir a real folder): gpuwizard does not follow links "
            "for its journal.",
        )
    if st.st_uid != os.geteuid():
        raise JournalError(
            f"The state directory {path} belongs to uid {st.st_uid}, not to the user running "
            "gpuwizard: whoever owns it could change the journal that rollback follows",
            f"Move it away (mv {path} {path}.old) so gpuwizard creates its own, or pass "
            "--state-dir a folder you own.",
        )
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(path, stat.S_IMODE(st.st_mode) & 0o700)


def write_private(path: Path, data: bytes) -> None:
    """Create (or replace) a file readable by its owner only, never through a symlink."""
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def new_run_id(runs_dir: Optional[Path] = None) -> str:
    """A sortable, unique id: the UTC time to the second, then a tail of the microseconds
    (five hex digits, so two runs begun in one second still sort in the order they began:
    rollback takes the newest) and one random digit. In screenshot mode (the clock frozen)
    the tail is the first free number in `runs_dir`, so screenshots read the same."""
    stamp = clock.now()
    now = _dt.datetime.fromtimestamp(stamp, _dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    if clock.frozen_at() is not None:
        n = 1
        while runs_dir is not None and (runs_dir / f"{now}-{n:06x}").exists():
            n += 1
        return f"{now}-{n:06x}"
    micro = min(int((stamp % 1) * 1_000_000), 999_999)
    return f"{now}-{micro:05x}{secrets.randbelow(16):x}"


def _local_iso() -> str:
    """The local time in seconds, for a run's or a lock's "started"."""
    return _dt.datetime.fromtimestamp(clock.now()).isoformat(timespec="seconds")


class _Transitions:
    """Counts journal transitions in this process, for crash-consistency tests."""

    count = 0

    @classmethod
    def tick(cls) -> None:
        cls.count += 1
        target = os.environ.get(CRASH_ENV)
        if target and int(target) == cls.count:
            os.kill(os.getpid(), signal.SIGKILL)


def checkpoint() -> None:
    """A transition that is not a journal write (e.g. a mutation just happened)."""
    _Transitions.tick()


@dataclass
class Record:
    seq: int
    type: str
    data: dict[str, Any]


@dataclass
class Run:
    """One run folder, read back."""

    run_id: str
    folder: Path
    meta: dict[str, Any]
    records: list[Record]
    warnings: list[str] = field(default_factory=list)
    corrupt: Optional[JournalError] = None  # the journal cannot be trusted: no undo from it

    def damaged(self) -> Optional[str]:
        """Why this run cannot be undone from its journal (corrupt, or backups without
        records), or None."""
        if self.corrupt is not None:
            return self.corrupt.cause
        if not self.intents():
            backups = self.folder / "backups"
            try:
                kept = [p.name for p in backups.iterdir() if not p.name.startswith(".")]
            except OSError:
                kept = []
            if kept:
                return (
                    f"run {self.run_id} kept {len(kept)} backup(s) but its journal records "
                    "no change"
                )
        return None

    @property
    def started(self) -> str:
        return str(self.meta.get("started", ""))

    @property
    def kind(self) -> str:
        """ "rollback" for a rollback's own run (it undoes other runs), else "apply"."""
        return "rollback" if self.meta.get("kind") == "rollback" else "apply"

    @property
    def targets(self) -> list[str]:
        """The runs a rollback run undoes, in its order; [] for an apply."""
        named = self.meta.get("targets") if self.kind == "rollback" else None
        return [str(t) for t in named] if isinstance(named, list) else []

    def intents(self) -> list[Record]:
        return [r for r in self.records if r.type == "intent"]

    def ended(self) -> Optional[Record]:
        ends = [r for r in self.records if r.type == "end"]
        return ends[-1] if ends else None

    def rolled_back_refs(self) -> set[int]:
        return {int(r.data["ref"]) for r in self.records if r.type == "rolled-back"}

    def done_refs(self) -> set[int]:
        return {int(r.data["ref"]) for r in self.records if r.type == "done"}

    def changed_something(self) -> bool:
        """A run that only looked changes nothing and is no rollback target."""
        return bool(self.intents())

    def pending_undo(self, steps: Optional[set[str]] = None) -> list[Record]:
        """Intents not yet rolled back, newest first, optionally narrowed to some steps."""
        done = self.rolled_back_refs()
        out = [r for r in self.intents() if r.seq not in done]
        if steps:
            out = [r for r in out if r.data.get("step") in steps]
        return list(reversed(out))

    def status(self) -> RunStatus:
        """finished | failed | rolled-back | interrupted | in-progress | awaiting-confirmation
        | damaged (and what the run's end record says: auto-reverted, resumed)."""
        if self.damaged():
            return "damaged"
        end = self.ended()
        rb = any(r.type == "rollback-end" for r in self.records)
        if end is not None:
            status = run_status(str(end.data.get("status", "finished")))
            if status in ("finished", "failed") and rb and not self.pending_undo():
                return "rolled-back"
            return status
        if rb and not self.pending_undo():
            return "rolled-back"
        if run_alive(self.folder, self.run_id):
            if any(r.type == "awaiting-confirmation" for r in self.records) and not any(
                r.type == "confirmed" for r in self.records
            ):
                return "awaiting-confirmation"
            return "in-progress"
        return "interrupted"

    def confirmation_deadline(self) -> Optional[float]:
        awaiting = [r for r in self.records if r.type == "awaiting-confirmation"]
        if not awaiting or any(r.type in ("confirmed", "end") for r in self.records):
            return None
        return float(awaiting[-1].data["deadline"])

    def summary(self) -> dict[str, Any]:
        steps: list[str] = []
        for r in self.intents():
            s = str(r.data.get("step", ""))
            if s not in steps:
                steps.append(s)
        return {
            "run": self.run_id,
            "started": self.started,
            "argv": self.meta.get("argv", []),
            "status": self.status(),
            "changes": len(self.intents()),
            "pending_undo": len(self.pending_undo()),
            "steps": steps,
            "warnings": self.warnings,
        }

    def backup_path(self, sha: str) -> Path:
        return self.folder / "backups" / sha


def _held_by(path: Path) -> Optional[dict[str, Any]]:
    """Who holds the flock on `path` now (its JSON note), or None when nobody does. A lock
    dies with its process, so a reused pid never makes a dead run look alive."""
    try:
        fd = os.open(str(path), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except PermissionError:
        return {"pid": None, "unknown": "the state directory is readable by root only"}
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                return dict(json.loads(os.read(fd, 1 << 16) or b"{}"))
            except (ValueError, OSError, TypeError):
                return {"pid": None}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def run_alive(run_folder: Path, run_id: str) -> bool:
    """A run is alive while its worker holds the state directory's lock in its name: the
    liveness signal everywhere (history, apply, rollback, recovery), never a bare pid."""
    holder = _held_by(run_folder.parent.parent / "lock")
    return holder is not None and holder.get("run") == run_id


HOST_LOCK = "/var/lib/gpuwizard/host.lock"  # under the target root: one run per host
MIN_FREE = 1 << 20  # bytes the state directory needs free for records and backups


def _take(path: Path, info: dict[str, Any], where: str = "") -> int:
    """flock `path` for this process and write who we are into it; LockHeld if taken."""
    try:
        fd = os.open(str(path), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise JournalError(
                f"The lock file {path} is a symlink (to {os.readlink(path)})",
                f"Remove the link (rm {path}); gpuwizard never writes through a link in its "
                "state directory.",
            ) from exc
        raise JournalError(
            f"Cannot open the lock file {path}: {exc.strerror}",
            "It must be a plain file gpuwizard can write (not a link); run as root.",
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        holder = _held_by(path) or {}
        other = holder.get("state_dir")
        raise LockHeld(
            f"Another gpuwizard run is in progress{where} "
            f"(pid {holder.get('pid', '?')}, started {holder.get('started', '?')}, "
            f"run {holder.get('run', '?')}"
            + (f", state directory {other}" if other and where else "")
            + ")",
            "Wait for it to finish, or follow it with `gpuwizard attach`"
            + (f" --state-dir {other}" if other and where else "")
            + ".",
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps(info).encode())
    os.fsync(fd)
    return fd


def _drop(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


class Journal:
    """The state directory: runs, their records and backups, and the lock."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.runs_dir = self.state_dir / "runs"
        self._lock_fd: Optional[int] = None
        self._host_fd: Optional[int] = None

    # -- the state directory ------------------------------------------------------------
    def ensure_writable(self) -> None:
        """Create the state directory, or say precisely why we cannot."""
        try:
            self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            _private_dir(self.state_dir)
            self.runs_dir.mkdir(mode=0o700, exist_ok=True)
            _private_dir(self.runs_dir)
            probe = self.state_dir / f".probe-{os.getpid()}"
            try:
                probe.write_bytes(b"\0" * 65536)
            finally:
                probe.unlink(missing_ok=True)
            st = os.statvfs(self.state_dir)
            if st.f_bavail * st.f_frsize < MIN_FREE:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise JournalError(
                    f"The state directory {self.state_dir} is on a full disk "
                    f"({exc.strerror}); nothing was changed",
                    "Free some space there (df -h), or pass --state-dir a folder on another "
                    "disk (it must survive a reboot to allow rollback).",
                ) from None
            if exc.errno == errno.EROFS:
                raise JournalError(
                    f"The state directory {self.state_dir} is on a read-only file system",
                    "Remount it read-write, or pass --state-dir a writable folder "
                    "(it must survive a reboot to allow rollback).",
                ) from exc
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise JournalError(
                    f"No permission to write the state directory {self.state_dir}",
                    "Run gpuwizard as root (sudo gpuwizard …), or pass --state-dir.",
                ) from exc
            raise JournalError(
                f"Cannot create the state directory {self.state_dir}: {exc.strerror}",
                "Check the disk and the path, or pass --state-dir another folder.",
            ) from exc

    # -- the lock -----------------------------------------------------------------------
    def lock_holder(self) -> Optional[dict[str, Any]]:
        """Who holds the lock now, or None if nobody does."""
        return _held_by(self.state_dir / "lock")

    def acquire(self, run_id: str, argv: list[str], root: Optional[Path] = None) -> None:
        """Take the lock for one run; refuse, naming the holder, if another run has it.
        With `root`, also the target root's own lock (under the root, not the state
        directory), so two runs with different --state-dir cannot change one host."""
        self.ensure_writable()
        info = {
            "pid": os.getpid(),
            "started": _local_iso(),
            "run": run_id,
            "argv": argv,
            "state_dir": str(self.state_dir),
        }
        fd = _take(self.state_dir / "lock", info)
        if root is not None:
            host_lock = Path(root) / HOST_LOCK.lstrip("/")
            try:
                host_lock.parent.mkdir(parents=True, exist_ok=True)
                host_fd = _take(host_lock, info, f" on the target root {root}")
            except BaseException:
                _drop(fd)
                raise
            self._host_fd = host_fd
        self._lock_fd = fd

    def release(self) -> None:
        if self._host_fd is not None:
            _drop(self._host_fd)
            self._host_fd = None
        if self._lock_fd is not None:
            _drop(self._lock_fd)
            self._lock_fd = None

    @contextlib.contextmanager
    def locked(self, run_id: str, argv: list[str], root: Optional[Path] = None) -> Iterator[None]:
        self.acquire(run_id, argv, root)
        try:
            yield
        finally:
            self.release()

    # -- runs ---------------------------------------------------------------------------
    def start_run(
        self, argv: list[str], meta: Optional[dict[str, Any]] = None, run_id: Optional[str] = None
    ) -> RunWriter:
        """Create a run folder and its first record."""
        self.ensure_writable()
        if run_id is None:
            while True:  # a fresh id is never another run's folder
                run_id = new_run_id(self.runs_dir)
                try:
                    (self.runs_dir / run_id).mkdir(mode=0o700)
                    break
                except FileExistsError:
                    continue
        folder = self.runs_dir / run_id
        folder.mkdir(mode=0o700, exist_ok=True)
        (folder / "backups").mkdir(mode=0o700, exist_ok=True)
        full_meta = {
            "run": run_id,
            "started": _local_iso(),
            "argv": argv,
            "worker_pid": os.getpid(),
            **(meta or {}),
        }
        _atomic_json(folder / "meta.json", full_meta)
        fsync_dir(self.runs_dir)
        writer = RunWriter(run_id, folder)
        writer.append("begin", {})
        return writer

    def open_run(self, run_id: str) -> RunWriter:
        """Append to an existing run (rollback, confirmation)."""
        folder = self._folder(run_id)
        if not folder.is_dir():
            raise JournalError(
                f"There is no run {run_id} in {self.runs_dir}",
                "List the runs with `gpuwizard history`.",
            )
        return RunWriter(run_id, folder, next_seq=_last_seq(folder / "journal.jsonl") + 1)

    def update_meta(self, run_id: str, **changes: Any) -> None:
        path = self.runs_dir / run_id / "meta.json"
        data = json.loads(path.read_text())
        data.update(changes)
        _atomic_json(path, data)

    def runs(self) -> list[Run]:
        """Every run, oldest first. Unreadable runs are returned with a warning, not dropped."""
        try:
            if not self.runs_dir.is_dir():
                return []
            folders = sorted(p for p in self.runs_dir.iterdir() if p.is_dir())
        except PermissionError as exc:
            raise JournalError(
                f"The journal {self.state_dir} is readable by root only (its backups can hold "
                "passwords)",
                "Run it as root (sudo gpuwizard …) to see the runs.",
            ) from exc
        out = []
        for folder in folders:
            if _RUN_ID.fullmatch(folder.name):
                out.append(self.read_run(folder.name, strict=False))
        return out

    def _folder(self, run_id: str) -> Path:
        if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
            raise JournalError(
                f"{run_id!r} is not a run id",
                "Run ids look like 20260101T120000Z-a1b2c3; list them with `gpuwizard history`.",
            )
        return self.runs_dir / run_id

    def read_run(self, run_id: str, strict: bool = True) -> Run:
        """One run. A run id that is not one, or names no run, is an error; a corrupt
        journal is an error when `strict`, else a run marked damaged (so one bad run does
        not hide every other one)."""
        folder = self._folder(run_id)
        if not folder.is_dir():
            raise JournalError(
                f"There is no run {run_id} in {self.runs_dir}",
                "List the runs with `gpuwizard history`.",
            )
        warnings: list[str] = []
        try:
            meta = json.loads((folder / "meta.json").read_text())
        except FileNotFoundError:
            meta = {"run": run_id}
            warnings.append("meta.json is missing")
        except (ValueError, OSError) as exc:
            meta = {"run": run_id}
            warnings.append(f"meta.json is unreadable: {exc}")
        try:
            records, more = read_records(folder / "journal.jsonl")
        except JournalError as exc:
            if strict:
                raise
            return Run(run_id, folder, meta, [], [*warnings, exc.cause], corrupt=exc)
        warnings.extend(more)
        return Run(run_id, folder, meta, records, warnings)

    def latest_run(self) -> Optional[Run]:
        runs = self.runs()
        return runs[-1] if runs else None


def rollback_targets(
    journal: Journal,
    run_id: Optional[str] = None,
    all_runs: bool = False,
    steps: Optional[set[str]] = None,
) -> list[Run]:
    """The runs a rollback undoes, oldest first: the one rule both the session (what a face
    shows and starts) and the engine (what the worker undoes) follow.

    One named run; else the newest run that changed something and has changes not yet undone
    (narrowed to `steps`); else, with `all_runs`, every such run. A run whose journal cannot be
    trusted is refused with where its backups are: named, or when nothing else is left to
    undo (so a damaged journal is never "nothing to roll back")."""
    if run_id:
        target = journal.read_run(run_id)
        why = target.damaged()
        if why:
            raise JournalError(
                f"Run {run_id} cannot be rolled back from its journal: {why}",
                f"The original bytes of every file it changed are in {target.folder}/"
                "backups (named by content hash); restore them by hand.",
            )
        return [target]
    runs = journal.runs()
    targets = [r for r in runs if r.changed_something() and r.pending_undo(steps)]
    if not targets:
        damaged = [r for r in runs if r.damaged()]
        if damaged:
            r = damaged[-1]
            raise JournalError(
                f"Nothing can be rolled back from the journal, but {r.damaged()}",
                f"The original bytes of every file it changed are in {r.folder}/backups "
                "(named by content hash); compare them with the files and restore by hand.",
            )
        return []
    return targets if all_runs else targets[-1:]


def read_records(path: Path) -> tuple[list[Record], list[str]]:
    """Read a journal file. A torn last line (a crash mid-write) is dropped with a warning;
    a corrupt line in the middle means the journal cannot be trusted and is an error."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return [], ["the journal file is missing (the run never wrote a record)"]
    except OSError as exc:
        raise JournalError(
            f"Cannot read the journal {path}: {exc.strerror}",
            "Check the file's permissions (run as root) and the disk.",
        ) from exc
    lines = raw.split(b"\n")
    records: list[Record] = []
    warnings: list[str] = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            records.append(Record(int(obj["seq"]), str(obj["type"]), dict(obj.get("data", {}))))
        except (ValueError, KeyError, TypeError) as exc:
            is_last = all(not rest.strip() for rest in lines[i + 1 :])
            if is_last:
                warnings.append(f"dropped a torn last record in {path.name} (line {i + 1})")
                continue
            raise JournalError(
                f"The journal {path} is corrupt at line {i + 1}",
                "Do not edit journal files by hand. Inspect the file; the backups in "
                f"{path.parent / 'backups'} hold the original bytes of every file gpuwizard "
                "changed, by content hash.",
                str(exc),
            ) from exc
    return records, warnings


def _last_seq(path: Path) -> int:
    records, _ = read_records(path)
    return max((r.seq for r in records), default=0)


def _atomic_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write_private(tmp, json.dumps(data, indent=2, sort_keys=True).encode("utf-8"))
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _disk_error(folder: Path, exc: OSError) -> JournalError:
    """A journal write that failed: a full disk named as such, anything else as it is."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return JournalError(
            f"The state directory's disk is full ({folder}): gpuwizard stopped before the next "
            "change",
            "Free some space there (df -h), then run `gpuwizard rollback` (or apply again).",
        )
    return JournalError(
        f"Cannot write the journal in {folder}: {exc.strerror}",
        "Check the disk and the folder's permissions, then run `gpuwizard rollback`.",
    )


def activity_mark(journal: Journal) -> tuple[Any, ...]:
    """What a later look can compare to tell whether any run started, wrote or ended since:
    each run's journal file, its size and modification time (a stat each: cheap)."""
    out = []
    try:
        names = sorted(os.listdir(journal.runs_dir))
    except OSError:
        return ()
    for name in names:
        try:
            st = os.stat(journal.runs_dir / name / "journal.jsonl")
        except OSError:
            continue
        out.append((name, st.st_size, st.st_mtime_ns))
    return tuple(out)


class RunWriter:
    """Appends fsynced records to one run's journal and stores its backups."""

    def __init__(self, run_id: str, folder: Path, next_seq: int = 1) -> None:
        self.run_id = run_id
        self.folder = folder
        self.path = folder / "journal.jsonl"
        self.events_path = folder / "events.jsonl"
        self._seq = next_seq
        self._events_fd: Optional[int] = None
        self._lock = threading.Lock()  # checks run together (actions.together) append too

    def append(self, rtype: str, data: dict[str, Any]) -> int:
        with self._lock:
            return self._append(rtype, data)

    def _append(self, rtype: str, data: dict[str, Any]) -> int:
        seq = self._seq
        line = json.dumps(
            {"seq": seq, "type": rtype, "time": clock.now(), "data": data}, ensure_ascii=False
        )
        fd = os.open(str(self.path), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        size = os.fstat(fd).st_size
        try:
            payload = line.encode("utf-8") + b"\n"
            if os.write(fd, payload) != len(payload):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            os.fsync(fd)
        except OSError as exc:
            # never leave half a record for the next one to follow (a corrupt middle line)
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            raise _disk_error(self.folder, exc) from None
        finally:
            os.close(fd)
        if seq == 1:
            fsync_dir(self.folder)
        self._seq += 1
        _Transitions.tick()
        return seq

    def save_backup(self, data: bytes) -> str:
        """Store bytes by content hash (fsynced) and return the hash."""
        sha = sha256_bytes(data)
        target = self.folder / "backups" / sha
        if not target.exists():
            tmp = target.with_name(f".{sha}.tmp")
            try:
                write_private(tmp, data)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                raise _disk_error(self.folder, exc) from None
            os.replace(tmp, target)
            fsync_dir(target.parent)
        return sha

    def load_backup(self, sha: str) -> bytes:
        path = self.folder / "backups" / sha
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise JournalError(
                f"The backup {sha[:12]}… of run {self.run_id} is missing",
                f"Look for it in {path.parent}; without it that file cannot be restored.",
            ) from exc
        if sha256_bytes(data) != sha:
            raise JournalError(
                f"The backup {sha[:12]}… of run {self.run_id} is damaged (hash mismatch)",
                "The disk may be failing. The file cannot be restored byte-exact from it.",
            )
        return data

    def write_event(self, line: str) -> None:
        """One event line, appended with one write (the file stays open: opening it for each
        of apt's output lines capped the worker at about 45,000 lines/s). Not fsynced: the
        journal is the record, events are what a face shows."""
        if self._events_fd is None:
            self._events_fd = os.open(
                str(self.events_path),
                os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW,
                0o600,
            )
        with self._lock:
            os.write(self._events_fd, (line + "\n").encode("utf-8"))

    def close_events(self) -> None:
        if self._events_fd is not None:
            os.close(self._events_fd)
            self._events_fd = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close_events()
