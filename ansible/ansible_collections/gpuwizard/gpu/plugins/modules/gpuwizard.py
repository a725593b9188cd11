#!/usr/bin/python
"""gpuwizard.gpu.gpuwizard: run gpuwizard headless on a host and answer in Ansible's terms.

A thin translator. gpuwizard already previews, journals, verifies and rolls back; this module
only runs it with `--json` (`plan --detailed-exitcode` in check mode, `apply --yes`, `confirm`,
`rollback --yes`, then `status`) and maps its one JSON document onto changed / diff / failed
/ msg. Nothing is re-implemented here, so a host managed through Ansible keeps exactly the
guarantees of a host managed by hand: the same plan, the same journal, `gpuwizard rollback`.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: gpuwizard
short_description: Make containers use a host's NVIDIA GPUs with gpuwizard (previewed, journaled, reversible)
description:
  - Runs gpuwizard (the one-file build C(gpuwizard.pyz) or an installed C(gpuwizard)) on the host
    with C(--json) and reports its plan as C(diff), whether it changed something as C(changed),
    and a failure with gpuwizard's cause and remedy in C(msg).
  - In check mode it runs C(gpuwizard plan), which changes nothing on the host.
  - A second run on a converged host reports C(changed=false), since gpuwizard plans every step as done.
version_added: "0.1.0"
author: gpuwizard contributors
options:
  state:
    description:
      - C(applied) converges the host (C(gpuwizard apply)); C(confirmed) keeps a run that awaits
        confirmation (C(gpuwizard confirm)); C(rolled_back) undoes the latest run with changes
        (C(gpuwizard rollback)); C(status) only reports.
    choices: [applied, confirmed, rolled_back, status]
    default: applied
    type: str
  executable:
    description:
      - gpuwizard on the host. A path ending in C(.pyz) is run with the interpreter running this
        module (C(ansible_python_interpreter)); anything else is run as it is.
    default: /usr/local/lib/gpuwizard/gpuwizard.pyz
    type: path
  confirm:
    description:
      - With C(state=applied), what happens to the Docker change (daemon.json, the restart) once
        gpuwizard's verification passed. C(when_verified) keeps it at once. C(never) leaves
        the auto-revert armed and returns C(awaiting_confirmation=true) with the run id and the
        deadline; a later C(state=confirmed) task (a handler) keeps it, else it is rolled back.
    choices: [when_verified, never]
    default: when_verified
    type: str
  run:
    description: The run for C(state=confirmed) or C(state=rolled_back) (default the latest).
    type: str
  steps:
    description: Only these steps (gpuwizard's C(--step)); default every step.
    type: list
    elements: str
  extra_args:
    description: More gpuwizard options, each a separate argument (no shell).
    type: list
    elements: str
    default: []
  root: {description: "gpuwizard's --root", type: path}
  state_dir: {description: "gpuwizard's --state-dir", type: path}
  repo_url: {description: "the toolkit repository (a mirror)", type: str}
  key_url: {description: "where its signing key is fetched from", type: str}
  key_fingerprint: {description: "the key's expected fingerprint; any other key is refused", type: str}
  toolkit_version: {description: "install and pin this toolkit version", type: str}
  experimental: {description: "the repository's experimental channel", type: bool, default: false}
  keep_legacy: {description: "leave old nvidia-docker repositories and packages alone", type: bool, default: false}
  lock_wait: {description: "seconds to wait for the dpkg/rpm lock", type: float}
  docker_host: {description: "the Docker engine", type: str}
  daemon_json: {description: "Docker's daemon.json", type: path}
  set_default_runtime: {description: "make nvidia the default runtime", type: bool, default: false}
  enable_cdi: {description: "turn on CDI in daemon.json", type: bool, default: false}
  replace_runtime: {description: "replace a different runtime named nvidia", type: bool, default: false}
  restart_method: {description: "how Docker is restarted", type: str, choices: [systemd, service, snap, openrc, command]}
  docker_restart_command: {description: "restart Docker with this command (split, never run by a shell)", type: str}
  docker_wait: {description: "seconds to wait for Docker after a restart", type: float}
  cdi_spec: {description: "where the cdi step writes the spec", type: path}
  runtime_mode: {description: "the NVIDIA runtime's mode", type: str, choices: [cdi, auto, legacy]}
  test_image: {description: "the smoke-test image", type: str}
  cuda_image: {description: "the CUDA test image", type: str}
  cuda_repository: {description: "where CUDA images come from", type: str}
  gpus: {description: "all, a count, or device=0,2", type: str}
  skip_cuda_test: {description: "run only the smoke test", type: bool, default: false}
  auto_revert: {description: "seconds before an unconfirmed Docker change is rolled back", type: float}
  force: {description: "apply over a changed host; roll back over local edits", type: bool, default: false}
"""

