"""daemon.json, merged and never clobbered: pure functions on bytes.

Docker's own config is hand-edited by people, so gpuwizard edits it like a careful person
would: it changes only its own keys (`runtimes.nvidia`, and on request `default-runtime` and
`features.cdi`) by splicing text into the file. Every other byte (order, indentation, number
literals, Unicode escapes, CRLF, the trailing newline) stays exactly as it was, so the diff
the user previews shows only our lines, and undo of our keys alone is possible after someone
edited the file (the `daemon-json` merge-back strategy registered below).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from gpuwizard.errors import WizardError

# What `nvidia-ctk runtime configure --runtime=docker` writes, so a later nvidia-ctk run is a no-op.
NVIDIA_RUNTIME = {"args": [], "path": "nvidia-container-runtime"}
RUNTIME_NAME = "nvidia"
# Runtimes dockerd knows without a daemon.json entry (20.10 .. 29).
BUILTIN_RUNTIMES = ("runc", "io.containerd.runc.v2", "io.containerd.runtime.v1.linux")
KNOWN_FEATURES = ("cdi", "containerd-snapshotter", "buildkit", "windows-dns-proxy")
# dockerd flags that set a daemon.json key; a key set both ways stops dockerd from starting.
FLAG_KEYS = {
    "-H": "hosts",
    "--host": "hosts",
    "--data-root": "data-root",
    "-g": "graph",
    "--exec-root": "exec-root",
    "--pidfile": "pidfile",
    "-p": "pidfile",
    "--default-runtime": "default-runtime",
    "--log-driver": "log-driver",
    "--storage-driver": "storage-driver",
    "-s": "storage-driver",
    "--live-restore": "live-restore",
    "--debug": "debug",
    "-D": "debug",
    "--group": "group",
    "-G": "group",
    "--containerd": "containerd",
    "--tls": "tls",
    "--tlsverify": "tlsverify",
    "--bridge": "bridge",
    "-b": "bridge",
    "--iptables": "iptables",
    "--userns-remap": "userns-remap",
    "--cgroup-parent": "cgroup-parent",
    "--log-level": "log-level",
    "-l": "log-level",
    "--exec-opt": "exec-opts",
    "--storage-opt": "storage-opts",
}


class DaemonJsonError(WizardError):
    """daemon.json cannot be merged safely; the file is left untouched.

    `code` is the failures table's row for it; `line` and `column` say where JSON syntax broke.
    """

    code = "daemon-json-invalid"
    line: Optional[int] = None
    column: Optional[int] = None


class SyntaxFailure(DaemonJsonError):
    """Not JSON at all: `line` and `column` say where."""

    def __init__(self, cause: str, remedy: str, detail: str, line: int, column: int) -> None:
        super().__init__(cause, remedy, detail)
        self.line = line
        self.column = column


class UndefinedDefaultRuntime(DaemonJsonError):
    """default-runtime names a runtime nobody defines: dockerd will not start."""

    code = "default-runtime-undefined"


class FlagConflict(DaemonJsonError):
    """A key set both in the file and on dockerd's command line: dockerd will not start."""

    code = "daemon-flag-conflict"


class RuntimeConflict(DaemonJsonError):
    """An `nvidia` runtime with another path is already configured: the user decides."""

    def __init__(self, shown: str, theirs: Any, ours: str) -> None:
        super().__init__(
            f"{shown} already defines the runtime `nvidia` with path {theirs!r}, "
            f"not {ours!r} (what the NVIDIA Container Toolkit installs)",
            "Keep yours (run without the daemon-config step), or let gpuwizard replace it with "
            "--replace-runtime (the old entry is restored on rollback).",
        )
        self.theirs = theirs
        self.ours = ours


class Raw(str):
    """A JSON number kept as the literal the file wrote (1e3 stays 1e3, 10000000000000000001
    keeps its digits)."""


@dataclass
class Member:
    """One `"key": value` inside an object, with where it sits in the text."""

    key: str
    key_start: int
    value_start: int
    value_end: int
    obj: Optional[Obj] = None  # set when the value is itself an object


@dataclass
class Obj:
    start: int  # index of "{"
    end: int  # index after "}"
    members: list[Member] = field(default_factory=list)

    def get(self, key: str) -> Optional[Member]:
        found = [m for m in self.members if m.key == key]
        return found[-1] if found else None


