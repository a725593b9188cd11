"""The headless face: status, plan, apply, rollback, history, attach, confirm, doctor, snippet.

Same steps and actions as the app; this module only parses arguments, asks, and prints.
`--json` prints one JSON document (the shapes are documented in README.md).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import shlex
import sys
import time
from typing import TYPE_CHECKING, Any, NoReturn, Optional, Sequence

from gpuwizard import __version__, glyphs
from gpuwizard import events as ev
from gpuwizard.errors import NeedsRoot, WizardError
from gpuwizard.options import ALL_STEP_NAMES, Options

if TYPE_CHECKING:
    from gpuwizard.journal import Run

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2

COLORS = {
    "done": "32",
    "pending": "33",
    "blocked": "31",
    "failed": "31",
    "skipped": "2",
    "running": "36",
    "rolled-back": "35",
}


def _color(text: str, code: str, stream: Any = None) -> str:
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR") or not getattr(stream, "isatty", lambda: False)():
        return text
    return f"\033[{code}m{text}\033[0m"


# -- arguments --------------------------------------------------------------------------------
def _seconds(text: str) -> float:
    """A number of seconds: finite and not negative (argparse reports anything else)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds (write e.g. 120)"
        ) from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds >= 0 (0 turns it off; write e.g. 120)"
        )
    return value


# The option groups, by the first word of their title, and the subcommands that read them:
# a subcommand's --help lists only the options it uses (history has no --auto-revert).
PLANNING = ("target", "steps", "repository", "docker", "other", "CDI", "GPU")
SUBCOMMAND_GROUPS: dict[str, tuple[str, ...]] = {
    "status": PLANNING,
    "plan": PLANNING,
    "apply": (*PLANNING, "safety"),
    "rollback": ("target", "steps", "docker", "other", "safety"),
    "history": ("target",),
    "attach": ("target",),
    "confirm": ("target",),
    "fleet": ("target",),
    "doctor": ("target", "repository", "docker", "other", "CDI", "GPU"),
    "snippet": ("target", "docker", "CDI", "GPU"),
}


class _Unlisted:
    """An option group a subcommand accepts but does not list in its --help: scripts (the
    Ansible module) pass every shared option to every subcommand, and must keep working."""

    def __init__(self, container: Any) -> None:
        self.container = container

    def add_argument(self, *args: Any, **kw: Any) -> Any:
        return self.container.add_argument(*args, **{**kw, "help": argparse.SUPPRESS})

    def add_mutually_exclusive_group(self, **kw: Any) -> _Unlisted:
        return _Unlisted(self.container.add_mutually_exclusive_group(**kw))