EXAMPLES = r"""
- name: NVIDIA GPUs for containers, from our mirror
  gpuwizard.gpu.gpuwizard:
    repo_url: https://artifactory.example.com/nvidia/stable
    key_url: https://artifactory.example.com/nvidia/gpgkey
    key_fingerprint: C95B321B61E88C1809C4F759DDCAE044F796ECB0
    toolkit_version: 1.17.8-1
"""

RETURN = r"""
gpuwizard:
  description: >-
    What gpuwizard reported: host (os, gpus, driver, cuda, toolkit), steps (step, state,
    reason after the run), run (the journal's summary of the run, if one was made).
  returned: always
  type: dict
awaiting_confirmation:
  description: The Docker change waits for C(state=confirmed) until C(deadline) (epoch seconds).
  returned: state=applied
  type: bool
cause: {description: "gpuwizard's cause of a failure", returned: failure, type: str}
remedy: {description: "gpuwizard's remedy for it", returned: failure, type: str}
"""

import json
import os
import sys

from ansible.module_utils.basic import AnsibleModule

# module option -> gpuwizard flag (the same names, dashed)
VALUE_OPTIONS = (
    "root",
    "state_dir",
    "repo_url",
    "key_url",
    "key_fingerprint",
    "toolkit_version",
    "lock_wait",
    "docker_host",
    "daemon_json",
    "restart_method",
    "docker_restart_command",
    "docker_wait",
    "cdi_spec",
    "runtime_mode",
    "test_image",
    "cuda_image",
    "cuda_repository",
    "gpus",
    "auto_revert",
)
FLAG_OPTIONS = (
    "experimental",
    "keep_legacy",
    "set_default_runtime",
    "enable_cdi",
    "replace_runtime",
    "skip_cuda_test",
    "force",
)


def _flag(name):
    return "--" + name.replace("_", "-")


def common_args(params):
    """gpuwizard's options from the module's, in a fixed order (argv items, never a shell)."""
    out = []
    for name in VALUE_OPTIONS:
        value = params.get(name)
        if value is None or value == "":
            continue
        if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
            value = int(value)  # 120, not 120.0, in the journal's argv
        out += [_flag(name), str(value)]
    for name in FLAG_OPTIONS:
        if params.get(name):
            out.append(_flag(name))
    for step in params.get("steps") or []:
        out += ["--step", step]
    out += list(params.get("extra_args") or [])
    return out


