"""What an exported artefact must do, taken from one plan: the neutral model every format renders.

The plan is what `gpuwizard plan` shows on this host with these options. The artefact runs
elsewhere, so it carries the desired state (the key's fingerprint, the source, the pinned
version, the daemon.json keys) and checks at run time whether each piece is already there;
the plan's own states and action lines become comments, so a reviewer sees both: what this
host needed, and what the artefact will check on the next one.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from gpuwizard.errors import WizardError
from gpuwizard.host.sources import (
    APT_LIST,
    KEYRING,
    RPM_KEY,
    YUM_REPO,
    ZYPP_REPO,
    own_list_lines,
    render_repo,
)
from gpuwizard.host.toolkit import LEGACY_PACKAGES, TOOLKIT_PACKAGES
from gpuwizard.options import Options
from gpuwizard.steps.base import BLOCKED, DONE, FAILED, PENDING, SKIPPED, StepPlan

# the steps an artefact can carry; the other engines' steps are named as left out
EXPORTED_STEPS = ("driver", "repository", "packages", "cdi", "daemon-config", "restart", "gpu-test")
# steps whose block decides at run time (is Docker running there?): a --root plan skips them
RUN_TIME_STEPS = ("restart", "gpu-test")
DEFAULT_SMOKE_IMAGE = "ubuntu:24.04"


@dataclass
class Block:
    """One step of the plan as the artefact shows it."""

    step: str
    title: str
    state: str  # the plan's state on the host it was exported from
    reason: str
    changes: list[str]  # the plan's action lines there
    exported: bool  # False: a comment only
    note: str = ""  # what the comment says about it


@dataclass
class Legacy:
    """An old NVIDIA source the plan removes (or drops NVIDIA lines from)."""

    path: str
    remove: bool
    entries: list[str]


@dataclass
class TestRun:
    """One test container, as docker run arguments."""

    argv: list[str]
    reason: str
    # nvidia-smi's absolute paths, tried when the container has it on no PATH (a driver under
    # /usr/local/nvidia, as on the project's H200)
    smi_paths: list[str] = field(default_factory=list)


@dataclass
class Recipe:
    """Everything the generators need; nothing in it is a secret."""

    exported_from: str
    digest: str
    family: str  # apt | dnf | zypper
    blocks: list[Block]
    repo_url: str
    key_url: str
    fingerprint: str
    experimental: bool
    list_content: str  # apt: the source list; rpm: the .repo file
    repo_path: str
    keyring: str  # apt: the dearmored keyring; rpm: the armored key file
    legacy: list[Legacy] = field(default_factory=list)
    packages: tuple[str, ...] = TOOLKIT_PACKAGES
    legacy_packages: tuple[str, ...] = LEGACY_PACKAGES
    version: Optional[str] = None  # None: the newest in the repository, found at run time
    cdi_path: str = "/etc/cdi/nvidia.yaml"
    cdi_driver_root: str = "/"
    cdi_pass_driver_root: bool = False
    cdi_flags: list[str] = field(default_factory=list)
    runtime_mode: Optional[str] = None
    daemon_json: str = "/etc/docker/daemon.json"
    set_default_runtime: bool = False
    enable_cdi: bool = False
    replace_runtime: bool = False
    restart_command: Optional[list[str]] = None
    docker_host: Optional[str] = None
    docker_wait: float = 60.0
    tests: list[TestRun] = field(default_factory=list)
    nvidia_smi: list[str] = field(default_factory=list)  # where the driver step found it
    unsupported: list[str] = field(default_factory=list)  # plan lines the artefact leaves out
    notes: list[str] = field(default_factory=list)  # for the reader: credentials left out, …

    def exports(self, step: str) -> bool:
        return any(b.step == step and b.exported for b in self.blocks)

    def block(self, step: str) -> Optional[Block]:
        return next((b for b in self.blocks if b.step == step), None)

    @property
    def rpm_short_id(self) -> str:
        return self.fingerprint[-8:].lower()


def summary_lines(recipe: Recipe, artefact: str, comment: Callable[[str], list[str]]) -> list[str]:
    """The artefact's header summary of the plan's steps, the same in every format: each step
    with its state in the plan and whether the artefact carries it, then the notes and what
    the artefact leaves out. `artefact` names it ("script", "playbook"); `comment` is the
    format's own wrapping of a text into "# " lines."""
    lines = ["# The steps (state in the plan it was exported from):"]
    for b in recipe.blocks:
        mark = "exported" if b.exported else "comment only"
        lines.append(f"#   {b.step:<14} {b.state:<8} {mark}")
    for note in recipe.notes:
        lines += comment("Note: " + note)
    for note in recipe.unsupported:
        lines += comment(f"Not in this {artefact} (run gpuwizard on that host for it): " + note)
    return lines