def _common(p: argparse.ArgumentParser, groups: Optional[Sequence[str]] = None) -> None:
    """The shared options, in titled groups; with `groups`, only those are listed in --help
    (the others are still accepted, unlisted)."""

    def group(title: str) -> Any:
        if groups is None or title.split()[0] in groups:
            return p.add_argument_group(title)
        return _Unlisted(p)

    g = group("target")
    g.add_argument(
        "--root",
        default=argparse.SUPPRESS,
        metavar="DIR",
        help="the target system is mounted at DIR (default /)",
    )
    g.add_argument(
        "--state-dir",
        default=argparse.SUPPRESS,
        metavar="DIR",
        help="journal folder (default /var/lib/gpuwizard under the root)",
    )
    g.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON document"
    )
    s = group("steps and answers")
    s.add_argument(
        "--step",
        action="append",
        default=argparse.SUPPRESS,
        choices=ALL_STEP_NAMES,
        help="only this step (repeatable)",
    )
    s.add_argument(
        "--yes",
        "-y",
        action="store_true",
        default=argparse.SUPPRESS,
        help="do not ask; with apply, keep changes once verification passed",
    )
    g.add_argument(
        "--demo",
        action="store_true",
        default=argparse.SUPPRESS,
        help="recorded H200 host; nothing on this machine is changed",
    )
    r = group("repository (mirrors, air-gapped hosts)")
    r.add_argument(
        "--repo-url",
        default=argparse.SUPPRESS,
        metavar="URL",
        help="the toolkit repository (a mirror); default NVIDIA's",
    )
    r.add_argument(
        "--key-url",
        default=argparse.SUPPRESS,
        metavar="URL",
        help="where the repository's signing key is fetched from",
    )
    r.add_argument(
        "--key-fingerprint",
        default=argparse.SUPPRESS,
        metavar="FPR",
        help="the key's expected fingerprint; any other key is refused",
    )
    r.add_argument(
        "--toolkit-version",
        default=argparse.SUPPRESS,
        metavar="VERSION",
        help="install and pin this toolkit version (default the newest)",
    )
    r.add_argument(
        "--experimental",
        action="store_true",
        default=argparse.SUPPRESS,
        help="use the repository's experimental channel",
    )
    r.add_argument(
        "--lock-wait",
        type=_seconds,
        default=argparse.SUPPRESS,
        metavar="SECONDS",
        help="how long to wait for another process holding the dpkg/rpm lock (default 300)",
    )
    r.add_argument(
        "--bundle",
        default=argparse.SUPPRESS,
        metavar="KIT.tar",
        help="air-gapped: use what `gpuwizard bundle` collected (plan, apply, status)",
    )
    r.add_argument(
        "--keep-legacy",
        action="store_true",
        default=argparse.SUPPRESS,
        help="leave old nvidia-docker repositories and packages alone",
    )
    d = group("docker")
    d.add_argument(
        "--docker-host",
        default=argparse.SUPPRESS,
        metavar="URL",
        help="the Docker engine to use (default DOCKER_HOST or the local socket)",
    )
    d.add_argument(
        "--daemon-json",
        default=argparse.SUPPRESS,
        metavar="PATH",
        help="Docker's daemon.json (default /etc/docker/daemon.json)",
    )
    d.add_argument(
        "--set-default-runtime",
        action="store_true",
        default=argparse.SUPPRESS,
        help="make nvidia the default runtime",
    )
    d.add_argument(
        "--enable-cdi",
        action="store_true",
        default=argparse.SUPPRESS,
        help="turn on CDI in daemon.json",
    )
    d.add_argument(
        "--replace-runtime",
        action="store_true",
        default=argparse.SUPPRESS,
        help="replace a different runtime already named nvidia",
    )
    d.add_argument(
        "--restart-method",
        default=argparse.SUPPRESS,
        choices=["systemd", "service", "snap", "openrc", "command"],
        help="how Docker is restarted (default found from the init system)",
    )
    d.add_argument(
        "--docker-restart-command",
        default=argparse.SUPPRESS,
        metavar="CMD",
        help="restart Docker with this command (split like a shell, never run by one)",
    )
    d.add_argument(
        "--docker-wait",
        type=_seconds,
        default=argparse.SUPPRESS,
        metavar="SECONDS",
        help="how long to wait for Docker to come back after a restart",
    )
    e = group("other engines (Podman, containerd)")
    e.add_argument(
        "--podman-image", default=argparse.SUPPRESS, metavar="IMAGE", help="Podman's GPU test image"
    )
    e.add_argument(
        "--containerd",
        action=argparse.BooleanOptionalAction,
        default=argparse.SUPPRESS,
        help="configure containerd's CRI (default: when a CRI client such as kubelet is here)",
    )
    e.add_argument(
        "--containerd-config",
        default=argparse.SUPPRESS,
        metavar="PATH",
        help="containerd's config.toml",
    )
    e.add_argument(
        "--containerd-socket", default=argparse.SUPPRESS, metavar="PATH", help="containerd's socket"
    )
    e.add_argument(
        "--containerd-restart-command",
        default=argparse.SUPPRESS,
        metavar="CMD",
        help="restart containerd with this command (split like a shell, never run by one)",
    )
    e.add_argument(
        "--containerd-wait",
        type=_seconds,
        default=argparse.SUPPRESS,
        metavar="SECONDS",
        help="how long to wait for containerd to come back after a restart",
    )
    c = group("CDI")
    c.add_argument(
        "--cdi-spec",
        default=argparse.SUPPRESS,
        metavar="PATH",
        help="where the cdi step writes the spec (default /etc/cdi/nvidia.yaml)",
    )
    c.add_argument(
        "--cdi-driver-root",
        default=argparse.SUPPRESS,
        metavar="DIR",
        help="the driver's root for nvidia-ctk (default: where nvidia-smi is)",
    )
    c.add_argument(
        "--cdi-regenerate",
        action="store_true",
        default=argparse.SUPPRESS,
        help="regenerate the CDI spec even when it looks healthy",
    )
    c.add_argument(
        "--runtime-mode",
        default=argparse.SUPPRESS,
        choices=["cdi", "auto", "legacy"],
        help='set the NVIDIA runtime\'s mode in config.toml (e.g. "cdi")',
    )
    t = group("GPU test")
    t.add_argument(
        "--test-image", default=argparse.SUPPRESS, metavar="IMAGE", help="the smoke-test image"
    )
    t.add_argument(
        "--cuda-image",
        default=argparse.SUPPRESS,
        metavar="IMAGE",
        help="the CUDA test image (default chosen from the driver's CUDA)",
    )
    t.add_argument(
        "--cuda-repository",
        default=argparse.SUPPRESS,
        metavar="REPO",
        help="where CUDA images come from (a mirror)",
    )
    t.add_argument("--gpus", default=argparse.SUPPRESS, help="all, a count, or device=0,2 / UUIDs")
    t.add_argument(
        "--skip-cuda-test",
        action="store_true",
        default=argparse.SUPPRESS,
        help="run only the smoke test",
    )
    t.add_argument(
        "--framework",
        choices=["tensorflow", "pytorch"],
        default=argparse.SUPPRESS,
        help="also test this framework on the GPU",
    )
    t.add_argument(
        "--framework-image",
        default=argparse.SUPPRESS,
        metavar="IMAGE",
        help="the framework test's image",
    )
    a = group("safety")
    a.add_argument(
        "--auto-revert",
        type=_seconds,
        default=argparse.SUPPRESS,
        metavar="SECONDS",
        help="roll back daemon.json and the restart unless confirmed (default 120)",
    )
    a.add_argument(
        "--no-auto-revert",
        action="store_true",
        default=argparse.SUPPRESS,
        help="keep daemon.json and the restart without asking",
    )
    a.add_argument(
        "--force",
        action="store_true",
        default=argparse.SUPPRESS,
        help="apply even if the host changed since the preview; roll back over local edits",
    )
    u = group("terminal")
    u.add_argument(
        "--no-mouse",
        action="store_true",
        default=argparse.SUPPRESS,
        help="the app ignores the mouse (terminal selection works)",
    )
    u.add_argument(
        "--slow-link",
        action="store_true",
        default=argparse.SUPPRESS,
        help="fewer frames, no animation: for slow SSH links",
    )