class Gpuwizard:
    """Runs gpuwizard commands on this host and reads their one JSON document."""

    def __init__(self, module):
        self.module = module
        exe = module.params["executable"]
        if not os.path.exists(exe):
            module.fail_json(
                msg=f"gpuwizard is not at {exe} on this host -> copy it there first (the "
                "gpuwizard.gpu.setup role does, checked by SHA-256) or set executable",
                cause=f"gpuwizard is not at {exe}",
                remedy="Copy gpuwizard.pyz there (the setup role does) or set `executable`.",
            )
        self.argv = [sys.executable, exe] if exe.endswith(".pyz") else [exe]
        self.common = common_args(module.params)
        self.commands = []

    def run(self, *args, ok=(0,)):
        argv = self.argv + list(args) + ["--json"] + self.common
        rc, out, err = self.module.run_command(argv, environ_update={"NO_COLOR": "1"})
        self.commands.append({"argv": argv[1:] if argv[0] == sys.executable else argv, "rc": rc})
        try:
            doc = json.loads(out) if out.strip() else {}
        except ValueError:
            self.fail(
                f"gpuwizard {args[0]} printed no JSON (exit {rc})",
                "Read stdout/stderr below; run the same command on the host to see more.",
                stdout=out,
                stderr=err,
            )
        if isinstance(doc, dict) and "cause" in doc and "remedy" in doc and rc != 0:
            self.fail(doc["cause"], doc["remedy"], detail=doc.get("detail", ""), stderr=err)
        if rc not in ok:
            self.fail(
                f"gpuwizard {args[0]} exited with status {rc}",
                "Read stderr below; `gpuwizard history` on the host shows the run.",
                stdout=out,
                stderr=err,
            )
        return rc, doc

    def fail(self, cause, remedy, detail="", **more):
        msg = f"{cause} -> {remedy}"
        if detail:
            msg += "\n" + detail
        result = dict(msg=msg, cause=cause, remedy=remedy, detail=detail, commands=self.commands)
        result.update(more)
        result.setdefault("gpuwizard", self.summary())
        self.module.fail_json(**result)

    def summary(self):
        """The host as gpuwizard sees it now (for the fleet view); {} where it cannot say."""
        argv = self.argv + ["status", "--json"] + self.common
        rc, out, _ = self.module.run_command(argv, environ_update={"NO_COLOR": "1"})
        try:
            return host_summary(json.loads(out)) if rc == 0 else {}
        except ValueError:
            return {}


def _step(doc, name):
    for s in doc.get("steps") or []:
        if s.get("step") == name:
            return s
    return {}


def host_summary(status):
    """Compact facts from `gpuwizard status --json`: what the fleet view shows."""
    facts = status.get("host") or {}
    driver = _step(status, "driver").get("facts") or {}
    packages = _step(status, "packages").get("facts") or {}
    installed = packages.get("installed") or {}
    return {
        "host": {
            "os": facts.get("pretty_name")
            or " ".join(str(facts.get(k) or "") for k in ("distro_id", "distro_version")).strip(),
            "gpus": [g.get("name", "?") for g in driver.get("gpus") or [] if isinstance(g, dict)],
            "driver": driver.get("driver_version"),
            "cuda": driver.get("cuda_version"),
            "toolkit": installed.get("nvidia-container-toolkit"),
        },
        "steps": [
            {"step": s.get("step"), "state": s.get("state"), "reason": s.get("reason", "")}
            for s in status.get("steps") or []
        ],
        "active_run": status.get("active_run"),
    }


def plan_diff(plan):
    """gpuwizard's own before/after of every change it plans, as Ansible's diff list."""
    out = []
    for s in plan.get("steps") or []:
        if not s.get("selected", True) or s.get("state") != "pending":
            continue
        for d in s.get("diffs") or []:
            if not d.get("changed"):
                continue
            label = d.get("path") if d.get("kind") == "file" else f"{s['step']}: {d.get('path')}"
            if d.get("summary"):
                label += f" ({d['summary']})"
            out.append(
                {
                    "before_header": label if d.get("before") is not None else "(absent)",
                    "after_header": label if d.get("after") is not None else "(removed)",
                    "before": _text(d.get("before")),
                    "after": _text(d.get("after")),
                }
            )
    return out


def _text(value):
    if value is None:
        return ""
    return value if value.endswith("\n") else value + "\n"


def blocked_step(plan):
    for s in plan.get("steps") or []:
        if s.get("selected", True) and s.get("state") in ("blocked", "failed"):
            return s
    return None


def do_check(gw):
    """Check mode: gpuwizard's plan, which changes nothing on the host."""
    rc, plan = gw.run("plan", "--detailed-exitcode", ok=(0, 1, 2))
    if rc == 1:
        s = blocked_step(plan) or {}
        gw.fail(
            f"Step {s.get('step', '?')} is {s.get('state', 'blocked')}: {s.get('reason', '')}",
            s.get("remedy") or "Fix the cause and run the play again.",
        )
    return dict(changed=rc == 2, diff=plan_diff(plan), planned=True)


