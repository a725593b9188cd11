"""gpuwizard.pyz's start: unpack once into a private cache folder, then run gpuwizard from it.

Why not run from inside the zip: the code reads its data files beside its modules, and Python
cannot keep byte-code for a zip, so every start would compile textual again (slower than the
installed package). The folder is named by the payload's digest (PAYLOAD_ID, written by
scripts/build_pyz.py), made under a temporary name and renamed into place when complete, and
used only when it and every folder above it belong to root or to us and nobody else can
write to them; otherwise this run unpacks into a fresh private temporary folder instead.
Standard library only: this runs before anything is importable.
"""

import os
import shutil
import stat
import sys
import tempfile
import zipfile

PAYLOAD_ID = "@PAYLOAD_ID@"
PREFIX = "lib/"
DONE = ".gpuwizard-pyz-complete"


def _trusted(path):
    """Path and every folder above it: owned by root or us, writable by nobody else (a folder
    above may be a sticky one of root's, like /tmp: others cannot rename what is ours in it)."""
    me = os.geteuid()
    path = os.path.abspath(path)
    first = True
    while True:
        try:
            st = os.lstat(path)
        except OSError:
            return False
        if stat.S_ISLNK(st.st_mode) or st.st_uid not in (0, me):
            return False
        sticky = not first and st.st_uid == 0 and st.st_mode & stat.S_ISVTX
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not sticky:
            return False
        first = False
        parent = os.path.dirname(path)
        if parent == path:
            return True
        path = parent


def _cache_base():
    if os.environ.get("GPUWIZARD_PYZ_CACHE"):
        return os.environ["GPUWIZARD_PYZ_CACHE"]
    if os.geteuid() == 0:
        return "/var/cache/gpuwizard/pyz"
    home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(home, "gpuwizard", "pyz")


def _unpack(archive, dest):
    with zipfile.ZipFile(archive) as z:
        for info in z.infolist():
            name = info.filename
            if not name.startswith(PREFIX) or name.endswith("/"):
                continue
            rel = name[len(PREFIX) :]
            if rel.startswith("/") or ".." in rel.split("/"):
                raise SystemExit(f"gpuwizard.pyz: unsafe entry {name!r}; the file is damaged")
            target = os.path.join(dest, rel)
            os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
            with z.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
    # byte-code now, once: Python may be told not to write it (PYTHONDONTWRITEBYTECODE), and
    # every later start should load as fast as an installed package
    import compileall

    compileall.compile_dir(dest, quiet=2)
    with open(os.path.join(dest, DONE), "w") as fh:
        fh.write(PAYLOAD_ID + "\n")


def _complete(folder):
    try:
        with open(os.path.join(folder, DONE)) as fh:
            return fh.read().strip() == PAYLOAD_ID
    except OSError:
        return False


def _cached(archive):
    """The unpacked folder in the cache, made if needed; None where the cache is not safe."""
    base = _cache_base()
    try:
        os.makedirs(base, mode=0o755, exist_ok=True)
    except OSError:
        return None
    if not _trusted(base):
        return None
    folder = os.path.join(base, PAYLOAD_ID)
    if _complete(folder) and _trusted(folder):
        return folder
    tmp = tempfile.mkdtemp(prefix=".unpack-", dir=base)
    try:
        os.chmod(tmp, 0o755)
        _unpack(archive, tmp)
        try:
            os.rename(tmp, folder)
        except OSError:  # another start won the race, or a stale incomplete folder is there
            if not _complete(folder):
                shutil.rmtree(folder, ignore_errors=True)
                os.rename(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder if _complete(folder) and _trusted(folder) else None


def main():
    archive = os.path.abspath(sys.argv[0])
    folder = _cached(archive)
    if folder is None:
        folder = tempfile.mkdtemp(prefix="gpuwizard-pyz-")
        _unpack(archive, folder)
        print(
            f"gpuwizard.pyz: the cache folder {_cache_base()} is not private; unpacked into "
            f"{folder} for this run (remove it afterwards)",
            file=sys.stderr,
        )
    sys.path[:] = [folder] + [p for p in sys.path if os.path.abspath(p or ".") != archive]
    os.environ["GPUWIZARD_PYZ"] = archive
    from gpuwizard.cli import run

    run()


main()