def _parent(command: str) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    _common(parent, SUBCOMMAND_GROUPS[command])
    return parent


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    _common(common)
    p = argparse.ArgumentParser(
        prog="gpuwizard",
        parents=[common],
        description="Make Docker containers use this host's NVIDIA GPUs: previewed, "
        "journaled, reversible. Without a command: the interactive wizard.",
    )
    p.add_argument("--version", action="version", version=f"gpuwizard {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser(
        "status", parents=[_parent("status")], help="what is there and what each step needs"
    )
    pl = sub.add_parser(
        "plan", parents=[_parent("plan")], help="preview every change; change nothing"
    )
    pl.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 0 nothing to do, 2 changes pending, 1 error",
    )
    pl.add_argument(
        "--export",
        choices=["sh", "ansible", "cloud-init"],
        help="write the plan as a shell script, an Ansible playbook or cloud-init user data",
    )
    pl.add_argument("-o", "--output", metavar="FILE", help="with --export: write to FILE")
    ap = sub.add_parser("apply", parents=[_parent("apply")], help="apply the plan (asks first)")
    ap.add_argument(
        "--no-detach",
        action="store_true",
        help="run in this process (an SSH drop then stops the work)",
    )
    ap.add_argument(
        "--await-confirm",
        action="store_true",
        help="with --yes: return once the Docker change awaits `gpuwizard confirm`, "
        "its auto-revert armed, instead of keeping it (Ansible's handler and never policies)",
    )
    rb = sub.add_parser("rollback", parents=[_parent("rollback")], help="undo a run's changes")
    rb.add_argument("--run", dest="run_id", metavar="ID", help="this run (default the latest)")
    rb.add_argument("--all", action="store_true", help="every run not yet rolled back")
    rb.add_argument(
        "--no-detach",
        action="store_true",
        help="roll back in this process (an SSH drop then stops it; the next rollback ends it)",
    )
    sub.add_parser("history", parents=[_parent("history")], help="past runs from the journal")
    at = sub.add_parser("attach", parents=[_parent("attach")], help="follow the run in progress")
    at.add_argument("run_id", nargs="?", help="the run (default the one in progress)")
    cf = sub.add_parser(
        "confirm", parents=[_parent("confirm")], help="keep a run's changes (stops the auto-revert)"
    )
    cf.add_argument("run_id", nargs="?", help="the run (default the one waiting)")
    fl = sub.add_parser(
        "fleet",
        parents=[_parent("fleet")],
        help="one table of many hosts from an Ansible run's results",
    )
    fl.add_argument(
        "results",
        metavar="RESULTS",
        help="the file the gpuwizard.gpu.fleet callback wrote (gpuwizard-fleet.json)",
    )
    dr = sub.add_parser(
        "doctor",
        parents=[_parent("doctor")],
        help="check the whole chain, or explain an error message",
    )
    dr.add_argument(
        "--explain",
        nargs="?",
        const="-",
        metavar="TEXT",
        help="classify an error message (TEXT, or stdin)",
    )
    dr.add_argument("--run-test", action="store_true", help="also run a smoke container")
    sn = sub.add_parser(
        "snippet", parents=[_parent("snippet")], help="docker run / Compose for this host"
    )
    sn.add_argument("kind", choices=["compose", "run"], help="a Compose file or docker run lines")
    sn.add_argument(
        "--form",
        choices=["runtime", "deploy", "both"],
        default="both",
        help="Compose: runtime: nvidia, deploy.resources, or both (default)",
    )
    sn.add_argument(
        "--validate",
        action="store_true",
        help="check the Compose file with `docker compose config`",
    )
    from gpuwizard.bundle.cli import add_bundle_parser

    add_bundle_parser(sub)
    wk = sub.add_parser("_worker")  # internal: the detached worker; not listed in --help
    wk.add_argument("--state-dir", dest="worker_state_dir", required=True)
    wk.add_argument("worker_run_id")
    rv = sub.add_parser("_revert")  # internal: what the auto-revert timer runs; not listed
    rv.add_argument(
        "--state-dir", dest="worker_state_dir", required=True, help="the run's state directory"
    )
    rv.add_argument("worker_run_id", help="the run to revert unless it was confirmed")
    # argparse lists a SUPPRESSed sub-command as `_worker  ==SUPPRESS==`: leave it out instead
    sub._choices_actions = [a for a in sub._choices_actions if a.dest != "_worker"]
    return p


