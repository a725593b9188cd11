"""Files, written and removed atomically and restored byte-exact with their mode and owner."""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from gpuwizard.actions.base import Action, ApplyContext, Diff, register
from gpuwizard.errors import RollbackConflict, WizardError
from gpuwizard.host.system import Host
from gpuwizard.journal import fsync_dir, sha256_bytes

# Strategies that undo only gpuwizard's own part of a file someone edited since we wrote it:
# name -> f(current, before, after) -> bytes to write, or None if they cannot.
MERGE_BACK: dict[str, Callable[[bytes, Optional[bytes], bytes], Optional[bytes]]] = {}
# The same strategies' check of bytes about to be restored (raises RollbackConflict when the
# program that reads the file would refuse them); --force skips it.
RESTORE_CHECK: dict[str, Callable[[bytes], None]] = {}


def read_xattrs(real: Path) -> dict[str, str]:
    """A file's extended attributes (SELinux label, ACLs, user.*), as hex, for the journal."""
    out: dict[str, str] = {}
    try:
        names = os.listxattr(real, follow_symlinks=False)
    except OSError:
        return out
    for name in names:
        try:
            out[name] = os.getxattr(real, name, follow_symlinks=False).hex()
        except OSError:
            continue
    return out


def _set_xattrs(fd: int, xattrs: dict[str, str]) -> None:
    for name, value in xattrs.items():
        try:
            os.setxattr(fd, name, bytes.fromhex(value))
        except OSError:
            continue  # e.g. security.* without the privilege: the rest still go back


def missing_dirs(host: Host, path: str) -> list[str]:
    """The folders above system path `path` that do not exist yet, outermost first (a
    write creates them), as system paths: undo finds them again through the host."""
    out: list[str] = []
    p = Path(path).parent
    while p != p.parent and not host.path(p).exists():
        out.append(str(p))
        p = p.parent
    return list(reversed(out))


def remove_created_dirs(host: Host, dirs: list[str]) -> list[str]:
    """Remove the folders a write created, innermost first, where they are empty again."""
    removed = []
    for d in reversed(dirs):
        if not d.startswith("/") or ".." in d.split("/"):
            break  # not a path gpuwizard wrote: a journal edited by hand
        try:
            os.rmdir(host.path(d))
            removed.append(d)
        except OSError:
            break  # not empty (someone put a file there), or gone: keep the rest
    return removed


@dataclass(frozen=True)
class FileState:
    """A file as found: its bytes, mode and owner, or absent."""

    exists: bool
    data: Optional[bytes] = None
    mode: Optional[int] = None
    uid: Optional[int] = None
    gid: Optional[int] = None
    link_target: Optional[str] = None  # when the path itself is a symlink
    xattrs: Optional[dict[str, str]] = None

    @property
    def sha(self) -> Optional[str]:
        return sha256_bytes(self.data) if self.data is not None else None


def read_state(real: Path, shown: str) -> FileState:
    """Read a file's state; refuse a directory or a dangling symlink where a file belongs."""
    if real.is_symlink() and not real.exists():
        raise WizardError(
            f"{shown} is a symlink to {os.readlink(real)}, which does not exist",
            f"Remove the dangling link (rm {shown}) or make it point at a real file.",
        )
    if real.is_dir():
        raise WizardError(
            f"{shown} is a directory, but a file is expected there",
            f"Move the directory away (mv {shown} {shown}.dir) and run gpuwizard again.",
        )
    if not real.exists():
        return FileState(False)
    link = os.readlink(real) if real.is_symlink() else None
    try:
        # O_NOFOLLOW: `real` was resolved inside the root; a link put there since is refused
        fd = os.open(str(real), os.O_RDONLY | (0 if link else os.O_NOFOLLOW))
    except PermissionError as exc:
        raise WizardError(
            f"Cannot read {shown}: permission denied", "Run gpuwizard as root (sudo)."
        ) from exc
    except OSError as exc:
        raise WizardError(
            f"Cannot read {shown}: {exc.strerror}",
            "Something changed the file while gpuwizard looked at it; run gpuwizard again.",
        ) from exc
    try:
        st = os.fstat(fd)
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    return FileState(
        True,
        b"".join(chunks),
        stat.S_IMODE(st.st_mode),
        st.st_uid,
        st.st_gid,
        link,
        read_xattrs(real),
    )


