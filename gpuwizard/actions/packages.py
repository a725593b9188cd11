"""Packages, installed and removed reversibly: the package set before is journaled, and
rollback removes exactly what the run added and puts back what it removed or changed, where
the package manager still can (and says which versions it could not).

Also the two repository actions whose effect is not a file: refreshing the package index of
one source, and importing a key into the rpm database.
"""

from __future__ import annotations

import os
import posixpath
import re
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from gpuwizard.actions.base import Action, ApplyContext, Diff, register
from gpuwizard.actions.files import WriteFile, atomic_write, read_state
from gpuwizard.errors import CommandFailed, RollbackConflict, WizardError
from gpuwizard.host.keys import keyring_fingerprints
from gpuwizard.host.packages import (
    TOOLKIT_PACKAGES,
    AptPackages,
    Change,
    DnfPackages,
    PackageManager,
    RpmPackages,
    ZypperPackages,
    package_manager,
    version_key,
)
from gpuwizard.host.sources import apt_list_prefix, experimental_url, login_remedy, wants_login
from gpuwizard.host.system import Host

DAEMON_JSON = "/etc/docker/daemon.json"


def _manager(host: Host) -> PackageManager:
    pm = package_manager(host)
    if pm is None:
        raise WizardError(
            "No package manager gpuwizard knows (apt, dnf, yum, zypper) was found",
            "Install the NVIDIA Container Toolkit by hand for this distribution.",
        )
    return pm


def wait_for_lock(ctx: ApplyContext, pm: PackageManager, deadline: float) -> None:
    """Wait, with a visible countdown, while another process holds the package lock (on a
    fresh Ubuntu it is usually unattended-upgrades); name it; give up at the deadline."""
    holder = pm.lock_holder()
    if holder is None:
        return
    start = time.monotonic()
    ctx.log(f"{holder.path} is locked by {holder.describe()}; waiting up to {deadline:.0f} s")
    while holder is not None:
        waited = time.monotonic() - start
        left = deadline - waited
        if left <= 0:
            raise WizardError(
                f"The package lock {holder.path} is still held by {holder.describe()} "
                f"after {deadline:.0f} s",
                "Let it finish (unattended-upgrades often runs on a fresh machine: "
                "`systemctl status unattended-upgrades`), or stop it, then run gpuwizard "
                "again; --lock-wait sets how long to wait.",
            )
        ctx.progress(
            min(1.0, waited / deadline) if deadline else None,
            f"waiting for {holder.describe()} to release {holder.path}: {int(left)} s left",
        )
        time.sleep(min(1.0, max(left, 0.05)))
        holder = pm.lock_holder()
    ctx.log(f"{pm.name} lock released after {time.monotonic() - start:.0f} s")
    ctx.progress(None, "lock released")


def _status(ctx: ApplyContext) -> Any:
    def status(fraction: float, label: str) -> None:
        ctx.progress(fraction, label)

    return status


def _lines(names: dict[str, Optional[str]]) -> Optional[str]:
    shown = [f"{n} {v}" for n, v in sorted(names.items()) if v is not None]
    return "\n".join(shown) if shown else None