def options_from(ns: argparse.Namespace) -> Options:
    o: dict[str, Any] = {}
    simple = [
        "repo_url",
        "key_url",
        "key_fingerprint",
        "toolkit_version",
        "experimental",
        "keep_legacy",
        "lock_wait",
        "docker_host",
        "daemon_json",
        "set_default_runtime",
        "enable_cdi",
        "replace_runtime",
        "restart_method",
        "docker_wait",
        "cdi_spec",
        "cdi_driver_root",
        "cdi_regenerate",
        "runtime_mode",
        "test_image",
        "cuda_image",
        "cuda_repository",
        "gpus",
        "skip_cuda_test",
        "framework",
        "framework_image",
        "podman_image",
        "containerd",
        "containerd_config",
        "containerd_socket",
        "containerd_wait",
        "yes",
        "force",
        "auto_revert",
        "state_dir",
    ]
    for name in simple:
        if hasattr(ns, name):
            o[name] = getattr(ns, name)
    if getattr(ns, "key_fingerprint", None):
        o["key_fingerprint"] = str(ns.key_fingerprint).replace(" ", "").upper()
    if getattr(ns, "docker_restart_command", None):
        try:
            o["restart_command"] = shlex.split(ns.docker_restart_command)
        except ValueError as exc:
            raise WizardError(
                f"Cannot read --docker-restart-command {ns.docker_restart_command!r}: {exc}",
                "Balance the quotes (it is split like a shell line, never run by a shell), "
                "e.g. --docker-restart-command 'systemctl restart docker'.",
            ) from None
        if not o["restart_command"]:
            raise WizardError(
                "--docker-restart-command is empty",
                "Give the command that restarts Docker, e.g. 'systemctl restart docker'.",
            )
        o["restart_method"] = "command"
    if getattr(ns, "containerd_restart_command", None):
        o["containerd_restart_command"] = shlex.split(ns.containerd_restart_command)
    if getattr(ns, "no_auto_revert", False):
        o["auto_revert"] = 0
    if getattr(ns, "step", None):
        o["steps"] = tuple(ns.step)
    from gpuwizard.inputs import check_options

    options = Options(**o)
    check_options(options)
    return options


# -- helpers ----------------------------------------------------------------------------------
def _host(ns: argparse.Namespace) -> Any:
    if getattr(ns, "demo", False):
        from gpuwizard.demo import demo_host

        return demo_host()
    from gpuwizard.host.system import Host
    from gpuwizard.inputs import check_root

    return Host(check_root(getattr(ns, "root", "/")))


def _journal(host: Any, options: Options) -> Any:
    from gpuwizard.journal import Journal
    from gpuwizard.worker import state_dir_for

    return Journal(state_dir_for(host, options))


def _session(ns: argparse.Namespace, options: Options) -> Any:
    """The engine's API for this command (one host and journal per invocation)."""
    cached = getattr(ns, "_session", None)
    if cached is not None and cached.options is options:
        return cached
    from gpuwizard.session import Session

    host = getattr(ns, "_host", None) or _host(ns)
    ns._host = host
    ns._session = Session(host, options, _journal(host, options))
    return ns._session


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _ask(question: str) -> bool:
    if not sys.stdin.isatty():
        raise WizardError(
            "A confirmation is needed but there is no terminal to ask on",
            "Run it in a terminal, or pass --yes after reading the plan.",
        )
    try:
        answer = input(f"{question} [y/N] ").strip().lower()
    except EOFError:
        return False
    return answer in ("y", "yes")


def _require_root(host: Any, what: str) -> None:
    if os.geteuid() != 0 and not getattr(host, "demo", False):
        raise NeedsRoot(
            f"`gpuwizard {what}` changes the system and needs root",
            f"Run it as `sudo gpuwizard {what} …`. `gpuwizard status` and `gpuwizard plan` "
            "work without root.",
        )


def _render_plan(the_plan: Any, host: Any, diffs: bool = True) -> None:
    facts = host.facts
    print(
        f"Host: {facts.pretty_name} · {facts.arch} · kernel {facts.kernel}"
        + (f" · root {host.root}" if not (host.at_slash or host.stand_in_root) else "")
        + (f" · {host.label}" if host.label else "")
    )
    for sp in the_plan.steps:
        mark = _color(glyphs.glyph(sp.state), COLORS.get(sp.state, "0"))
        line = f" {mark} {sp.title:<28} {sp.state}"
        if sp.reason:
            line += f" — {sp.reason}"
        print(line)
        if sp.remedy and sp.state in ("blocked", "failed"):
            print(f"     -> {sp.remedy}")
        if sp.state == "failed" and sp.facts.get("detail"):
            for dl in str(sp.facts["detail"]).splitlines()[-12:]:
                print(f"        {dl}")
        for w in sp.warnings:
            print(f"     ! {w}")
        if sp.state == "pending" and sp.step in the_plan.selected:
            for a in sp.actions:
                print(f"     · {a.describe()}")
            if diffs:
                for d in sp.diffs:
                    if d.changed and d.kind == "file":
                        for dl in d.unified().splitlines():
                            code = (
                                "32"
                                if dl.startswith("+")
                                else "31"
                                if dl.startswith("-")
                                else "36"
                                if dl.startswith("@@")
                                else "0"
                            )
                            print("       " + _color(dl, code))
    for w in the_plan.warnings:
        print(f" ! {w}")
    for u in getattr(host, "unknown", []):
        print(f" ? unknown without root: {u}")


def _print_event(event: ev.Event) -> None:
    if isinstance(event, ev.LogLine):
        prefix = f"[{event.step}] " if event.step else ""
        stream = sys.stderr if event.stream == "err" else sys.stdout
        print(prefix + event.text, file=stream, flush=True)
    elif isinstance(event, ev.StepState):
        if event.state in ("pending", "skipped", "blocked"):
            return  # the plan above already said so; the worker re-plans before it applies
        mark = _color(glyphs.glyph(event.state), COLORS.get(event.state, "0"))
        print(
            f"{mark} {event.step}: {event.state}" + (f" — {event.reason}" if event.reason else ""),
            flush=True,
        )
    elif isinstance(event, ev.Progress):
        if event.fraction is not None:
            print(f"[{event.step}] {event.fraction * 100:5.1f}% {event.label}", flush=True)
        elif event.label:
            print(f"[{event.step}] {event.label}", flush=True)
    elif isinstance(event, ev.RunState):
        print(
            f"== run {event.run_id}: {event.state}"
            + (f" — {event.detail}" if event.detail else ""),
            flush=True,
        )


