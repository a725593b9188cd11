"""The daemon.json merge an exported shell script runs on the target host (python3, stdlib).

Why an embedded python3 merge and not `nvidia-ctk runtime configure --runtime=docker`: both keep
the other keys, but nvidia-ctk replaces an `nvidia` runtime someone else defined without a
word, writes no backup, and cannot say whether it changed anything (the script restarts Docker
only when it did). This merge follows gpuwizard's own rules (gpuwizard.daemon_json): the
file is read at run time on that host, duplicate keys and invalid JSON are refused and the file
left untouched, a foreign `nvidia` runtime is refused unless --replace-runtime was exported,
`default-runtime` must name a defined runtime, and the new file is written next to the old one,
checked, and moved over it after a backup. Unlike gpuwizard it re-indents the file (json.dumps,
four spaces, like nvidia-ctk): the keys and values are kept, the layout is not.

Exit status: 0 unchanged, 10 changed, 1 refused (the file is untouched).
"""

from __future__ import annotations

MERGE_PY = r"""
import json, os, shutil, sys, tempfile

path, backup_dir, set_default, enable_cdi, replace = sys.argv[1:6]
OURS = {"args": [], "path": "nvidia-container-runtime"}
BUILTIN = ("runc", "io.containerd.runc.v2", "io.containerd.runtime.v1.linux")


def refuse(cause, remedy):
    sys.stderr.write("gpu-setup: error: %s\n  -> %s\n" % (cause, remedy))
    sys.exit(1)


def pairs(items):
    seen = {}
    for key, value in items:
        if key in seen:
            refuse("%s has the key %r twice; dockerd refuses such a file" % (path, key),
                   "Keep one of them (nothing was changed), then run this again.")
        seen[key] = value
    return seen


real = os.path.realpath(path)
try:
    with open(real, "rb") as fh:
        raw = fh.read()
except FileNotFoundError:
    raw = None
if raw is None:
    doc = {}
else:
    try:
        doc = json.loads(raw.decode("utf-8"), object_pairs_hook=pairs)
    except (UnicodeDecodeError, ValueError) as exc:
        refuse("%s is not valid JSON (%s); it was left untouched" % (path, exc),
               "Fix it (dockerd would not start with it either), then run this again.")
if not isinstance(doc, dict):
    refuse("%s is not a JSON object; it was left untouched" % path,
           "Docker's daemon.json must be an object: { ... }.")
before = json.dumps(doc, sort_keys=True)
runtimes = doc.setdefault("runtimes", {})
if not isinstance(runtimes, dict):
    refuse("in %s, runtimes is not an object" % path, 'Write it as {"name": {"path": ...}}.')
current = runtimes.get("nvidia")


def equivalent(spec):
    if not isinstance(spec, dict):
        return False
    args = spec.get("runtimeArgs") or spec.get("args") or []
    return str(spec.get("path", "")).rsplit("/", 1)[-1] == "nvidia-container-runtime" and not args


notes = []
if current is None:
    runtimes["nvidia"] = dict(OURS)
    notes.append("add runtimes.nvidia -> nvidia-container-runtime")
elif current == OURS or (equivalent(current) and replace != "1"):
    pass
elif replace == "1":
    runtimes["nvidia"] = dict(OURS)
    notes.append("replace runtimes.nvidia (%s)" % json.dumps(current))
else:
    theirs = current.get("path") if isinstance(current, dict) else current
    refuse("%s already defines the runtime nvidia with path %r, not "
           "'nvidia-container-runtime'; it was left untouched" % (path, theirs),
           "Keep yours (export without the daemon-config step), or export again with "
           "--replace-runtime.")
if set_default == "1" and doc.get("default-runtime") != "nvidia":
    doc["default-runtime"] = "nvidia"
    notes.append("set default-runtime to nvidia")
if enable_cdi == "1":
    features = doc.setdefault("features", {})
    if not isinstance(features, dict):
        refuse("in %s, features is not an object" % path, 'Write it as {"cdi": true}.')
    if features.get("cdi") is not True:
        features["cdi"] = True
        notes.append("set features.cdi to true")
default = doc.get("default-runtime")
if default is not None and default not in BUILTIN and default not in runtimes:
    refuse("%s sets default-runtime %r, but no runtime of that name is defined" % (path, default),
           "Add it under runtimes, or remove default-runtime; dockerd would not start.")
if json.dumps(doc, sort_keys=True) == before and raw is not None:
    print("  ok: %s already has the nvidia runtime" % path)
    sys.exit(0)
text = json.dumps(doc, indent=4, ensure_ascii=False) + "\n"
json.loads(text)  # what is written parses
folder = os.path.dirname(real) or "."
os.makedirs(folder, exist_ok=True)
if raw is not None:
    saved = backup_dir + real
    os.makedirs(os.path.dirname(saved), exist_ok=True)
    shutil.copy2(real, saved)
    notes.append("the old file is backed up as %s" % saved)
mode = os.stat(real).st_mode & 0o7777 if raw is not None else 0o644
fd, tmp = tempfile.mkstemp(prefix=".daemon.json.", dir=folder)
with os.fdopen(fd, "w", encoding="utf-8") as fh:
    fh.write(text)
os.chmod(tmp, mode)
os.replace(tmp, real)
print("  changed: %s: %s" % (path, "; ".join(notes or ["created"])))
sys.exit(10)
"""
