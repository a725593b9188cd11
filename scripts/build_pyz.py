"""Build gpuwizard.pyz: one file that runs as `sudo python3 gpuwizard.pyz` on Python 3.9-3.13.

    python3 scripts/build_pyz.py [--out dist/gpuwizard.pyz] [--wheels DIR]

Inside: gpuwizard from this checkout (the files git tracks) and the pure-Python wheels pinned by
hash in scripts/pyz-requirements.txt, under lib/, and scripts/pyz_main.py as __main__.py.
Wheels come from the folder --wheels (default /var/tmp/gpuwizard-pyz-wheels); the ones missing
there are fetched with `pip download --require-hashes`, and every wheel's SHA-256 is checked
against the pin before it is used. Reproducible: entries sorted, every time stamp 1980-01-01,
fixed permissions, so the same checkout gives the same bytes. A compiled file (.so, .pyd) in a
wheel stops the build: a zipapp must stay pure Python. Prints the file's size and SHA-256 and
writes them beside it (gpuwizard.pyz.sha256, in `sha256sum -c` form).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REQUIREMENTS = REPO / "scripts" / "pyz-requirements.txt"
BOOT = REPO / "scripts" / "pyz_main.py"
EPOCH = (1980, 1, 1, 0, 0, 0)
SHEBANG = b"#!/usr/bin/env python3\n"
COMPILED = (".so", ".pyd", ".dll", ".dylib")


class BuildError(Exception):
    pass


def pins() -> list[tuple[str, str, str]]:
    """(name, version, sha256) for every line of the requirements file."""
    out = []
    for line in REQUIREMENTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        spec, _, digest = line.partition(" --hash=sha256:")
        name, _, version = spec.partition("==")
        if not (name and version and len(digest) == 64):
            raise BuildError(f"{REQUIREMENTS.name}: cannot read {line!r} (want name==ver --hash=)")
        out.append((name, version, digest))
    return out


def _norm(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def _find(wheels: Path, name: str, version: str) -> Path | None:
    for w in sorted(wheels.glob("*.whl")):
        parts = w.name.split("-")
        if _norm(parts[0]) == _norm(name) and parts[1] == version:
            return w
    return None


def fetch_wheels(wheels: Path) -> list[Path]:
    wanted = pins()
    missing = [(n, v, d) for n, v, d in wanted if _find(wheels, n, v) is None]
    if missing:
        wheels.mkdir(parents=True, exist_ok=True)
        lines = "".join(f"{n}=={v} --hash=sha256:{d}\n" for n, v, d in missing)
        req = wheels / f".missing-{os.getpid()}.txt"
        req.write_text(lines)
        try:
            r = subprocess.run(  # noqa: S603
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--no-deps",
                    "--require-hashes",
                    "--only-binary=:all:",
                    "--platform",
                    "any",
                    "--implementation",
                    "py",
                    "--abi",
                    "none",
                    "--python-version",
                    "3.9",
                    "-d",
                    str(wheels),
                    "-r",
                    str(req),
                ],
                capture_output=True,
                text=True,
            )
        finally:
            req.unlink()
        if r.returncode != 0:
            raise BuildError(
                "pip could not fetch the pinned wheels: "
                + (r.stderr.strip().splitlines() or ["(no message)"])[-1]
                + f"\n  -> put them in {wheels} (pip download -r {REQUIREMENTS}) and build again"
            )
    found = []
    for n, v, d in wanted:
        w = _find(wheels, n, v)
        if w is None:
            raise BuildError(f"{n}=={v}: no wheel in {wheels} after pip download")
        got = hashlib.sha256(w.read_bytes()).hexdigest()
        if got != d:
            raise BuildError(f"{w.name}: SHA-256 {got} is not the pinned {d}; delete it, rebuild")
        found.append(w)
    return found


def payload(wheels: list[Path]) -> dict[str, bytes]:
    """Every file that goes under lib/: the wheels' contents, then gpuwizard from git."""
    files: dict[str, bytes] = {}
    for w in wheels:
        with zipfile.ZipFile(w) as z:
            for info in z.infolist():
                if info.is_dir():
                    continue
                name = info.filename
                if name.endswith(COMPILED):
                    raise BuildError(f"{w.name} holds compiled code ({name}): not for a zipapp")
                if "/__pycache__/" in name or name.endswith(".pyc"):
                    continue
                files[name] = z.read(info)
    tracked = subprocess.run(  # noqa: S603
        ["git", "-C", str(REPO), "ls-files", "-z", "gpuwizard"],  # noqa: S607
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    own = sorted(t.decode() for t in tracked if t)
    if not own:
        raise BuildError("git lists no files under gpuwizard/: run this from a git checkout")
    for rel in own:
        path = REPO / rel
        if path.is_file():
            files[rel] = path.read_bytes()
    return files


def payload_id(files: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return h.hexdigest()[:24]


def _entry(name: str, data: bytes, zf: zipfile.ZipFile) -> None:
    info = zipfile.ZipInfo(name, date_time=EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3
    info.external_attr = (0o100644 & 0xFFFF) << 16
    zf.writestr(info, data, compresslevel=9)


def build(out: Path, wheels_dir: Path) -> tuple[Path, str, int]:
    files = payload(fetch_wheels(wheels_dir))
    boot = BOOT.read_text().replace("@PAYLOAD_ID@", payload_id(files)).encode()
    buf = io.BytesIO()
    buf.write(SHEBANG)
    with zipfile.ZipFile(buf, "a") as zf:
        _entry("__main__.py", boot, zf)
        for name in sorted(files):
            _entry("lib/" + name, files[name], zf)
    data = buf.getvalue()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o755)
    os.replace(tmp, out)
    digest = hashlib.sha256(data).hexdigest()
    (out.with_name(out.name + ".sha256")).write_text(f"{digest}  {out.name}\n")
    return out, digest, len(data)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=REPO / "dist" / "gpuwizard.pyz")
    p.add_argument(
        "--wheels",
        type=Path,
        default=Path(os.environ.get("GPUWIZARD_PYZ_WHEELS", "/var/tmp/gpuwizard-pyz-wheels")),
    )
    ns = p.parse_args(argv)
    try:
        out, digest, size = build(ns.out, ns.wheels)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{out}  {size / 1e6:.1f} MB")
    print(f"SHA-256 {digest}")
    print(f"check a copy with: sha256sum -c {out.name}.sha256   (or compare the line above)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