# -- commands ---------------------------------------------------------------------------------
def cmd_status(ns: argparse.Namespace, options: Options) -> int:
    """What is there and what each step needs, in one probe: the plan and the engines'
    summary ask the same programs (podman, containerd --version) once, not twice."""
    with _session(ns, options).host.probing():
        return _status(ns, options)


def _status(ns: argparse.Namespace, options: Options) -> int:
    session = _session(ns, options)
    host, journal = session.host, session.journal
    the_plan = session.plan()
    _gpu_test_as_passed(the_plan, host, options)
    active = None
    try:
        active = session.active_run()
    except WizardError as exc:
        host.note_unknown(f"the runs: {exc.cause}")
    lock = journal.lock_holder()
    if lock is not None and "unknown" in lock:
        host.note_unknown(f"whether a run holds the lock: {lock['unknown']}")
        lock = None
    if getattr(ns, "json", False):
        _print_json(
            {
                "host": host.facts.to_json(),
                "root": "/" if host.stand_in_root else str(host.root),
                "label": host.label,
                "steps": [
                    {
                        "step": s.step,
                        "title": s.title,
                        "state": s.state,
                        "reason": s.reason,
                        "remedy": s.remedy,
                        "facts": s.facts,
                    }
                    for s in the_plan.steps
                ],
                "engines": _engines_json(host),
                "active_run": active.summary() if active else None,
                "lock": lock,
                "unknown_without_permission": list(host.unknown),
            }
        )
        return EXIT_OK
    _render_plan(the_plan, host, diffs=False)
    from gpuwizard.host.engines import probe_engines

    lines = probe_engines(host).lines()
    if lines:
        print("Engines: " + "; ".join(lines))
    if active:
        print(
            f"\nRun {active.run_id} is {active.status()}: `gpuwizard attach` to follow it, "
            "`gpuwizard rollback` to undo it."
        )
    pending = [s for s in the_plan.steps if s.state == "pending"]
    if pending:
        print(
            f"\n{len(pending)} step(s) to do. Preview with `{_cmd(ns, 'plan')}`, apply with "
            f"`{_cmd(ns, 'apply', root=True)}`."
        )
    return EXIT_OK


def _engines_json(host: Any) -> Any:
    from gpuwizard.host.engines import probe_engines

    found = probe_engines(host)
    return found.to_json() | {"present": found.present(), "lines": found.lines()}


def cmd_plan(ns: argparse.Namespace, options: Options) -> int:
    session = _session(ns, options)
    host = session.host
    the_plan = session.plan()
    if getattr(ns, "output", None) and not getattr(ns, "export", None):
        raise WizardError("-o/--output writes an export", "Add --export sh|ansible|cloud-init.")
    if getattr(ns, "export", None):
        from gpuwizard.export.write import write_export

        return write_export(the_plan, host, options, ns.export, ns.output)
    _gpu_test_as_passed(the_plan, host, options)
    if getattr(ns, "json", False):
        _print_json(the_plan.to_json())
    else:
        _render_plan(the_plan, host)
        print("\n" + _plan_verdict(the_plan, _cmd(ns, "apply", root=True)))
    if getattr(ns, "detailed_exitcode", False):
        if the_plan.blocked():
            return EXIT_ERROR  # a selected step cannot run: for a script, not "nothing to do"
        return EXIT_CHANGES if the_plan.has_changes() else EXIT_OK
    return EXIT_OK


def _gpu_test_as_passed(the_plan: Any, host: Any, options: Options) -> None:
    """A GPU test that passed in the newest kept run reads as done, not pending (as in the
    app): it is a check every plan could run again, not a change still to make."""
    from gpuwizard import gpu_verdict

    try:
        passed = gpu_verdict.last_pass(_journal(host, options))
    except WizardError:
        return
    if passed is not None:
        gpu_verdict.mark_passed(
            the_plan, passed.text(), "`gpuwizard apply --step gpu-test` runs it again"
        )


def _cmd(ns: argparse.Namespace, command: str, root: bool = False) -> str:
    """How to run a gpuwizard command next: in demo mode `gpuwizard --demo …` (a hint to run
    `sudo gpuwizard apply` there would change the real machine), else with sudo if it needs
    root."""
    if getattr(ns, "demo", False):
        return f"gpuwizard --demo {command}"
    return f"sudo gpuwizard {command}" if root else f"gpuwizard {command}"


def _plan_verdict(the_plan: Any, apply_with: str = "sudo gpuwizard apply") -> str:
    """The one line under a plan: what happens next."""
    blocked = the_plan.blocked()
    if blocked:
        first = blocked[0]
        return (
            f"Nothing changed. Blocked at {first.step}: fix that first (its remedy is above); "
            "`gpuwizard doctor` checks the whole chain."
        )
    if the_plan.has_changes():
        return f"Nothing changed. Apply with `{apply_with}`."
    return "Nothing changed, and nothing to do: every selected step is done."