@dataclass(frozen=True)
class Style:
    """How the file is written, so that what we add looks like the rest."""

    newline: str
    unit: str  # one indentation step: "  ", "    ", "\t"
    colon: str  # ": " or ":"


@dataclass
class Document:
    """daemon.json text with the positions of its objects' members."""

    text: str
    root: Obj
    value: dict[str, Any]
    style: Style

    def member(self, *path: str) -> Optional[Member]:
        obj: Optional[Obj] = self.root
        found: Optional[Member] = None
        for key in path:
            if obj is None:
                return None
            found = obj.get(key)
            if found is None:
                return None
            obj = found.obj
        return found

    def get(self, *path: str) -> Any:
        cur: Any = self.value
        for key in path:
            if not isinstance(cur, dict) or key not in cur:
                return None
            cur = cur[key]
        return cur


# -- reading --------------------------------------------------------------------------------


def _raw_decoder() -> json.JSONDecoder:
    return json.JSONDecoder(parse_float=Raw, parse_int=Raw, parse_constant=Raw)


def parse(data: bytes, shown: str = "daemon.json") -> Document:
    """Parse daemon.json bytes; refuse what dockerd, nvidia-ctk or a person would trip on."""
    if data.startswith(b"\xef\xbb\xbf"):
        raise DaemonJsonError(
            f"{shown} starts with a UTF-8 byte-order mark (BOM)",
            f"Remove it (sed -i '1s/^\\xEF\\xBB\\xBF//' {shown}); editors on Windows add it, "
            "and nvidia-ctk and many tools cannot read such a file.",
        )
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DaemonJsonError(
            f"{shown} is UTF-16, not UTF-8", f"Convert it: iconv -f UTF-16 -t UTF-8 {shown}."
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DaemonJsonError(
            f"{shown} is not valid UTF-8 (byte {exc.start})",
            "Save it as UTF-8 text, then run gpuwizard again.",
        ) from exc
    if not text.strip():
        raise DaemonJsonError(
            f"{shown} is empty",
            f"Write {{}} into it (echo '{{}}' > {shown}) or delete it; an empty file is not "
            "JSON, and nvidia-ctk fails on it with `EOF`.",
        )
    dupes: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for k, _ in items:
            if k in seen:
                dupes.append(k)
            seen.add(k)
        return dict(items)

    constants: list[str] = []

    def constant(name: str) -> Raw:
        constants.append(name)
        return Raw(name)

    try:
        value = json.loads(
            text, object_pairs_hook=pairs, parse_float=Raw, parse_int=Raw, parse_constant=constant
        )
    except RecursionError:
        raise DaemonJsonError(
            f"{shown} is nested too deeply to be a Docker configuration",
            f"Look at {shown}: it holds objects or lists inside each other thousands of levels "
            "deep (a generated or damaged file); restore it from a backup.",
        ) from None
    except json.JSONDecodeError as exc:
        raise SyntaxFailure(
            f"{shown} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
            f"Fix line {exc.lineno} of {shown} (a trailing comma or a missing quote is the usual "
            "cause), or check it with `python3 -m json.tool " + shown + "`.",
            _excerpt(text, exc.lineno, exc.colno),
            exc.lineno,
            exc.colno,
        ) from exc
    if not isinstance(value, dict):
        raise DaemonJsonError(
            f"{shown} holds a JSON {type(value).__name__ if value is not None else 'null'}, "
            "not an object",
            "daemon.json must be one JSON object ({ ... }); fix or remove the file.",
        )
    if constants:
        raise DaemonJsonError(
            f"{shown} holds {constants[0]}, which is not JSON",
            f"Replace {constants[0]} with a number or null; dockerd refuses to start on it.",
        )
    try:
        root = _scan_object(text, _skip_ws(text, 0))
    except RecursionError:
        raise DaemonJsonError(
            f"{shown} is nested too deeply to be a Docker configuration",
            f"Look at {shown}: it holds objects inside each other hundreds of levels deep.",
        ) from None
    if dupes:
        key = dupes[0]
        line = _line_of_duplicate(text, root, key)
        raise DaemonJsonError(
            f"{shown} sets the key {key!r} twice" + (f" (again at line {line})" if line else ""),
            "Keep one of them: dockerd silently uses the last, so the file does not mean what "
            "it seems to.",
        )
    runtimes = value.get("runtimes")
    if "runtimes" in value and not isinstance(runtimes, dict):
        raise DaemonJsonError(
            f"In {shown}, `runtimes` is a {type(runtimes).__name__}, not an object",
            'Make it an object, e.g. "runtimes": {}, or remove it.',
        )
    if "features" in value and not isinstance(value.get("features"), dict):
        raise DaemonJsonError(
            f"In {shown}, `features` is not an object",
            'Make it an object, e.g. "features": {}, or remove it.',
        )
    return Document(text, root, value, detect_style(text, root))


def _excerpt(text: str, lineno: int, colno: int) -> str:
    lines = text.splitlines()
    if not 1 <= lineno <= len(lines):
        return ""
    return f"{lineno:4d} | {lines[lineno - 1]}\n     | {' ' * (colno - 1)}^"


def _line_of_duplicate(text: str, obj: Obj, key: str) -> Optional[int]:
    stack = [obj]
    while stack:
        o = stack.pop()
        names = [m.key for m in o.members]
        if names.count(key) > 1:
            second = [m for m in o.members if m.key == key][1]
            return text.count("\n", 0, second.key_start) + 1
        stack.extend(m.obj for m in o.members if m.obj is not None)
    return None


_WS = " \t\r\n"


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def _scan_object(text: str, i: int) -> Obj:
    """Positions of an object's members (the text is known to be valid JSON)."""
    assert text[i] == "{"
    dec = _raw_decoder()
    obj = Obj(start=i, end=-1)
    i = _skip_ws(text, i + 1)
    if text[i] == "}":
        obj.end = i + 1
        return obj
    while True:
        key_start = i
        key, i = dec.raw_decode(text, i)
        i = _skip_ws(text, i)
        assert text[i] == ":"
        i = _skip_ws(text, i + 1)
        value_start = i
        sub = None
        if text[i] == "{":
            sub = _scan_object(text, i)
            i = sub.end
        else:
            _, i = dec.raw_decode(text, i)
        obj.members.append(Member(key, key_start, value_start, i, sub))
        i = _skip_ws(text, i)
        if text[i] == ",":
            i = _skip_ws(text, i + 1)
            continue
        assert text[i] == "}"
        obj.end = i + 1
        return obj


def detect_style(text: str, root: Obj) -> Style:
    """The file's newline, indentation step and colon spacing (nvidia-ctk's 4 spaces if none)."""
    newline = "\r\n" if "\r\n" in text else "\n"
    widths: list[str] = []
    for line in text.splitlines():
        m = re.match(r"^([ \t]+)[\"}\]]", line)
        if m:
            widths.append(m.group(1))
    unit = "    "
    if widths:
        if any(w.startswith("\t") for w in widths):
            unit = "\t"
        else:
            unit = " " * min(len(w) for w in widths)
    colon = ": "
    if root.members:
        m0 = root.members[0]
        between = text[m0.key_start : m0.value_start]
        key_end = len(json.dumps(m0.key, ensure_ascii=False))
        colon = (
            ":"
            if between[key_end:].strip(_WS) == ":"
            and " " not in between[key_end:]
            and "\t" not in between[key_end:]
            else ": "
        )
    return Style(newline, unit, colon)


# -- writing ---------------------------------------------------------------------------------


def dump(value: Any, style: Style, base: str, compact: bool = False) -> str:
    """A value as JSON text in the file's style; nested lines start with `base`."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        if not value:
            return "{}"
        if compact:
            return (
                "{"
                + ", ".join(
                    f"{_key(k)}{style.colon}{dump(v, style, base, True)}" for k, v in value.items()
                )
                + "}"
            )
        inner = base + style.unit
        items = [f"{inner}{_key(k)}{style.colon}{dump(v, style, inner)}" for k, v in value.items()]
        return "{" + style.newline + ("," + style.newline).join(items) + style.newline + base + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        if compact:
            return "[" + ", ".join(dump(v, style, base, True) for v in value) + "]"
        inner = base + style.unit
        items = [inner + dump(v, style, inner) for v in value]
        return "[" + style.newline + ("," + style.newline).join(items) + style.newline + base + "]"
    return json.dumps(value, ensure_ascii=False)


def _key(k: str) -> str:
    return json.dumps(k, ensure_ascii=False)


def _line_indent(text: str, pos: int) -> str:
    start = text.rfind("\n", 0, pos) + 1
    m = re.match(r"[ \t]*", text[start:pos])
    return m.group(0) if m else ""


def _is_compact(text: str, obj: Obj) -> bool:
    return bool(obj.members) and "\n" not in text[obj.start : obj.members[0].key_start]


def set_member(doc: Document, path: tuple[str, ...], value: Any) -> Document:
    """Set a key (creating the objects on the path) by splicing text; returns a new Document."""
    text, style = doc.text, doc.style
    obj = doc.root
    for depth, key in enumerate(path):
        m = obj.get(key)
        last = depth == len(path) - 1
        if m is not None and (last or m.obj is None):
            if not last:  # the path runs through a non-object: replace it wholesale
                value = _nest(path[depth + 1 :], value)
            base = _line_indent(text, m.key_start)
            new = dump(value, style, base, compact=_is_compact(text, obj))
            return reparse(text[: m.value_start] + new + text[m.value_end :], style)
        if m is None:
            return reparse(_insert(text, style, obj, key, _nest(path[depth + 1 :], value)), style)
        assert m.obj is not None
        obj = m.obj
    raise AssertionError("empty path")


def _nest(rest: tuple[str, ...], value: Any) -> Any:
    for key in reversed(rest):
        value = {key: value}
    return value


def _insert(text: str, style: Style, obj: Obj, key: str, value: Any) -> str:
    if obj.members:
        last = obj.members[-1]
        if _is_compact(text, obj):
            piece = f", {_key(key)}{style.colon}{dump(value, style, '', True)}"
        else:
            indent = _line_indent(text, obj.members[0].key_start)
            piece = f",{style.newline}{indent}{_key(key)}{style.colon}{dump(value, style, indent)}"
        return text[: last.value_end] + piece + text[last.value_end :]
    close = _line_indent(text, obj.start)
    indent = close + style.unit
    body = (
        f"{{{style.newline}{indent}{_key(key)}{style.colon}{dump(value, style, indent)}"
        f"{style.newline}{close}}}"
    )
    return text[: obj.start] + body + text[obj.end :]


def remove_member(doc: Document, path: tuple[str, ...]) -> Document:
    """Remove a key and the comma and whitespace that went with it."""
    text = doc.text
    obj = doc.root
    for key in path[:-1]:
        m = obj.get(key)
        if m is None or m.obj is None:
            return doc
        obj = m.obj
    idx = [i for i, m in enumerate(obj.members) if m.key == path[-1]]
    if not idx:
        return doc
    i = idx[-1]
    m = obj.members[i]
    if len(obj.members) == 1:
        new = text[: obj.start] + "{}" + text[obj.end :]
    elif i + 1 < len(obj.members):
        new = text[: m.key_start] + text[obj.members[i + 1].key_start :]
    else:
        new = text[: obj.members[i - 1].value_end] + text[m.value_end :]
    return reparse(new, doc.style)


def reparse(text: str, style: Optional[Style] = None) -> Document:
    doc = parse(text.encode("utf-8"))
    if style is not None:
        doc.style = style
    return doc


# -- checks ----------------------------------------------------------------------------------


def flag_keys(argv: Iterable[str]) -> dict[str, str]:
    """daemon.json keys that dockerd's command line already sets: key -> the flag."""
    out: dict[str, str] = {}
    for arg in argv:
        name = arg.split("=", 1)[0]
        if name in FLAG_KEYS:
            out.setdefault(FLAG_KEYS[name], name)
        elif re.match(r"^-H.+", arg):
            out.setdefault("hosts", "-H")
    return out


def check(
    doc: Document,
    shown: str = "daemon.json",
    flags: Optional[dict[str, str]] = None,
) -> list[DaemonJsonError]:
    """The errors that would stop dockerd from starting, including those `dockerd --validate`
    misses since Docker 25 (runtime checks moved to daemon start)."""
    errors: list[DaemonJsonError] = []
    runtimes = doc.get("runtimes") or {}
    for name, spec in runtimes.items():
        if name == "runc":
            errors.append(
                DaemonJsonError(
                    f"{shown} defines a runtime named `runc`",
                    "The name `runc` is reserved by dockerd; rename it.",
                )
            )
        if not isinstance(spec, dict):
            errors.append(
                DaemonJsonError(
                    f"In {shown}, runtime {name!r} is not an object", 'Write it as {"path": "..."}.'
                )
            )
            continue
        if "path" in spec and "runtimeType" in spec:
            errors.append(
                DaemonJsonError(
                    f"In {shown}, runtime {name!r} sets both `path` and `runtimeType`",
                    "Keep one of them; dockerd refuses to start with both.",
                )
            )
    default = doc.get("default-runtime")
    if default is not None and default not in BUILTIN_RUNTIMES and default not in runtimes:
        errors.append(
            UndefinedDefaultRuntime(
                f"{shown} sets default-runtime {default!r}, but no runtime of that name is defined",
                "Add it under `runtimes`, or remove `default-runtime`; dockerd will not start "
                "like this (and `dockerd --validate` does not notice since Docker 25).",
            )
        )
    for key, flag in sorted((flags or {}).items()):
        if key in doc.value:
            where = "its unit file or command line"
            errors.append(
                FlagConflict(
                    f"{shown} sets `{key}`, which dockerd already gets from {where} ({flag})",
                    f"Remove `{key}` from {shown}, or remove {flag} from dockerd's command line "
                    "(a systemd drop-in); dockerd refuses to start when both set it.",
                )
            )
    return errors


def warnings(doc: Document) -> list[str]:
    out = []
    features = doc.get("features") or {}
    for name in features:
        if name not in KNOWN_FEATURES:
            out.append(f"features.{name} is not a Docker feature dockerd knows; a typo?")
    return out


# -- the merge -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Wanted:
    """What gpuwizard wants in daemon.json."""

    runtime_path: str = NVIDIA_RUNTIME["path"]  # type: ignore[assignment]
    set_default: bool = False
    enable_cdi: bool = False
    replace_runtime: bool = False


@dataclass(frozen=True)
class Merge:
    """The result of a merge: the bytes to write, and what the user should be told."""

    before: Optional[bytes]
    after: bytes
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return self.before != self.after


def equivalent_runtime(spec: Any) -> bool:
    """An `nvidia` runtime that runs the toolkit's runtime under another spelling (the seed
    guide's `/usr/bin/nvidia-container-runtime` with `runtimeArgs`) is as good as ours."""
    if not isinstance(spec, dict):
        return False
    path = str(spec.get("path", ""))
    args = spec.get("runtimeArgs") or spec.get("args") or []
    return path.rsplit("/", 1)[-1] == "nvidia-container-runtime" and not args


def merge(
    before: Optional[bytes],
    want: Wanted,
    shown: str = "daemon.json",
    flags: Optional[dict[str, str]] = None,
) -> Merge:
    """Add our keys to daemon.json (None: the file does not exist). Raises DaemonJsonError
    (RuntimeConflict for a foreign `nvidia` runtime) and leaves deciding to the caller."""
    doc = parse(before if before is not None else b"{}\n", shown)
    # a default-runtime of nvidia with no runtimes.nvidia (a common hand edit) is what the
    # merge repairs; every other error stops it before anything is computed
    errors = [
        e
        for e in check(doc, shown, flags)
        if not (
            doc.get("default-runtime") == RUNTIME_NAME
            and isinstance(e, UndefinedDefaultRuntime)
            and doc.get("runtimes", RUNTIME_NAME) is None
        )
    ]
    if errors:
        raise errors[0]
    notes: list[str] = []
    warns = warnings(doc)
    ours = {"args": [], "path": want.runtime_path}
    current = doc.get("runtimes", RUNTIME_NAME)
    if current is None:
        doc = set_member(doc, ("runtimes", RUNTIME_NAME), ours)
        notes.append(f"add runtimes.nvidia -> {want.runtime_path}")
    elif current == ours:
        notes.append("runtimes.nvidia is already configured")
    elif want.replace_runtime:
        doc = set_member(doc, ("runtimes", RUNTIME_NAME), ours)
        notes.append(f"replace runtimes.nvidia ({json.dumps(current)}) with {json.dumps(ours)}")
    elif equivalent_runtime(current):
        notes.append(f"runtimes.nvidia already runs {current.get('path')}: kept as it is")
    else:
        theirs = current.get("path") if isinstance(current, dict) else current
        raise RuntimeConflict(shown, theirs, want.runtime_path)
    if want.set_default:
        if doc.get("default-runtime") != RUNTIME_NAME:
            doc = set_member(doc, ("default-runtime",), RUNTIME_NAME)
            notes.append("set default-runtime to nvidia")
        warns.append(
            "With default-runtime nvidia, every container runs through the NVIDIA "
            "runtime; if the toolkit is removed later, no container starts until "
            "default-runtime is removed from daemon.json."
        )
    if want.enable_cdi and doc.get("features", "cdi") is not True:
        doc = set_member(doc, ("features", "cdi"), True)
        notes.append("set features.cdi to true (other features kept)")
    after = doc.text.encode("utf-8")
    if before is None:
        notes.insert(0, f"create {shown}")
    errors = check(doc, shown, flags)
    if errors:
        raise errors[0]
    return Merge(before, after, tuple(notes), tuple(warns))


# -- undo of our keys alone ------------------------------------------------------------------

OUR_KEYS: tuple[tuple[str, ...], ...] = (
    ("runtimes", RUNTIME_NAME),
    ("default-runtime",),
    ("features", "cdi"),
)


def _lookup(doc: Optional[Document], path: tuple[str, ...]) -> tuple[bool, Any]:
    if doc is None:
        return False, None
    cur: Any = doc.value
    for key in path:
        if not isinstance(cur, dict) or key not in cur:
            return False, None
        cur = cur[key]
    return True, cur


def unmerge(current: bytes, before: Optional[bytes], after: bytes) -> Optional[bytes]:
    """Undo only gpuwizard's keys in a daemon.json edited since we wrote `after`: each of our
    keys goes back to its value in `before` (or away); everyone else's edits stay."""
    try:
        doc = parse(current)
        was = parse(before) if before is not None else None
        wrote = parse(after)
    except DaemonJsonError:
        return None
    for path in OUR_KEYS:
        had, old = _lookup(was, path)
        put, new = _lookup(wrote, path)
        now, value = _lookup(doc, path)
        if had and put and old == new:
            continue  # we did not change this key
        if not had and not put:
            continue
        if had:
            if not now or value != old:
                doc = set_member(doc, path, old)
        elif now:
            doc = remove_member(doc, path)
            parent = path[:-1]
            parent_had, _ = _lookup(was, parent) if parent else (True, None)
            p_now, p_value = _lookup(doc, parent) if parent else (True, None)
            if parent and not parent_had and p_now and p_value == {}:
                doc = remove_member(doc, parent)
    problems = check(doc)
    if problems:
        from gpuwizard.errors import RollbackConflict

        raise RollbackConflict(
            "Undoing only gpuwizard's keys would leave a daemon.json Docker refuses to start "
            f"on: {problems[0].cause}",
            "Nothing was changed and Docker was not restarted. Fix daemon.json by hand "
            f"({problems[0].remedy.rstrip('.')}) and roll back again, or roll back with "
            "--force to restore the original bytes exactly.",
        )
    return doc.text.encode("utf-8")


def register_merge_back() -> None:
    """Make the `daemon-json` strategy known to WriteFile's rollback."""
    from gpuwizard.actions.files import MERGE_BACK, RESTORE_CHECK

    MERGE_BACK["daemon-json"] = unmerge
    RESTORE_CHECK["daemon-json"] = check_restorable


def check_restorable(data: bytes) -> None:
    """Bytes a rollback is about to put back: refuse those dockerd would not start on (the
    merge repairs a hand-written default-runtime nvidia without its runtime; putting that
    file back would leave Docker down)."""
    from gpuwizard.errors import RollbackConflict

    try:
        problems = check(parse(data))
    except DaemonJsonError as exc:
        problems = [exc]
    if problems:
        raise RollbackConflict(
            "The original daemon.json gpuwizard would restore is one Docker refuses to start "
            f"on: {problems[0].cause}",
            "Nothing was changed and Docker was not restarted. Keep the current file, or roll "
            "back with --force to restore the original bytes exactly.",
        )


register_merge_back()