@register
@dataclass
class InstallPackages(Action):
    """Install the four toolkit packages pinned to one version."""

    kind = "install-packages"

    names: list[str] = field(default_factory=list)
    version: Optional[str] = None  # None: the newest the NVIDIA repository offers at apply
    repo_url: str = ""  # where "newest" is looked for
    changes: list[Change] = field(default_factory=list)  # planned, when known at plan time
    lock_wait: float = 300.0
    # set by prepare: the toolkit's repository serves the whole install by itself
    alone: bool = field(default=False, compare=False)

    def describe(self) -> str:
        what = (
            self.version
            or "the newest version in the NVIDIA repository "
            "(resolved after the package index is refreshed)"
        )
        return f"install {', '.join(self.names)} pinned to {what}"

    def params(self) -> dict[str, Any]:
        return {
            "names": self.names,
            "version": self.version,
            "repo_url": self.repo_url,
            "changes": [c.describe() for c in self.changes],
        }

    def simulate(self, sim: Any) -> None:
        for n in self.names:
            sim.packages[n] = self.version or "newest"
        for c in self.changes:
            sim.packages[c.name] = c.after

    def preview(self, host: Host) -> list[Diff]:
        pm = _manager(host)
        installed = pm.installed(self.names)
        before = {n: installed.get(n) for n in self.names}
        after: dict[str, Optional[str]] = {n: self.version or "(newest)" for n in self.names}
        for c in self.changes:
            before.setdefault(c.name, c.before)
            after[c.name] = c.after
        extra = [c.describe() for c in self.changes if c.name not in self.names]
        summary = "pinned to one version" + ("; also: " + ", ".join(extra) if extra else "")
        return [Diff("packages", _lines(before), _lines(after), "packages", summary)]

    def needed(self, host: Host) -> bool:
        if self.version is None:
            return True
        installed = _manager(host).installed(self.names)
        return any(installed.get(n) != self.version for n in self.names)

    def _resolve(self, ctx: ApplyContext, pm: PackageManager) -> str:
        if self.version:
            return self.version
        version = newest_from(pm, "nvidia-container-toolkit", self.repo_url)
        if version is None:
            raise WizardError(
                "The NVIDIA repository offers no nvidia-container-toolkit for this machine",
                "Check that the repository step ran (gpuwizard apply --step repository) and "
                "that the mirror given to --repo-url carries this architecture.",
            )
        ctx.log(f"newest version in the repository: {version}")
        return version

    def prepare(self, ctx: ApplyContext) -> dict[str, Any]:
        with ctx.host.probing():  # read-only until the intent: ask apt each question once
            return self._prepare(ctx)

    def _prepare(self, ctx: ApplyContext) -> dict[str, Any]:
        pm = _manager(ctx.host)
        version = self._resolve(ctx, pm)
        self.version = version
        quick = (
            pm.sources_in_our_list("nvidia-container-toolkit")
            if isinstance(pm, AptPackages)
            else {}
        )
        offered = list(quick) if version in quick else pm.available("nvidia-container-toolkit")
        if version not in offered:
            raise WizardError(
                f"nvidia-container-toolkit {version} is not in the configured repositories"
                + (f" (they offer {', '.join(offered[:6])})" if offered else ""),
                "Pick one of those with --toolkit-version, or leave it out for the newest.",
            )
        specs = {n: version for n in self.names}
        changes, self.alone = pm.resolve_install(specs)
        installed = pm.installed()
        before: dict[str, Optional[str]] = {n: installed.get(n) for n in self.names}
        for c in changes:
            before[c.name] = installed.get(c.name)
        undo: dict[str, Any] = {
            "manager": pm.name,
            "version": version,
            "names": self.names,
            "before": before,
            "links_before": nvidia_links(ctx.host),
            # absent before: purged on rollback, unless their config files were there already
            "purge": sorted(
                set(n for n, v in before.items() if v is None)
                - set(pm.config_only([n for n, v in before.items() if v is None]))
            ),
            "planned": [c.describe() for c in changes],
            "alone": self.alone,
            "lock_wait": self.lock_wait,
            "absent_paths": _absent_paths(ctx.host),
        }
        if isinstance(pm, DnfPackages):
            undo["history_before"] = pm.last_transaction()
        return undo

    def apply(self, ctx: ApplyContext) -> dict[str, Any]:
        pm = _manager(ctx.host)
        version = self.version or self._resolve(ctx, pm)
        specs = {n: version for n in self.names}
        installed = pm.installed(self.names)
        downgrade = any(v and version_key(v) > version_key(version) for v in installed.values())
        wait_for_lock(ctx, pm, self.lock_wait)
        alone = self.alone and self.version == version
        ctx.log(
            "installing "
            + " ".join(f"{n}={version}" for n in self.names)
            + (" from the NVIDIA repository alone (nothing else is needed)" if alone else "")
        )
        pm.install(
            specs,
            on_line=ctx.line_logger(),
            status=_status(ctx),
            allow_downgrades=downgrade,
            alone=alone,
        )
        ctx.progress(1.0, "installed")
        result: dict[str, Any] = {"after": pm.installed(self.names), "version": version}
        if isinstance(pm, DnfPackages):
            result["history"] = pm.last_transaction()
        return result

    def verify(self, ctx: ApplyContext) -> None:
        pm = _manager(ctx.host)
        got = pm.installed(self.names)
        wrong = [f"{n} {got.get(n, 'missing')}" for n in self.names if got.get(n) != self.version]
        if wrong:
            raise WizardError(
                f"After the install, these are not at {self.version}: " + ", ".join(wrong),
                "Read the package manager's output above; the four packages must "
                "have the same version.",
            )

    @classmethod
    def undo(cls, ctx: ApplyContext, undo: dict[str, Any], result: Optional[dict[str, Any]]) -> str:
        pm = _manager(ctx.host)
        before: dict[str, Optional[str]] = dict(undo.get("before", {}))
        notes: list[str] = []
        if (
            isinstance(pm, DnfPackages)
            and result
            and result.get("history")
            and result.get("history") != undo.get("history_before")
        ):
            # dnf undoes its own transaction best (dependencies included); whatever it
            # could not do is then done package by package below
            res = pm.history_undo(int(result["history"]), on_line=ctx.line_logger())
            if res.ok:
                notes.append(f"dnf history undo {result['history']}")
            else:
                last = res.tail.splitlines()[-1] if res.tail else "no output"
                notes.append(
                    f"dnf history undo {result['history']} did not work ({last}); "
                    "undoing package by package"
                )
        note = restore_package_set(
            ctx, pm, before, notes, float(undo.get("lock_wait", 300)), set(undo.get("purge", []))
        )
        added = [n for n in TOOLKIT_PACKAGES if n in before and before.get(n) is None]
        if added and not pm.installed(added):
            gone = _remove_made_files(ctx, list(undo.get("absent_paths") or []))
            if gone:
                note += "; removed what the toolkit's install made: " + ", ".join(gone)
        if "links_before" in undo:
            gone = remove_dangling_links(ctx.host, set(undo["links_before"]))
            if gone:
                note += "; removed the link(s) the packages' scripts left: " + ", ".join(gone)
        return note