def cmd_apply(ns: argparse.Namespace, options: Options) -> int:
    session = _session(ns, options)
    host = session.host
    _require_root(host, "apply")
    session.journal.ensure_writable()
    session.recover(emit=_print_event)
    as_json = getattr(ns, "json", False)
    active = session.check_can_start()
    if active is not None and not as_json:
        print(
            f"Run {active.run_id} was interrupted with {len(active.pending_undo())} change(s) "
            "in place. Applying again resumes it (steps already done are skipped); "
            f"`gpuwizard rollback --run {active.run_id}` undoes it instead.\n"
        )
    the_plan = session.plan()
    if not as_json:
        _render_plan(the_plan, host)
    blocked = the_plan.blocked()
    if blocked:
        first = blocked[0]
        raise WizardError(
            f"Step {first.step} is {first.state}: {first.reason}",
            first.remedy or "Fix the cause and run gpuwizard again, or choose steps with --step.",
        )
    if not (the_plan.has_changes() or (options.steps and the_plan.has_work())):
        if as_json:
            _print_json({"changed": False, "plan": the_plan.to_json()})
        else:
            print(
                "\nNothing to do: every selected step is already done."
                + (
                    " Run the GPU test again with `gpuwizard apply --step gpu-test`."
                    if the_plan.has_work()
                    else ""
                )
            )
        return EXIT_OK
    if not options.yes and not _ask("\nApply these changes?"):
        print("Nothing was changed.")
        return EXIT_OK
    hold = bool(getattr(ns, "await_confirm", False))
    if hold:
        # the worker must not keep the change on its own: a later `confirm` decides
        options = dataclasses.replace(options, yes=False)
    argv = ["gpuwizard", *sys.argv[1:]]
    detach = not getattr(ns, "no_detach", False)
    run_id = session.start_apply(the_plan.digest, argv, options, detach=detach)
    if detach and not as_json:
        print(
            f"Run {run_id} started in the background; it survives a lost connection. "
            "Ctrl-C stops watching, not the run."
        )
    return _watch(session, run_id, as_json, hold=hold, plan=the_plan.to_json())


def _watch(
    session: Any,
    run_id: str,
    as_json: bool,
    hold: bool = False,
    plan: Optional[dict[str, Any]] = None,
) -> int:
    """Follow a run to its end; with `hold`, only until it awaits confirmation. With --json
    one document: the run, whether it changed something, its error, and the plan applied."""
    final: Optional[ev.RunState] = None
    try:
        for event in session.follow(run_id):
            if not as_json:
                _print_event(event)
            if isinstance(event, ev.RunState):
                final = event
                if event.state == "awaiting-confirmation" and hold:
                    break
                if event.state == "awaiting-confirmation" and not as_json:
                    if sys.stdin.isatty() and _ask("Keep the new Docker settings?"):
                        session.confirm(run_id)
                    elif sys.stdin.isatty():
                        print("Not kept: rolling the Docker settings back now.")
                        session.revert(run_id)
    except KeyboardInterrupt:
        print(f"\nStopped watching. The run goes on: `gpuwizard attach {run_id}`.")
        return EXIT_OK
    run = session.run(run_id)
    if run.meta.get("kind") == "rollback":
        return _rollback_result(session, run_id, final, as_json)
    state = final.state if final else run.status()
    if as_json:
        end = run.ended()
        doc: dict[str, Any] = {
            "run": run.summary(),
            "changed": run.changed_something(),
            "deadline": run.confirmation_deadline(),
            "error": end.data.get("error") if end is not None else None,
        }
        if plan is not None:
            doc["plan"] = plan
        _print_json(doc)
    kept = state == "finished" or (hold and state == "awaiting-confirmation")
    return EXIT_OK if kept else EXIT_ERROR


def _rollback_result(session: Any, run_id: str, final: Optional[ev.RunState], as_json: bool) -> int:
    """How a rollback run ended, as `gpuwizard rollback` has always printed it."""
    report = session.rollback_report(run_id)
    ok = final is not None and final.state == "rolled-back"
    if as_json:
        _print_json({"rolled_back": report, "rollback_run": run_id, "ok": ok})
    elif ok:
        for r in report:
            print(f"Run {r['run']}: rolled back")
            for n in r["undone"]:
                print(f"   ✓ {n}")
    return EXIT_OK if ok else EXIT_ERROR


def cmd_rollback(ns: argparse.Namespace, options: Options) -> int:
    session = _session(ns, options)
    _require_root(session.host, "rollback")
    steps = set(options.steps) if options.steps else None
    as_json = getattr(ns, "json", False)
    if not ns.run_id and not as_json:
        for r in session.runs():
            why = r.damaged()
            if why:
                print(f"! run {r.run_id} is skipped: {why}", file=sys.stderr)
    targets = session.rollback_targets(ns.run_id, all_runs=ns.all, steps=steps)
    if not targets:
        msg = "Nothing to roll back: no run has changes that are not undone yet."
        _print_json({"rolled_back": []}) if as_json else print(msg)
        return EXIT_OK
    if not as_json:
        for t in reversed(targets):
            print(f"Run {t.run_id} ({t.started}): will undo")
            for rec in t.pending_undo(steps):
                print(f"   ↺ [{rec.data.get('step')}] {rec.data.get('describe')}")
    if not options.yes and not _ask("Roll back these changes?"):
        print("Nothing was changed.")
        return EXIT_OK
    session.journal.ensure_writable()
    run_id = session.start_rollback(
        [t.run_id for t in targets],
        ["gpuwizard", *sys.argv[1:]],
        steps=steps,
        force=options.force,
        detach=not getattr(ns, "no_detach", False),
    )
    final: Optional[ev.RunState] = None
    for event in session.follow(run_id):
        if isinstance(event, ev.RunState):
            final = event
            if event.state == "interrupted":
                raise WizardError(
                    f"The rollback (run {run_id}) stopped before it finished",
                    "Run `gpuwizard rollback` again: it takes up where this one stopped "
                    "(what was undone is journaled).",
                )
            if event.state == "failed":
                end = session.run(run_id).ended()
                error = end.data.get("error", {}) if end is not None else {}
                raise WizardError(
                    str(error.get("cause") or event.detail),
                    str(error.get("remedy") or "Read `gpuwizard history` and try again."),
                    str(error.get("detail") or ""),
                )
            continue
        if not as_json:
            _print_event(event)
    return _rollback_result(session, run_id, final, as_json)