def without_credentials(url: str) -> tuple[str, bool]:
    """A URL with any user:password@ taken out (a mirror's login is a secret)."""
    parts = urllib.parse.urlsplit(url)
    if not (parts.username or parts.password):
        return url, False
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)), True


def refuse_blocked(the_plan: Any) -> None:
    """An artefact of a plan that cannot run would be a lie: say what blocks it and how out."""
    blocked = the_plan.blocked()
    if not blocked:
        return
    first: StepPlan = blocked[0]
    runnable = [
        s.step
        for s in the_plan.steps
        if s.step in EXPORTED_STEPS and s.state not in (BLOCKED, FAILED) and s.step != "driver"
    ]
    steps = " ".join(f"--step {s}" for s in runnable[:5]) or (
        "--step repository --step packages --step daemon-config --step restart"
    )
    raise WizardError(
        f"Nothing exported: the plan is {first.state} at {first.step}: {first.reason}",
        (first.remedy + " " if first.remedy else "")
        + "Export again once it is fixed, or export only the steps that can run here, "
        f"e.g. `gpuwizard plan --export sh {steps}`.",
    )


def build(the_plan: Any, host: Any, options: Options) -> Recipe:
    """The recipe for this plan; raises WizardError where the plan cannot be exported."""
    if options.bundle:
        raise WizardError(
            "Nothing exported: a plan on an air-gapped bundle (--bundle) installs from a folder "
            "on this machine, which the artefact's hosts do not have",
            "Export with the mirror your hosts reach (--repo-url, --key-url), or copy the bundle "
            "to each host and run `gpuwizard apply --bundle` there.",
        )
    refuse_blocked(the_plan)
    manager = host.facts.package_manager
    family = {"yum": "dnf"}.get(manager, manager)
    selected_repo = any(
        s.step in ("repository", "packages") and s.step in the_plan.selected for s in the_plan.steps
    )
    if family not in ("apt", "dnf", "zypper"):
        if selected_repo:
            raise WizardError(
                "Nothing exported: this host has no apt, dnf, yum or zypper",
                "Export on a host of the family you will run it on, or leave the repository "
                "and packages steps out (--step daemon-config --step restart).",
            )
        family = "apt"
    repo_url, r1 = without_credentials(options.repo_url)
    key_url, r2 = without_credentials(options.key_url)
    notes: list[str] = []
    if r1 or r2:
        notes.append(
            "a user name/password in --repo-url/--key-url was left out: give the mirror's "
            "login to that host's package manager (apt: /etc/apt/auth.conf.d/, dnf/zypper: "
            "the .repo file's username/password)"
        )
    for name, url in (("--repo-url", repo_url), ("--key-url", key_url)):
        if url.startswith("file://"):
            notes.append(
                f"{name} is a file on this machine ({url}): the same path must exist on the "
                "host that runs this, or export with a URL it reaches"
            )
    recipe = Recipe(
        exported_from=host.facts.pretty_name or "this host",
        digest=the_plan.digest,
        family=family,
        blocks=[],
        repo_url=repo_url,
        key_url=key_url,
        fingerprint="".join(options.key_fingerprint.split()).upper(),
        experimental=options.experimental,
        list_content="",
        repo_path="",
        keyring="",
        notes=notes,
    )
    _repository(recipe, options)
    recipe.version = options.toolkit_version and _full_version(options.toolkit_version)
    if not options.keep_legacy:
        recipe.legacy_packages = LEGACY_PACKAGES
    else:
        recipe.legacy_packages = ()
    recipe.set_default_runtime = options.set_default_runtime
    recipe.enable_cdi = options.enable_cdi
    recipe.replace_runtime = options.replace_runtime
    recipe.restart_command = options.restart_command
    recipe.docker_host = options.docker_host
    recipe.docker_wait = options.docker_wait
    recipe.runtime_mode = options.runtime_mode
    if options.daemon_json:
        recipe.daemon_json = options.daemon_json
    if options.cdi_spec:
        recipe.cdi_path = options.cdi_spec
    for sp in the_plan.steps:
        recipe.blocks.append(_block(recipe, sp, sp.step in the_plan.selected))
    if recipe.exports("gpu-test") and not recipe.tests:
        recipe.tests = default_tests(options)
    return recipe


def _full_version(version: str) -> str:
    return version if "-" in version else f"{version}-1"