LINK_DIRS = ("/usr/bin", "/usr/sbin", "/usr/local/bin")


def nvidia_links(host: Host) -> list[str]:
    """The nvidia* symlinks in the program folders (maintainer scripts make some)."""
    out = []
    for d in LINK_DIRS:
        try:
            entries = list(host.path(d).iterdir())
        except OSError:
            continue
        out += [f"{d}/{p.name}" for p in entries if p.name.startswith("nvidia") and p.is_symlink()]
    return sorted(out)


def remove_dangling_links(host: Host, before: set[str]) -> list[str]:
    """Remove nvidia* links that were not there before the install and now point nowhere
    (the packages they pointed into are gone); a link someone else made, or one that still
    works, stays."""
    gone = []
    for link in nvidia_links(host):
        folder, _, name = link.rpartition("/")
        real = host.path(folder) / name  # the link itself, not where it points
        if link in before or not real.is_symlink():
            continue
        target = os.readlink(real)
        resolved = host.path(target) if target.startswith("/") else real.parent / target
        if resolved.exists():
            continue
        real.unlink()
        gone.append(link)
    return gone


def restore_package_set(
    ctx: ApplyContext,
    pm: PackageManager,
    before: dict[str, Optional[str]],
    notes: list[str],
    lock_wait: float = 300.0,
    purge: Optional[set[str]] = None,
) -> str:
    """Bring the named packages back to their recorded versions: put back changed or removed
    ones where the version is still available, then remove exactly the ones that were absent
    (never cascading). Says what could not be restored."""
    current = pm.installed(list(before))
    add_back = {n: v for n, v in before.items() if v is not None and current.get(n) != v}
    drop = [n for n, v in before.items() if v is None and n in current]
    lost: list[str] = []
    restorable: dict[str, str] = {}
    for n, v in add_back.items():
        if v in pm.available(n):
            restorable[n] = v
        else:
            lost.append(f"{n} {v}")
    # the four must match exactly: put none of them back if one of them cannot be
    if any(item.split(" ")[0] in TOOLKIT_PACKAGES for item in lost):
        for n in [n for n in restorable if n in TOOLKIT_PACKAGES]:
            lost.append(f"{n} {restorable.pop(n)} (kept with the others at one version)")
    if restorable or drop:
        wait_for_lock(ctx, pm, lock_wait)
    if restorable:
        downgrade = any(
            current.get(n) and version_key(current[n]) > version_key(v)
            for n, v in restorable.items()
        )
        pm.install(restorable, on_line=ctx.line_logger(), allow_downgrades=downgrade)
        notes.append("put back " + ", ".join(f"{n} {v}" for n, v in sorted(restorable.items())))
    if drop:
        fresh = [n for n in drop if n in (purge or set())]
        plain = [n for n in drop if n not in fresh]
        try:
            if fresh:
                pm.purge(fresh, on_line=ctx.line_logger())
            if plain:
                pm.remove(plain, on_line=ctx.line_logger(), exact=True)
        except CommandFailed as exc:
            raise RollbackConflict(
                "Cannot remove " + ", ".join(drop) + ": something installed since needs them",
                "Remove what depends on them first (see the output), then roll back again.",
                exc.output_tail,
            ) from exc
        if fresh:
            notes.append("purged (installed by gpuwizard) " + ", ".join(sorted(fresh)))
        if plain:
            notes.append("removed " + ", ".join(sorted(plain)))
    if lost:
        notes.append(
            "could not restore (no longer in any configured repository): " + ", ".join(lost)
        )
        for item in lost:
            ctx.log(f"could not restore {item}: that version is no longer available", "err")
    if not notes:
        return "packages already as they were"
    return "; ".join(notes)