def atomic_write(
    real: Path,
    data: bytes,
    mode: int,
    uid: Optional[int],
    gid: Optional[int],
    xattrs: Optional[dict[str, str]] = None,
) -> None:
    """Replace a file atomically: temp file beside it, mode, owner and extended attributes
    set (those given, else the replaced file's), fsync, rename, fsync the directory. Readers
    see the old bytes or the new, never a mix."""
    real.parent.mkdir(parents=True, exist_ok=True)
    if xattrs is None:
        xattrs = read_xattrs(real) if real.exists() else {}
    tmp = real.with_name(f".{real.name}.gpuwizard-{secrets.token_hex(4)}.tmp")
    fd = os.open(str(tmp), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        if uid is not None and gid is not None and os.geteuid() == 0:
            os.fchown(fd, uid, gid)
        _set_xattrs(fd, xattrs)
        os.fchmod(fd, mode)  # after the ACL xattr, which would otherwise set the mode bits
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, real)
    fsync_dir(real.parent)


def target_of(host: Host, path: str) -> tuple[Path, str]:
    """The real file to change: we write *through* a symlink to its target (so a linked
    daemon.json stays linked), and say so in the plan. Under --root the target is resolved
    inside the root, as chroot would: a link to /etc/shadow means <root>/etc/shadow."""
    link = host.lpath(path)
    real = host.path(path)
    if link != real and os.path.islink(link):
        target = os.readlink(link)
        if not real.exists():
            raise WizardError(
                f"{path} is a symlink to {target}, which does not exist"
                + ("" if host.at_slash or host.stand_in_root else f" in the root {host.root}"),
                f"Remove the dangling link (rm {host.display(path)}) or make it point at a "
                "real file.",
            )
        where = host.system_path(real)
        shown = f"{path} (a symlink; its target {where} is written"
        shown += "" if host.at_slash or host.stand_in_root else f", under {host.root}"
        return real, shown + f"; the link says {target})"
    return real, path


def _text(data: Optional[bytes]) -> Optional[str]:
    if data is None:
        return None
    return data.decode("utf-8", errors="replace")


def _restore(ctx: ApplyContext, undo: dict[str, Any], result: Optional[dict[str, Any]]) -> str:
    """Put a file back as it was, if it is still what we left there. The file is found
    again from its system path through the host (never from a path stored in the journal,
    which a root's owner could have edited to point outside it)."""
    shown = undo["path"]
    real, _ = target_of(ctx.host, shown)
    current = read_state(real, shown) if (real.exists() or real.is_symlink()) else FileState(False)
    before_sha: Optional[str] = undo.get("before_sha")
    after_sha: Optional[str] = undo.get("after_sha")
    before = ctx.run.load_backup(before_sha) if before_sha else None
    xattrs: Optional[dict[str, str]] = undo.get("xattrs")
    strategy = undo.get("merge_back")
    if current.sha == before_sha:
        if current.exists and undo.get("mode") is not None:
            if os.geteuid() == 0:
                os.chown(real, int(undo["uid"]), int(undo["gid"]))
            os.chmod(real, int(undo["mode"]))
        return f"{shown}: already as it was"
    if current.sha != after_sha:
        merged = None
        if strategy and current.data is not None and strategy in MERGE_BACK:
            after = ctx.run.load_backup(after_sha) if after_sha else b""
            merged = MERGE_BACK[strategy](current.data, before, after)
        if merged is None:
            raise RollbackConflict(
                f"{shown} was changed by someone else after gpuwizard wrote it",
                "Compare the three versions and merge by hand: the original is in "
                f"{ctx.run.folder / 'backups' / str(before_sha)}; "
                "or roll back with --force to restore the original bytes anyway.",
            )
        atomic_write(
            real, merged, 0o644 if current.mode is None else current.mode, current.uid, current.gid
        )
        return f"{shown}: edited since; only gpuwizard's own changes were undone"
    if before is None:
        real.unlink(missing_ok=True)
        fsync_dir(real.parent)
        gone = remove_created_dirs(ctx.host, list(undo.get("created_dirs") or []))
        return f"{shown}: removed (it did not exist before)" + (
            f"; removed the folder(s) gpuwizard created: {', '.join(gone)}" if gone else ""
        )
    if strategy in RESTORE_CHECK:
        RESTORE_CHECK[strategy](before)
    atomic_write(real, before, int(undo["mode"]), undo.get("uid"), undo.get("gid"), xattrs)
    return f"{shown}: restored byte-exact"