def _repository(recipe: Recipe, options: Options) -> None:
    if recipe.family == "apt":
        recipe.keyring = KEYRING
        recipe.repo_path = APT_LIST
        recipe.list_content = own_list_lines(recipe.repo_url, KEYRING, options.experimental)
        return
    from gpuwizard.steps.repository import rpm_repo_sections

    zypper = recipe.family == "zypper"
    recipe.keyring = RPM_KEY
    recipe.repo_path = ZYPP_REPO if zypper else YUM_REPO
    shown = Options(**{**options.__dict__, "repo_url": recipe.repo_url})
    recipe.list_content = render_repo(rpm_repo_sections(shown, zypper))


def _block(recipe: Recipe, sp: StepPlan, selected: bool) -> Block:
    changes = [a.describe() for a in sp.actions] if sp.state == PENDING else []
    block = Block(sp.step, sp.title, sp.state, sp.reason, changes, exported=False)
    if not selected:
        block.note = "not selected (--step): not exported"
        return block
    if sp.step not in EXPORTED_STEPS:
        block.note = (
            "not exported: the artefact configures Docker only; run gpuwizard on that host "
            f"for {sp.title}"
        )
        recipe.unsupported.append(f"{sp.step}: {'; '.join(changes) or sp.reason}")
        return block
    if sp.state == SKIPPED and sp.step not in RUN_TIME_STEPS:
        block.note = f"skipped in the plan ({sp.reason}): not exported"
        return block
    block.exported = True
    if sp.state == DONE:
        block.note = (
            f"already done on {recipe.exported_from} ({sp.reason}); exported anyway: the block "
            "checks and changes nothing where it is in place"
        )
    elif sp.state == SKIPPED:
        block.note = (
            f"skipped in the plan ({sp.reason}); the block decides at run time on the host "
            "it runs on"
        )
    _facts(recipe, sp)
    return block


def _facts(recipe: Recipe, sp: StepPlan) -> None:
    """Take from a step's plan what only the probe knew (legacy files, CDI flags, tests)."""
    if sp.step == "driver":
        from gpuwizard.actions.containers import DRIVER_ROOT_BINS

        found = sp.facts.get("nvidia_smi")
        recipe.nvidia_smi = [str(found)] if found else []
        recipe.nvidia_smi += [p for p in DRIVER_ROOT_BINS if p not in recipe.nvidia_smi]
    elif sp.step == "repository":
        for lg in sp.facts.get("legacy", []):
            if not lg["remove"] and str(lg["path"]).endswith(".sources"):
                # dropping one deb822 stanza from a file that keeps others: not line-based
                recipe.unsupported.append(f"repository: drop the NVIDIA stanza from {lg['path']}")
                continue
            recipe.legacy.append(Legacy(lg["path"], bool(lg["remove"]), list(lg["entries"])))
        for a in sp.actions:
            path = getattr(a, "path", "")
            if path == "/etc/apt/trusted.gpg":
                recipe.unsupported.append(f"repository: {a.describe()}")
    elif sp.step == "packages":
        version = sp.facts.get("version")
        if not recipe.version and version and not str(version).startswith("newest"):
            recipe.version = str(version)
    elif sp.step == "cdi":
        recipe.cdi_driver_root = str(sp.facts.get("driver_root") or "/")
        recipe.cdi_flags = list(sp.facts.get("feature_flags") or [])
        for a in sp.actions:
            if a.kind == "cdi-spec":
                recipe.cdi_path = a.path  # type: ignore[attr-defined]
                recipe.cdi_pass_driver_root = bool(getattr(a, "pass_driver_root", False))
    elif sp.step == "daemon-config":
        if sp.facts.get("path"):
            recipe.daemon_json = str(sp.facts["path"])
    elif sp.step == "gpu-test":
        recipe.tests = [_test_run(a) for a in sp.actions if a.kind == "run-container"]


def _test_run(action: Any) -> TestRun:
    from gpuwizard.actions.containers import cli_args

    args = ["docker", "run", "--rm"]
    args += [
        a.strip('"') for a in cli_args(action.gpus, action.runtime, action.cdi_devices, action.env)
    ]
    smi = list(action.nvidia_smi_paths) if action.command[:1] == ["nvidia-smi"] else []
    smi = [p for p in smi[:1] if p != "/usr/bin/nvidia-smi"]
    return TestRun([*args, action.image, *action.command], action.describe(), smi)


def default_tests(options: Options) -> list[TestRun]:
    """The smoke test where the plan had none to give (a --root plan skips the GPU test)."""
    image = options.test_image or DEFAULT_SMOKE_IMAGE
    gpus = options.gpus or "all"
    return [
        TestRun(
            ["docker", "run", "--rm", "--gpus", gpus, image, "nvidia-smi"],
            f"smoke test: --gpus {gpus}",
        )
    ]