def _history_entry(run: Run) -> dict[str, Any]:
    """A run as `history --json` lists it: its summary, its kind ("apply" or "rollback"), and
    for a rollback the runs it undoes (what plain `history` says as "rollback of …")."""
    entry: dict[str, Any] = run.summary() | {"kind": run.kind}
    if run.kind == "rollback":
        entry["targets"] = run.targets
    return entry


def cmd_history(ns: argparse.Namespace, options: Options) -> int:
    session = _session(ns, options)
    host, journal = session.host, session.journal
    try:
        runs = journal.runs()
    except WizardError as exc:
        if os.geteuid() == 0:
            raise
        # a normal user: the journal is root's (0700); unknown, said so, not an error
        if getattr(ns, "json", False):
            _print_json({"runs": None, "unknown_without_permission": [exc.cause]})
        else:
            print(f"{exc.cause}.\n  -> {exc.remedy}")
        return EXIT_OK
    if getattr(ns, "json", False):
        _print_json({"runs": [_history_entry(r) for r in runs]})
        return EXIT_OK
    if not runs:
        where = host.system_path(journal.state_dir) if host.stand_in_root else journal.state_dir
        print(f"No runs yet (journal: {where}).")
        return EXIT_OK
    for r in reversed(runs):
        s = r.summary()
        if r.kind == "rollback":
            status = "rolled back" if s["status"] == "finished" else s["status"]
            print(f"{s['run']}  rollback of {', '.join(r.targets)}: {status}")
            continue
        print(
            f"{s['run']}  {s['status']:<22} {s['changes']:>2} change(s)  "
            f"{', '.join(s['steps']) or '-'}"
        )
        for w in s["warnings"]:
            print(f"     ! {w}")
    return EXIT_OK


def cmd_attach(ns: argparse.Namespace, options: Options) -> int:
    session = _session(ns, options)
    run_id = ns.run_id
    if not run_id:
        chosen = session.active_run() or session.latest_run()
        if chosen is None:
            print("No run to attach to.")
            return EXIT_OK
        run_id = chosen.run_id
    session.run(run_id)  # a run that does not exist is an error, not "interrupted"
    return _watch(session, run_id, getattr(ns, "json", False))


def cmd_confirm(ns: argparse.Namespace, options: Options) -> int:
    session = _session(ns, options)
    run_id = ns.run_id
    if not run_id:
        waiting = session.waiting_run()
        if waiting is None:
            if getattr(ns, "json", False):
                _print_json({"confirmed": None, "run": None})
            else:
                print("No run is waiting for confirmation.")
            return EXIT_OK
        run_id = waiting.run_id
    session.run(run_id)
    session.confirm(run_id)
    if getattr(ns, "json", False):
        _print_json({"confirmed": run_id, "run": session.run(run_id).summary()})
    else:
        print(f"Run {run_id}: confirmed; the changes are kept.")
    return EXIT_OK


def cmd_fleet(ns: argparse.Namespace, options: Options) -> int:
    from gpuwizard import fleet

    view = fleet.load(ns.results)
    if getattr(ns, "json", False):
        _print_json(view.to_json())
    else:
        print(fleet.render(view))
    return EXIT_ERROR if view.failed() else EXIT_OK


def cmd_doctor(ns: argparse.Namespace, options: Options) -> int:
    from gpuwizard import doctor

    if ns.explain is not None:
        text = sys.stdin.read() if ns.explain == "-" else ns.explain
        from gpuwizard.failures import classify

        found = classify(text)
        if getattr(ns, "json", False):
            _print_json(
                {"recognised": found is not None, "failure": found.to_json() if found else None}
            )
        else:
            print(doctor.explain(text))
        return EXIT_OK if found else EXIT_ERROR
    host = _session(ns, options).host
    report = doctor.run_doctor(host, options, run_test=ns.run_test)
    if getattr(ns, "demo", False):
        report = _demo_next_commands(report)
    if getattr(ns, "json", False):
        _print_json(report.to_json())
    else:
        print(doctor.render_report(report))
    return EXIT_OK if report.ok else EXIT_ERROR


def _demo_next_commands(report: Any) -> Any:
    """Doctor's next commands as the demo must give them: `gpuwizard --demo …`, never a
    command that would change the real machine this runs on (`sudo apt-get install …`)."""
    import dataclasses

    def demo(cmd: str) -> str:
        if cmd.startswith(("gpuwizard ", "sudo gpuwizard ")):
            return "gpuwizard --demo " + cmd.split("gpuwizard ", 1)[1]
        if cmd.startswith("sudo "):
            return "gpuwizard --demo plan"  # what the demo does about it
        return cmd

    links = tuple(
        dataclasses.replace(link, next_command=demo(link.next_command)) for link in report.links
    )
    return dataclasses.replace(report, links=links)