@register
@dataclass
class WriteFile(Action):
    """Write a file with exact content, keeping an existing file's mode and owner."""

    kind = "write-file"

    path: str = ""
    content: bytes = b""
    mode: Optional[int] = None  # None: keep the existing mode, or 0644 for a new file
    merge_back: Optional[str] = None  # name of a MERGE_BACK strategy for edited files
    reason: str = ""

    def describe(self) -> str:
        return self.reason or f"write {self.path}"

    def params(self) -> dict[str, Any]:
        return {"path": self.path, "bytes": len(self.content), "mode": self.mode}

    def simulate(self, sim: Any) -> None:
        sim.files[self.path] = self.content

    def preview(self, host: Host) -> list[Diff]:
        real, shown = target_of(host, self.path)
        state = read_state(real, self.path)
        mode_note = ""
        if state.exists and self.mode is not None and state.mode != self.mode:
            mode_note = f"mode {oct(state.mode or 0)} -> {oct(self.mode)}"
        return [Diff(shown, _text(state.data), _text(self.content), "file", mode_note)]

    def needed(self, host: Host) -> bool:
        real, _ = target_of(host, self.path)
        state = read_state(real, self.path)
        if not state.exists or state.data != self.content:
            return True
        return self.mode is not None and state.mode != self.mode

    def prepare(self, ctx: ApplyContext) -> dict[str, Any]:
        real, _ = target_of(ctx.host, self.path)
        state = read_state(real, self.path)
        before_sha = ctx.run.save_backup(state.data) if state.data is not None else None
        after_sha = ctx.run.save_backup(self.content)
        return {
            "path": self.path,
            "real": str(real),
            "existed": state.exists,
            "before_sha": before_sha,
            "after_sha": after_sha,
            "mode": state.mode,
            "uid": state.uid,
            "gid": state.gid,
            "xattrs": state.xattrs,
            "merge_back": self.merge_back,
            "created_dirs": [] if state.exists else missing_dirs(ctx.host, self.path),
        }

    def apply(self, ctx: ApplyContext) -> dict[str, Any]:
        real, shown = target_of(ctx.host, self.path)
        state = read_state(real, self.path)
        mode = self.mode if self.mode is not None else state.mode
        if mode is None:
            mode = 0o644
        atomic_write(real, self.content, mode, state.uid, state.gid)
        ctx.log(f"wrote {shown} ({len(self.content)} bytes)")
        return {"sha": sha256_bytes(self.content)}

    def verify(self, ctx: ApplyContext) -> None:
        real, shown = target_of(ctx.host, self.path)
        if real.read_bytes() != self.content:
            raise WizardError(
                f"{shown} does not hold what was written",
                "Another program may be rewriting it; look for one and stop it.",
            )

    @classmethod
    def undo(cls, ctx: ApplyContext, undo: dict[str, Any], result: Optional[dict[str, Any]]) -> str:
        return _restore(ctx, undo, result)


@register
@dataclass
class RemoveFile(Action):
    """Remove a file (a legacy repository list, say), keeping its bytes to restore it.
    A symlink is removed as a link; its target is left alone and the link is recreated
    on rollback."""

    kind = "remove-file"

    path: str = ""
    reason: str = ""

    def describe(self) -> str:
        return self.reason or f"remove {self.path}"

    def params(self) -> dict[str, Any]:
        return {"path": self.path}

    def simulate(self, sim: Any) -> None:
        sim.files[self.path] = None

    def preview(self, host: Host) -> list[Diff]:
        real = host.lpath(self.path)
        if real.is_symlink():
            return [
                Diff(
                    self.path,
                    f"symlink -> {os.readlink(real)}",
                    None,
                    "file",
                    "the link is removed; its target is left alone",
                )
            ]
        state = read_state(real, self.path)
        return [Diff(self.path, _text(state.data), None if state.exists else None, "file")]

    def needed(self, host: Host) -> bool:
        real = host.lpath(self.path)
        return real.exists() or real.is_symlink()

    def prepare(self, ctx: ApplyContext) -> dict[str, Any]:
        real = ctx.host.lpath(self.path)
        if real.is_symlink():
            return {"path": self.path, "real": str(real), "link": os.readlink(real)}
        state = read_state(real, self.path)
        return {
            "path": self.path,
            "real": str(real),
            "existed": state.exists,
            "before_sha": ctx.run.save_backup(state.data) if state.data is not None else None,
            "after_sha": None,
            "mode": state.mode,
            "uid": state.uid,
            "gid": state.gid,
            "xattrs": state.xattrs,
        }

    def apply(self, ctx: ApplyContext) -> dict[str, Any]:
        real = ctx.host.lpath(self.path)
        real.unlink(missing_ok=True)
        fsync_dir(real.parent)
        ctx.log(f"removed {ctx.host.display(self.path)} (backed up)")
        return {}

    @classmethod
    def undo(cls, ctx: ApplyContext, undo: dict[str, Any], result: Optional[dict[str, Any]]) -> str:
        real = ctx.host.lpath(undo["path"])  # never the journal's own idea of where
        if "link" in undo:
            if real.is_symlink() and os.readlink(real) == undo["link"]:
                return f"{undo['path']}: link already there"
            if real.exists() or real.is_symlink():
                raise RollbackConflict(
                    f"{undo['path']} was recreated by someone else",
                    "Remove it by hand if the old link should come back.",
                )
            os.symlink(undo["link"], real)
            fsync_dir(real.parent)
            return f"{undo['path']}: link restored"
        if not undo.get("existed"):
            return f"{undo['path']}: nothing to restore"
        return _restore(ctx, undo, result)