# Files the toolkit's maintainer scripts make (nvidia-container-toolkit-base's postinst writes
# config.toml with `nvidia-ctk config --in-place`, which no package owns) or ship as conffiles
# (kept by a remove): rollback removes the ones that did not exist before the install.
TOOLKIT_MADE_FILES = (
    "/etc/nvidia-container-runtime/config.toml",
    "/etc/nvidia-container-toolkit/nvidia-cdi-refresh.env",
)


def _absent_paths(host: Host) -> list[str]:
    out = []
    for f in TOOLKIT_MADE_FILES:
        for p in (f, posixpath.dirname(f)):
            if not host.path(p).exists() and p not in out:
                out.append(p)
    return out


def _remove_made_files(ctx: ApplyContext, absent: list[str]) -> list[str]:
    """Remove what the toolkit's install left that did not exist before (files first, then
    their folders if empty)."""
    gone = []
    # only these known paths, whatever the journal says (undo never follows stored paths)
    known = set(TOOLKIT_MADE_FILES) | {posixpath.dirname(f) for f in TOOLKIT_MADE_FILES}
    for p in sorted((a for a in absent if a in known), key=len, reverse=True):
        real = ctx.host.path(p)
        if real.is_file() or real.is_symlink():
            real.unlink()
            gone.append(p)
        elif real.is_dir() and not any(real.iterdir()):
            real.rmdir()
    return gone


_PLAIN_URL = re.compile(r"https?://[A-Za-z0-9.:@-]+(/[A-Za-z0-9./-]*)?")


def _no_apt_index_of(host: Host, urls: list[str]) -> bool:
    """True when apt's lists folder plainly holds no index downloaded from these URLs.

    Then `apt-cache madison` cannot name a version from them, and skipping it matters: where
    apt keeps no package cache (container images set `Dir::Cache::pkgcache ""`) each call
    parses every index again, 0.5 s or more, and `gpuwizard status` on a host without the
    repository would spend most of its time there. Only plain http(s) URLs are decided here
    (apt quotes other characters in file names); anything unusual falls through to apt.
    """
    if not all(_PLAIN_URL.fullmatch(u) for u in urls):
        return False
    try:
        names = [p.name for p in host.path("/var/lib/apt/lists").iterdir()]
    except OSError:
        return False
    if not any(n.endswith("Release") or "_Packages" in n for n in names):
        # no index at all here: true when this is the folder apt uses (an image whose lists
        # were cleaned, a bed), not when Dir::State moved it; apt-config says which (10 ms,
        # where madison over the installed packages alone takes 0.1 s)
        return _apt_lists_dir(host) == "/var/lib/apt/lists/"
    wanted = tuple(apt_list_prefix(u) for u in urls)
    return not any(n.startswith(wanted) for n in names)