def do_apply(gw, confirm):
    args = ["apply", "--yes"] + (["--await-confirm"] if confirm == "never" else [])
    rc, doc = gw.run(*args, ok=(0, 1))
    plan = doc.get("plan") or {}
    run = doc.get("run")
    if rc != 0:
        err = doc.get("error") or {}
        gw.fail(
            err.get("cause") or f"run {run and run.get('run')} ended {run and run.get('status')}",
            err.get("remedy") or "`gpuwizard history` and `gpuwizard attach RUN` on the host.",
            detail=err.get("detail", ""),
            diff=plan_diff(plan),
            run=run,
        )
    awaiting = bool(run and run.get("status") == "awaiting-confirmation")
    return dict(
        changed=bool(doc.get("changed")),
        diff=plan_diff(plan),
        run=run,
        awaiting_confirmation=awaiting,
        deadline=doc.get("deadline"),
    )


def do_confirm(gw, run_id):
    if gw.module.check_mode:
        return dict(changed=bool(run_id))
    _, doc = gw.run("confirm", *([run_id] if run_id else []))
    return dict(changed=bool(doc.get("confirmed")), run=doc.get("run"))


def do_rollback(gw, run_id):
    if gw.module.check_mode:
        _, hist = gw.run("history")
        runs = [
            r
            for r in hist.get("runs") or []
            if r.get("pending_undo") and (not run_id or r.get("run") == run_id)
        ]
        return dict(changed=bool(runs), would_undo=runs[-1:] if runs else [])
    _, doc = gw.run("rollback", "--yes", *(["--run", run_id] if run_id else []))
    undone = doc.get("rolled_back") or []
    diff = [
        {
            "before_header": f"run {r.get('run')}",
            "after_header": f"run {r.get('run')} rolled back",
            "before": "".join(f"{n}\n" for n in r.get("undone") or []),
            "after": "",
        }
        for r in undone
    ]
    return dict(changed=bool(undone), rolled_back=undone, diff=diff)


def main():
    spec = dict(
        state=dict(
            type="str", default="applied", choices=["applied", "confirmed", "rolled_back", "status"]
        ),
        executable=dict(type="path", default="/usr/local/lib/gpuwizard/gpuwizard.pyz"),
        confirm=dict(type="str", default="when_verified", choices=["when_verified", "never"]),
        run=dict(type="str"),
        steps=dict(type="list", elements="str"),
        extra_args=dict(type="list", elements="str", default=[]),
        root=dict(type="path"),
        state_dir=dict(type="path"),
        repo_url=dict(type="str"),
        key_url=dict(type="str"),
        key_fingerprint=dict(type="str"),
        toolkit_version=dict(type="str"),
        experimental=dict(type="bool", default=False),
        keep_legacy=dict(type="bool", default=False),
        lock_wait=dict(type="float"),
        docker_host=dict(type="str"),
        daemon_json=dict(type="path"),
        set_default_runtime=dict(type="bool", default=False),
        enable_cdi=dict(type="bool", default=False),
        replace_runtime=dict(type="bool", default=False),
        restart_method=dict(
            type="str", choices=["systemd", "service", "snap", "openrc", "command"]
        ),
        docker_restart_command=dict(type="str"),
        docker_wait=dict(type="float"),
        cdi_spec=dict(type="path"),
        runtime_mode=dict(type="str", choices=["cdi", "auto", "legacy"]),
        test_image=dict(type="str"),
        cuda_image=dict(type="str"),
        cuda_repository=dict(type="str"),
        gpus=dict(type="str"),
        skip_cuda_test=dict(type="bool", default=False),
        auto_revert=dict(type="float"),
        force=dict(type="bool", default=False),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    gw = Gpuwizard(module)
    state = module.params["state"]
    if state == "status":
        result = dict(changed=False)
    elif state == "confirmed":
        result = do_confirm(gw, module.params["run"])
    elif state == "rolled_back":
        result = do_rollback(gw, module.params["run"])
    elif module.check_mode:
        result = do_check(gw)
    else:
        result = do_apply(gw, module.params["confirm"])
    result["gpuwizard"] = dict(gw.summary(), run=result.get("run"), action=state)
    result["commands"] = gw.commands
    module.exit_json(**result)


if __name__ == "__main__":
    main()