def cmd_snippet(ns: argparse.Namespace, options: Options) -> int:
    from gpuwizard import snippets

    host = _session(ns, options).host
    print(snippets.render_for_host(host, options, kind=ns.kind, form=ns.form, validate=ns.validate))
    return EXIT_OK


def cmd_app(ns: argparse.Namespace, options: Options) -> int:
    """Bare `gpuwizard`: the Textual app on a terminal, else status and plan."""
    host = _session(ns, options).host
    if not sys.stdout.isatty() or getattr(ns, "json", False):
        return cmd_plan(ns, options)
    try:
        from gpuwizard.tui.app import run_app
    except ImportError as exc:
        print(f"The interactive app is not available ({exc}); showing the plan.")
        return cmd_plan(ns, options)
    return int(
        run_app(
            host,
            options,
            _session(ns, options).journal,
            mouse=not getattr(ns, "no_mouse", False),
            slow_link=bool(getattr(ns, "slow_link", False)),
        )
    )


def _revert_expired(ns: argparse.Namespace, options: Options) -> None:
    """Any command first rolls back a run whose confirmation deadline passed with its worker
    gone (killed, its unit stopped, a reboot): the unconfirmed change must not stay."""
    if ns.command == "doctor" and getattr(ns, "explain", None) is not None:
        return
    if ns.command == "fleet":
        return  # reads a file from the control node; this machine is not one of its hosts
    try:
        session = _session(ns, options)
        host, journal = session.host, session.journal
        if not journal.runs_dir.is_dir():
            return
        expired = [
            r
            for r in journal.runs()
            if r.status() == "interrupted"
            and (r.confirmation_deadline() or float("inf")) <= time.time()
        ]
        if not expired:
            return
        if os.geteuid() != 0 and not getattr(host, "demo", False):
            print(
                f"Run {expired[0].run_id} was not confirmed before its deadline and must be "
                "rolled back: run any gpuwizard command as root (`sudo gpuwizard status`).",
                file=sys.stderr,
            )
            return
        session.recover(emit=_print_event_to(sys.stderr))
    except PermissionError:
        return  # an unprivileged user cannot read the journal: nothing it could revert
    except (OSError, WizardError) as exc:
        print(f"gpuwizard: could not check for expired runs: {exc}", file=sys.stderr)


def _print_event_to(stream: Any) -> Any:
    def emit(event: ev.Event) -> None:
        with contextlib.redirect_stdout(stream):
            _print_event(event)

    return emit


COMMANDS = {
    None: cmd_app,
    "status": cmd_status,
    "plan": cmd_plan,
    "apply": cmd_apply,
    "rollback": cmd_rollback,
    "history": cmd_history,
    "attach": cmd_attach,
    "confirm": cmd_confirm,
    "fleet": cmd_fleet,
    "doctor": cmd_doctor,
    "snippet": cmd_snippet,
}


def run(argv: Optional[Sequence[str]] = None) -> NoReturn:
    """The console script: `main`, then a quick exit.

    After a command that planned, CPython's teardown (every module and object freed one by
    one, the steps' and actions' included) takes 0.03-0.05 s of the user's wait and changes
    nothing: the process ends anyway. What an exit must do still happens: the output is
    flushed and the atexit handlers run (a bundle's temporary key folder is removed there).
    Where another thread is still alive (the ordinary exit waits for it) or the interpreter
    lacks the hook, it exits the ordinary way."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: --help, a usage error
        code = _exit_status(exc.code)
    _quick_exit(code)


def _exit_status(code: object) -> int:
    """SystemExit's argument as the process's exit status (as the interpreter maps it)."""
    if code is None:
        return EXIT_OK
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _quick_exit(code: int) -> NoReturn:
    import atexit
    import threading

    run_exitfuncs = getattr(atexit, "_run_exitfuncs", None)
    if run_exitfuncs is None or threading.active_count() > 1:
        raise SystemExit(code)
    run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to say
            stream.flush()
    os._exit(code)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The `gpuwizard` command. On the Linux console all it prints to the terminal, --help
    and errors included, goes through the console's character set (glyphs.console_output)."""
    with glyphs.console_output():
        return _main(argv)


def _main(argv: Optional[Sequence[str]]) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    if ns.command == "_worker":
        from gpuwizard.worker import worker_main

        return worker_main(ns.worker_state_dir, ns.worker_run_id)
    if ns.command == "_revert":
        from gpuwizard.worker import revert_main

        return revert_main(ns.worker_state_dir, ns.worker_run_id)
    try:
        if ns.command == "bundle":
            from gpuwizard.bundle.cli import cmd_bundle

            return cmd_bundle(ns)
        options = options_from(ns)
        if getattr(ns, "bundle", None):
            from gpuwizard.bundle.cli import with_bundle

            options = with_bundle(ns, options, _host(ns))
        if getattr(ns, "demo", False):
            from gpuwizard.demo import demo_options

            options = demo_options(options)
        _revert_expired(ns, options)
        code = COMMANDS[ns.command](ns, options)
        sys.stdout.flush()  # a closed pipe shows here, not in "Exception ignored" at exit
        return code
    except WizardError as exc:
        if getattr(ns, "json", False):
            _print_json(exc.to_json())
        else:
            print(_color(f"error: {exc.cause}", "31", sys.stderr), file=sys.stderr)
            print(f"  -> {exc.remedy}", file=sys.stderr)
            if exc.detail:
                print("  " + exc.detail.replace("\n", "\n  "), file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader (`| head`) has gone: nothing more to say, and exit must not flush again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