def _apt_lists_dir(host: Host) -> Optional[str]:
    """The folder apt keeps its indexes in (Dir::State::lists), as apt resolves it."""
    try:
        res = host.run(["apt-config", "shell", "D", "Dir::State::lists/d"], check=False, timeout=15)
    except (WizardError, OSError):
        return None
    m = re.fullmatch(r"D='([^']*)'\s*", res.stdout) if res.returncode == 0 else None
    return m.group(1) if m else None


def newest_from(pm: PackageManager, name: str, repo_url: str) -> Optional[str]:
    """The newest version of a package offered by the NVIDIA repository (not by another
    source that happens to carry the same name)."""
    if isinstance(pm, AptPackages) and repo_url:
        base = repo_url.rstrip("/")
        prefixes = [base, *([exp] if (exp := experimental_url(base)) else [])]
        if _no_apt_index_of(pm.host, prefixes):
            return None

        def from_us(sources: dict[str, list[str]]) -> list[str]:
            return [
                v
                for v, srcs in sources.items()
                if any(s.startswith(p) for s in srcs for p in prefixes)
            ]

        ours = from_us(pm.sources_in_our_list(name)) or from_us(pm.sources_of(name))
        if ours:
            return sorted(ours, key=version_key, reverse=True)[0]
        return None
    versions = pm.available(name)
    return versions[0] if versions else None


@register
@dataclass
class RemovePackages(Action):
    """Remove legacy packages (nvidia-docker2, nvidia-container-runtime): remove, never purge,
    after a journaled copy of /etc/docker/daemon.json, which old nvidia-docker2 owns."""

    kind = "remove-packages"

    names: list[str] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    keep_files: list[str] = field(default_factory=lambda: [DAEMON_JSON])
    lock_wait: float = 300.0
    _kept: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def describe(self) -> str:
        return (
            f"remove (not purge) the legacy {', '.join(self.names)}; "
            f"{', '.join(self.keep_files)} is backed up and kept"
        )

    def params(self) -> dict[str, Any]:
        return {"names": self.names, "changes": [c.describe() for c in self.changes]}

    def simulate(self, sim: Any) -> None:
        for c in self.changes or [Change(n, None, None) for n in self.names]:
            sim.packages[c.name] = None

    def preview(self, host: Host) -> list[Diff]:
        pm = _manager(host)
        installed = pm.installed()
        names = sorted({*self.names, *(c.name for c in self.changes)})
        before = {n: installed.get(n) for n in names}
        return [
            Diff(
                "packages",
                _lines(before),
                None,
                "packages",
                "removed, not purged: configuration files stay",
            )
        ]

    def needed(self, host: Host) -> bool:
        return bool(_manager(host).installed(self.names))

    def prepare(self, ctx: ApplyContext) -> dict[str, Any]:
        pm = _manager(ctx.host)
        changes = pm.simulate_remove(self.names)
        installed = pm.installed()
        before = {c.name: installed.get(c.name) for c in changes}
        for n in self.names:
            before.setdefault(n, installed.get(n))
        debs: dict[str, str] = {}
        if isinstance(pm, AptPackages):
            for n, v in before.items():
                deb = pm.deb_in_cache(n, v) if v else None
                if deb is not None:
                    debs[n] = ctx.run.save_backup(deb.read_bytes())
        kept: dict[str, Any] = {}
        for path in self.keep_files:
            real = ctx.host.path(path)
            state = read_state(real, path)
            if state.exists and state.data is not None:
                kept[path] = {
                    "real": str(real),
                    "sha": ctx.run.save_backup(state.data),
                    "mode": state.mode,
                    "uid": state.uid,
                    "gid": state.gid,
                }
        self._kept = kept
        return {
            "manager": pm.name,
            "before": before,
            "debs": debs,
            "kept": kept,
            "lock_wait": self.lock_wait,
        }

    def apply(self, ctx: ApplyContext) -> dict[str, Any]:
        pm = _manager(ctx.host)
        wait_for_lock(ctx, pm, self.lock_wait)
        pm.remove(self.names, on_line=ctx.line_logger())
        restored = []
        # an rpm %config file is moved to .rpmsave on erase; a deb conffile stays on remove;
        # either way the user's file must still be there afterwards
        for path, info in self._kept.items():
            real = ctx.host.path(path)  # not the journal's stored path: inside the root
            if not real.exists():
                atomic_write(
                    real,
                    ctx.run.load_backup(info["sha"]),
                    int(info["mode"]),
                    info.get("uid"),
                    info.get("gid"),
                )
                ctx.log(f"{path} was removed with the package; restored from the backup")
                restored.append(path)
        return {"restored": restored}

    @classmethod
    def undo(cls, ctx: ApplyContext, undo: dict[str, Any], result: Optional[dict[str, Any]]) -> str:
        pm = _manager(ctx.host)
        before: dict[str, Optional[str]] = dict(undo.get("before", {}))
        kept: dict[str, Any] = dict(undo.get("kept", {}))
        # what the kept files hold now (earlier steps' undo already ran): a reinstalled
        # package must not change them (an rpm %config file would be replaced)
        now = {p: ctx.host.path(p).read_bytes() for p in kept if ctx.host.path(p).is_file()}
        current = pm.installed(list(before))
        missing = {n: v for n, v in before.items() if v and current.get(n) != v}
        notes: list[str] = []
        from_cache: list[str] = []
        if missing and isinstance(pm, AptPackages):
            from_cache = cls._reinstall_saved_debs(ctx, pm, undo, missing)
            if from_cache:
                notes.append("reinstalled " + ", ".join(from_cache) + " from the saved .deb")
        rest = {n: v for n, v in before.items() if n not in from_cache}
        note = restore_package_set(ctx, pm, rest, notes, float(undo.get("lock_wait", 300)))
        for path, info in kept.items():
            real = ctx.host.path(path)  # not the journal's stored path: inside the root
            want = now.get(path)
            if want is None:
                if not real.exists():
                    atomic_write(
                        real,
                        ctx.run.load_backup(info["sha"]),
                        int(info["mode"]),
                        info.get("uid"),
                        info.get("gid"),
                    )
                    note += f"; {path} restored from the backup"
            elif not real.is_file() or real.read_bytes() != want:
                atomic_write(real, want, int(info["mode"]), info.get("uid"), info.get("gid"))
                note += f"; {path} kept as it was (the reinstalled package shipped its own)"
        return note

    @staticmethod
    def _reinstall_saved_debs(
        ctx: ApplyContext, pm: AptPackages, undo: dict[str, Any], missing: dict[str, str]
    ) -> list[str]:
        """Reinstall removed packages from the .deb files saved in the journal (the legacy
        repository that had them is usually gone by now)."""
        debs = undo.get("debs", {})
        staged: list[str] = []
        names: list[str] = []
        folder = ctx.host.path("/var/cache/gpuwizard")
        for n in missing:
            if n in debs:
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"{n}.deb").write_bytes(ctx.run.load_backup(debs[n]))
                staged.append(f"/var/cache/gpuwizard/{n}.deb")
                names.append(n)
        if not staged:
            return []
        wait_for_lock(ctx, pm, float(undo.get("lock_wait", 300)))
        try:
            ctx.host.run(
                [
                    "apt-get",
                    "install",
                    "-y",
                    "-q",
                    "--allow-downgrades",
                    "-o",
                    "Dpkg::Options::=--force-confold",
                    *staged,
                ],
                env={"DEBIAN_FRONTEND": "noninteractive"},
                on_line=ctx.line_logger(),
            )
        finally:
            for s in staged:
                ctx.host.path(s).unlink(missing_ok=True)
        return names


@register
@dataclass
class RefreshPackageIndex(Action):
    """Refresh the package index of the NVIDIA source only (`apt-get update` limited to its
    list, `dnf makecache --repo`, `zypper refresh REPO`)."""

    kind = "refresh-package-index"

    source: str = ""  # apt: the list file; rpm: the repository id
    uri: str = ""  # the repository URL, for messages and apt's index file names

    def describe(self) -> str:
        return f"refresh the package index of {self.uri} only"

    def params(self) -> dict[str, Any]:
        return {"source": self.source, "uri": self.uri}

    def preview(self, host: Host) -> list[Diff]:
        pm = package_manager(host)
        if isinstance(pm, AptPackages):
            cmd = (
                "apt-get update -o Dir::Etc::sourcelist="
                f"{self.source.removeprefix('/etc/apt/')} -o Dir::Etc::sourceparts=- "
                "-o APT::Get::List-Cleanup=0"
            )
        elif isinstance(pm, ZypperPackages):
            cmd = f"zypper refresh {self.source}"
        else:
            cmd = f"dnf makecache --repo={self.source}"
        return [Diff("command", None, cmd, "command", self.describe())]

    def needed(self, host: Host) -> bool:
        return True

    def prepare(self, ctx: ApplyContext) -> dict[str, Any]:
        lists = ctx.host.path("/var/lib/apt/lists")
        existing = sorted(p.name for p in lists.iterdir()) if lists.is_dir() else []
        return {"uri": self.uri, "existing": existing}

    def apply(self, ctx: ApplyContext) -> dict[str, Any]:
        pm = _manager(ctx.host)
        ctx.log(self.preview(ctx.host)[0].after or "")
        if isinstance(pm, AptPackages):
            res = pm.update_source(self.source, on_line=ctx.line_logger())
            problem = apt_update_problem(res.stdout + res.stderr)
            if res.returncode != 0 or problem:
                if wants_login(res.stdout + res.stderr):
                    raise WizardError(
                        f"apt could not read the NVIDIA repository at {self.uri}: it wants a "
                        "login (401 Unauthorized), and apt has none (or a wrong one) for it",
                        f"Give apt the mirror's login: {login_remedy(self.uri)}.",
                        res.tail,
                    )
                raise WizardError(
                    f"apt could not read the NVIDIA repository at {self.uri}: "
                    f"{problem or 'apt-get update failed'}",
                    "Check that this host reaches it (proxy, firewall). For a mirror or an "
                    "air-gapped copy, pass --repo-url and --key-url (and --key-fingerprint "
                    "if it re-signs).",
                    res.tail,
                )
        elif isinstance(pm, (DnfPackages, ZypperPackages)):
            res = pm.refresh(self.source, on_line=ctx.line_logger())
            if res.returncode != 0 or "Failed to download metadata" in res.stdout + res.stderr:
                if isinstance(pm, DnfPackages) and wants_login(res.stdout + res.stderr):
                    raise WizardError(
                        f"{pm.name} could not read the NVIDIA repository at {self.uri}: it "
                        "wants a login (HTTP 401), and the .repo file has none (or a wrong one)",
                        f"Give {pm.name} the mirror's login: {login_remedy(self.uri)}.",
                        res.tail,
                    )
                raise WizardError(
                    f"{pm.name} could not read the NVIDIA repository at {self.uri}",
                    "Check the network, or pass --repo-url and --key-url for a mirror.",
                    res.tail,
                )
        return {}

    @classmethod
    def undo(cls, ctx: ApplyContext, undo: dict[str, Any], result: Optional[dict[str, Any]]) -> str:
        lists = ctx.host.path("/var/lib/apt/lists")
        if not lists.is_dir() or not undo.get("uri"):
            return "the package index stays; it is refreshed by the next update"
        existing = set(undo.get("existing", []))
        prefixes = [apt_list_prefix(undo["uri"])]
        removed = 0
        for p in lists.iterdir():
            if p.name not in existing and any(p.name.startswith(x) for x in prefixes):
                p.unlink()
                removed += 1
        return (
            f"removed {removed} index file(s) this run downloaded"
            if removed
            else "no index files of this run left"
        )


def apt_update_problem(output: str) -> str:
    """The line of `apt-get update` output that says why the source is unusable."""
    for marker in (
        "NO_PUBKEY",
        "is not signed",
        "Failed to fetch",
        "BADSIG",
        "Conflicting values set for option Signed-By",
        "Could not connect",
        "404  Not Found",
        "Malformed entry",
    ):
        for line in output.splitlines():
            if marker in line:
                return line.strip()
    return ""


@register
@dataclass
class ImportRpmKey(Action):
    """`rpm --import` a key whose fingerprint was checked; undo `rpm -e gpg-pubkey-<id>`."""

    kind = "import-rpm-key"

    key_path: str = ""  # system path of the armored key (written by an earlier WriteFile)
    short_id: str = ""
    fingerprint: str = ""

    def describe(self) -> str:
        return f"trust the NVIDIA key {self.fingerprint} in the rpm database (rpm --import)"

    def params(self) -> dict[str, Any]:
        return {
            "key_path": self.key_path,
            "short_id": self.short_id,
            "fingerprint": self.fingerprint,
        }

    def preview(self, host: Host) -> list[Diff]:
        return [
            Diff(
                "rpm keys",
                None,
                f"gpg-pubkey-{self.short_id} ({self.fingerprint})",
                "packages",
                "imported after its fingerprint was checked",
            )
        ]

    def needed(self, host: Host) -> bool:
        pm = package_manager(host)
        return not (isinstance(pm, RpmPackages) and pm.has_key(self.short_id))

    def prepare(self, ctx: ApplyContext) -> dict[str, Any]:
        pm = _manager(ctx.host)
        had = isinstance(pm, RpmPackages) and pm.has_key(self.short_id)
        return {"short_id": self.short_id, "had": had}

    def apply(self, ctx: ApplyContext) -> dict[str, Any]:
        pm = _manager(ctx.host)
        assert isinstance(pm, RpmPackages)
        pm.import_key(ctx.host.path(self.key_path))
        return {}

    def verify(self, ctx: ApplyContext) -> None:
        pm = _manager(ctx.host)
        if isinstance(pm, RpmPackages) and not pm.has_key(self.short_id):
            raise WizardError(
                f"rpm does not list gpg-pubkey-{self.short_id} after the import",
                "Run `rpm -qa gpg-pubkey*` and check the rpm database.",
            )

    @classmethod
    def undo(cls, ctx: ApplyContext, undo: dict[str, Any], result: Optional[dict[str, Any]]) -> str:
        if undo.get("had"):
            return f"gpg-pubkey-{undo['short_id']} was trusted before; kept"
        pm = _manager(ctx.host)
        if isinstance(pm, RpmPackages) and pm.has_key(undo["short_id"]):
            pm.remove_key(undo["short_id"])
            return f"removed gpg-pubkey-{undo['short_id']} from the rpm database"
        return f"gpg-pubkey-{undo['short_id']} already gone"


@register
@dataclass
class WriteKeyring(WriteFile):
    """A binary keyring, written and undone like any file, but previewed as what a person
    can check: the fingerprint and user id of each key, the size and the hash."""

    kind = "write-keyring"

    fingerprint: str = ""
    uids: list[str] = field(default_factory=list)
    source: str = ""
    dropped: list[str] = field(default_factory=list)  # other keys of the file, left out

    def params(self) -> dict[str, Any]:
        return {**super().params(), "fingerprint": self.fingerprint, "source": self.source}

    def preview(self, host: Host) -> list[Diff]:
        import hashlib

        real = host.path(self.path)
        before = None
        if real.is_file():
            data = real.read_bytes()
            keys = keyring_fingerprints(host, real)
            before = (
                f"binary OpenPGP keyring, {len(data)} bytes, sha256 "
                f"{hashlib.sha256(data).hexdigest()[:16]}\n"
                + "".join(f"key {f} {u}\n" for f, u in keys)
            )
        after = (
            f"binary OpenPGP keyring, {len(self.content)} bytes, sha256 "
            f"{hashlib.sha256(self.content).hexdigest()[:16]}\n"
            + f"key {self.fingerprint} {', '.join(self.uids)}\n"
            + f"(downloaded from {self.source}, fingerprint checked, dearmored)\n"
            + "".join(f"(left out, not trusted: key {f}, also in the file)\n" for f in self.dropped)
        )
        if before is not None and real.read_bytes() == self.content:
            after = before
        return [
            Diff(
                self.path,
                before,
                after,
                "file",
                "the key apt trusts for this source only (signed-by)",
            )
        ]
