"""The plan as a standalone Ansible playbook (`gpuwizard plan --export ansible`), builtin modules
only (ansible.builtin.*), so it runs with a bare ansible-core.

The same blocks as the shell script, as tasks: the key is downloaded to a private folder and
its fingerprint read by gpg and asserted before it is copied where apt or rpm trusts it;
daemon.json is read (slurp), checked (valid JSON, no key twice, no foreign `nvidia` runtime),
combined with gpuwizard's keys and written only when its meaning changes (copy with backup and
validate); Docker is restarted by a handler, only when daemon.json or the packages changed.
Written by hand as YAML text (PyYAML is no dependency of gpuwizard): every scalar is a JSON
string, which YAML reads as the same string.
"""

from __future__ import annotations

import json
from typing import Any

from gpuwizard import __version__
from gpuwizard.export.recipe import Block, Recipe, summary_lines

P = "gpuwizard_"  # the prefix of every variable the playbook sets


def s(value: Any) -> str:
    """A YAML scalar: JSON's quoting, which YAML reads back as the same value."""
    return json.dumps(value)


def _comment(text: str, indent: str = "") -> list[str]:
    import textwrap

    return [f"{indent}# {line}".rstrip() for line in textwrap.wrap(text, 92) or [""]]


class Tasks:
    """Task lines at one indentation, one task at a time."""

    def __init__(self, probes_in_check_mode: bool = True) -> None:
        self.lines: list[str] = []
        # a task that changes nothing (changed_when false: it reads, or writes only the private
        # work folder) also runs under --check, so that check mode is a real plan
        self.probes_in_check_mode = probes_in_check_mode

    def comment(self, text: str) -> None:
        self.lines += _comment(text, "    ")

    def add(self, name: str, module: str, args: dict[str, Any], **extra: Any) -> None:
        self.lines.append(f"    - name: {s(name)}")
        self.lines.append(f"      {module}:")
        for key, value in args.items():
            self.lines += _field(key, value, "        ")
        if (
            self.probes_in_check_mode
            and extra.get("changed_when") == "false"
            and "check_mode" not in extra
        ):
            extra["check_mode"] = False
        for key, value in extra.items():
            if key in CONDITIONS and isinstance(value, Raw):
                value = value.text  # a Jinja expression: written as a quoted string
            self.lines += _field(key, value, "      ")

    def meta(self, name: str, action: str) -> None:
        self.lines += [f"    - name: {s(name)}", f"      ansible.builtin.meta: {action}"]


CONDITIONS = ("when", "until", "failed_when", "changed_when")


def _field(key: str, value: Any, indent: str) -> list[str]:
    if isinstance(value, Raw):
        return [f"{indent}{key}: {value.text}"]
    if isinstance(value, list):
        if not value:
            return [f"{indent}{key}: []"]
        out = [f"{indent}{key}:"]
        for item in value:
            if isinstance(item, dict):
                first = True
                for k, v in item.items():
                    lines = _field(k, v, indent + "    ")
                    if first:
                        lines[0] = indent + "  - " + lines[0].lstrip()
                        first = False
                    out += lines
            else:
                out.append(f"{indent}  - {item.text if isinstance(item, Raw) else s(item)}")
        return out
    if isinstance(value, dict):
        out = [f"{indent}{key}:"]
        for k, v in value.items():
            out += _field(k, v, indent + "  ")
        return out
    return [f"{indent}{key}: {s(value)}"]


class Raw:
    """A YAML value written as is (a folded Jinja expression, a bare boolean)."""

    def __init__(self, text: str) -> None:
        self.text = text


def J(expr: str) -> Raw:  # noqa: N802 - reads like the Jinja it writes
    """A Jinja expression as a quoted YAML scalar."""
    return Raw(s("{{ " + expr + " }}"))


TMP = f"{P}tmp.path"


def render(r: Recipe) -> str:
    lines = _header(r)
    lines += [
        "- name: Make Docker containers use the NVIDIA GPUs (exported by gpuwizard)",
        "  hosts: all",
        "  become: true",
        "  gather_facts: false",
        *(["  environment:", f"    DOCKER_HOST: {s(r.docker_host)}"] if r.docker_host else []),
        "  vars:",
        *[f"    {P}{k}: {s(v)}" for k, v in _vars(r).items()],
        "  handlers:",
        *_handlers(r),
        "  tasks:",
    ]
    t = Tasks()
    t.add(
        "a private work folder (removed at the end)",
        "ansible.builtin.tempfile",
        {"state": "directory", "suffix": ".gpuwizard"},
        register=P + "tmp",
        changed_when="false",
    )
    t.add(
        "is Docker's service here (docker.service)?",
        "ansible.builtin.command",
        {"argv": ["systemctl", "cat", "docker.service"]},
        register=P + "docker_unit",
        changed_when="false",
        failed_when="false",
    )
    total = len(r.blocks)
    for n, b in enumerate(r.blocks, 1):
        t.lines.append("")
        t.lines += _block_comment(b, n, total)
        if b.exported:
            STEPS[b.step](r, t)
    t.lines.append("")
    t.add(
        "remove the work folder",
        "ansible.builtin.file",
        {"path": J(TMP), "state": "absent"},
        changed_when="false",
    )
    lines += t.lines
    return "\n".join(lines) + "\n"


def _header(r: Recipe) -> list[str]:
    lines = [
        "---",
        f"# exported by gpuwizard {__version__} (`gpuwizard plan --export ansible`)",
        f"# from the plan on {r.exported_from} (plan digest {r.digest[:16]}),",
        f"# for {r.family} hosts.",
        "#",
    ]
    lines += _comment(
        "Review it, then: ansible-playbook -i INVENTORY gpu-setup.yml (--check --diff shows "
        "what it would change). Builtin modules only. Every task checks first: a second run "
        "reports changed=0. The signing key is trusted only after gpg has read its "
        "fingerprint and it matched; daemon.json is merged with what each host has (its other "
        "keys kept, a backup beside it) and Docker restarted by a handler only when daemon.json "
        "or the packages changed. It needs gpg on the hosts, and python3-apt for the apt module."
    )
    lines.append("#")
    return lines + summary_lines(r, "playbook", _comment)


def _block_comment(b: Block, n: int, total: int) -> list[str]:
    out = [f"    # [{n}/{total}] {b.title} ({b.step}): {b.state} in the plan"]
    if b.reason:
        out += _comment("plan: " + b.reason, "    ")
    for c in b.changes:
        out += _comment("changes there: " + c, "    ")
    if b.note:
        out += _comment(b.note, "    ")
    return out


def _vars(r: Recipe) -> dict[str, Any]:
    return {
        "repo_url": r.repo_url,
        "key_url": r.key_url,
        "key_fingerprint": r.fingerprint,
        "keyring": r.keyring,
        "source": r.repo_path,
        "toolkit_version": r.version or "",
        "packages": list(r.packages),
        "legacy_packages": list(r.legacy_packages),
        "daemon_json": r.daemon_json,
        "set_default_runtime": r.set_default_runtime,
        "enable_cdi": r.enable_cdi,
        "replace_runtime": r.replace_runtime,
        "cdi_spec": r.cdi_path,
        "docker_wait": int(r.docker_wait),
    }


def _handlers(r: Recipe) -> list[str]:
    t = Tasks(probes_in_check_mode=False)
    restart: dict[str, Any] = {"name": "docker", "state": "restarted"}
    if r.restart_command:
        t.add(
            "restart Docker",
            "ansible.builtin.command",
            {"argv": list(r.restart_command)},
            listen="gpuwizard restart docker",
        )
    else:
        t.add(
            "restart Docker",
            "ansible.builtin.service",
            restart,
            listen="gpuwizard restart docker",
            when=Raw(f"{P}docker_unit.rc == 0"),
        )
    waits = {
        "when": "not ansible_check_mode"
        + ("" if r.restart_command else f" and {P}docker_unit.rc == 0")
    }
    t.add(
        "Docker is back and lists the nvidia runtime",
        "ansible.builtin.command",
        {"argv": ["docker", "info", "--format", Raw("!unsafe '{{json .Runtimes}}'")]},
        listen="gpuwizard restart docker",
        register=P + "docker_info",
        until=f"'\"nvidia\"' in {P}docker_info.stdout",
        retries=J(P + "docker_wait"),
        delay=1,
        changed_when="false",
        **waits,
    )
    if not r.restart_command:
        t.add(
            "no Docker service here: it reads daemon.json when it starts",
            "ansible.builtin.debug",
            {"msg": "no docker.service on this host: Docker was not restarted"},
            listen="gpuwizard restart docker",
            when=f"{P}docker_unit.rc != 0",
        )
    return [line[2:] for line in t.lines]


# -- the steps -----------------------------------------------------------------------------


def _driver(r: Recipe, t: Tasks) -> None:
    t.add(
        "driver: nvidia-smi works (a driver is installed outside this playbook)",
        "ansible.builtin.command",
        {"argv": ["nvidia-smi", "-L"]},
        changed_when="false",
    )


def _key(r: Recipe, t: Tasks) -> None:
    """Download, read the fingerprint, assert it, and export that key alone (key.one)."""
    # gpg's home: the private work folder (0700), never a keyring anything trusts
    gpg = ["gpg", "--homedir", J(TMP), "--batch", "--quiet", "--no-autostart"]
    t.add(
        "repository: download the signing key (not trusted yet)",
        "ansible.builtin.get_url",
        {"url": J(P + "key_url"), "dest": J(TMP + " + '/key'"), "mode": "0600", "force": True},
        changed_when="false",
    )
    t.add(
        "repository: gpg reads the key's fingerprint",
        "ansible.builtin.command",
        {
            "argv": [
                *gpg,
                "--with-colons",
                "--import-options",
                "show-only",
                "--import",
                J(TMP + " + '/key'"),
            ]
        },
        register=P + "colons",
        changed_when="false",
    )
    fprs = f"{P}colons.stdout | regex_findall('(?m)^pub:[^\\n]*\\nfpr:{{9}}([0-9A-F]+):')"
    revoked = f"'(?m)^pub:r:[^\\n]*\\nfpr:{{9}}' + {P}key_fingerprint + ':'"
    t.add(
        "repository: the key has the expected fingerprint (else nothing is trusted or written)",
        "ansible.builtin.assert",
        {
            "that": [
                f"{P}key_fingerprint in ({fprs})",
                f"{P}colons.stdout is not search({revoked})",
            ],
            "fail_msg": J(
                f"'the key at ' + {P}key_url + ' has fingerprint ' "
                f"+ (({fprs}) | join(', ') or 'none') + ', but ' + {P}key_fingerprint "
                "+ ' was expected (or it is revoked); nothing was trusted or written. The "
                "download may have been tampered with, or a mirror re-signs with its own key: "
                "if you trust that key, export again with --key-fingerprint.'"
            ),
            "quiet": True,
        },
    )
    t.comment(
        "Only the checked key is written: imported into the throwaway home and exported alone "
        "by its fingerprint (other keys a file may hold are never trusted)."
    )
    t.add(
        "repository: import the checked key into the throwaway home",
        "ansible.builtin.command",
        {"argv": [*gpg, "--import", J(TMP + " + '/key'")]},
        changed_when="false",
    )
    t.add(
        "repository: export it alone"
        + (" (binary: what apt's signed-by wants)" if r.family == "apt" else " (armored)"),
        "ansible.builtin.command",
        {
            "argv": [
                *gpg,
                "--yes",
                *(["--armor"] if r.family != "apt" else []),
                "--output",
                J(TMP + " + '/key.one'"),
                "--export",
                J(P + "key_fingerprint + '!'"),
            ]
        },
        changed_when="false",
    )


def _repository(r: Recipe, t: Tasks) -> None:
    _key(r, t)
    if r.family == "apt":
        t.add(
            "repository: the checked key in its own keyring (only this source names it)",
            "ansible.builtin.copy",
            {
                "src": J(TMP + " + '/key.one'"),
                "dest": J(P + "keyring"),
                "remote_src": True,
                "mode": "0644",
                "owner": "root",
                "group": "root",
            },
            register=P + "keyring_file",
        )
    else:
        t.add(
            "repository: the checked key, armored, where the .repo file's gpgkey points",
            "ansible.builtin.copy",
            {
                "src": J(TMP + " + '/key.one'"),
                "dest": J(P + "keyring"),
                "remote_src": True,
                "mode": "0644",
            },
            register=P + "keyring_file",
        )
        t.add(
            "repository: rpm trusts the checked key (rpm_key checks the fingerprint again)",
            "ansible.builtin.rpm_key",
            {"key": J(P + "keyring"), "fingerprint": J(P + "key_fingerprint"), "state": "present"},
        )
    t.add(
        "repository: the NVIDIA source",
        "ansible.builtin.copy",
        {"content": r.list_content, "dest": J(P + "source"), "mode": "0644"},
        register=P + "source_file",
    )
    registers = [f"{P}keyring_file", f"{P}source_file"]
    for n, lg in enumerate(r.legacy):
        reg = f"{P}legacy_{n}"
        registers.append(reg)
        if lg.remove:
            t.add(
                f"repository: keep a copy of the legacy NVIDIA source {lg.path}",
                "ansible.builtin.copy",
                {
                    "src": lg.path,
                    "dest": f"/var/backups/gpuwizard-export{lg.path}",
                    "remote_src": True,
                    "force": False,
                },
                failed_when="false",
            )
            t.add(
                f"repository: remove the legacy NVIDIA source {lg.path} (apt: Conflicting "
                "values set for option Signed-By)",
                "ansible.builtin.file",
                {"path": lg.path, "state": "absent"},
                register=reg,
            )
        else:
            t.add(
                f"repository: drop the NVIDIA lines from {lg.path}",
                "ansible.builtin.lineinfile",
                {
                    "path": lg.path,
                    "regexp": J("'^' + item | regex_escape + '$'"),
                    "state": "absent",
                    "backup": True,
                },
                loop=list(lg.entries),
                register=reg,
                failed_when="false",
            )
    changed = " or ".join(f"{x} is changed" for x in registers)
    if r.family == "apt":
        # apt names the index files after the URL (any architecture's will do)
        prefix = (
            f"({P}repo_url.rstrip('/') + '/deb/') "
            "| regex_replace('^[A-Za-z][A-Za-z0-9+.-]*://', '') | replace('/', '_')"
        )
        t.add(
            "repository: is this source's package index there?",
            "ansible.builtin.find",
            {"paths": "/var/lib/apt/lists", "patterns": J(f"{prefix} + '*_Packages*'")},
            register=P + "index",
        )
        t.add(
            "repository: does the index need a refresh?",
            "ansible.builtin.set_fact",
            {P + "refresh": J(f"{changed} or {P}index.matched == 0")},
        )
        t.add(
            "repository: refresh the package index of this source only",
            "ansible.builtin.command",
            {
                "argv": [
                    "apt-get",
                    "update",
                    "-q",
                    "-o",
                    J(f"'Dir::Etc::sourcelist=' + {P}source | regex_replace('^/etc/apt/', '')"),
                    "-o",
                    "Dir::Etc::sourceparts=-",
                    "-o",
                    "APT::Get::List-Cleanup=0",
                ]
            },
            register=P + "update",
            when=f"{P}refresh | bool",
            failed_when=Raw(
                f"{P}update.rc != 0 or {P}update.stdout is search('(?m)^(W|E):') "
                f"or {P}update.stderr is search('(?m)^(W|E):')"
            ),
        )
    else:
        refresh = (
            ["zypper", "--non-interactive", "refresh", "nvidia-container-toolkit"]
            if r.family == "zypper"
            else [
                "dnf",
                "-y",
                "--disablerepo=*",
                "--enablerepo=nvidia-container-toolkit",
                "makecache",
            ]
        )
        t.add(
            "repository: does the metadata need a refresh?",
            "ansible.builtin.set_fact",
            {P + "refresh": J(changed)},
        )
        t.add(
            "repository: refresh the metadata of this repository only",
            "ansible.builtin.command",
            {"argv": refresh},
            when=f"{P}refresh | bool",
        )


def _packages(r: Recipe, t: Tasks) -> None:
    if r.family == "apt":
        query = ["apt-cache", "madison", "nvidia-container-toolkit"]
        pick = (
            f"({P}newest.stdout_lines | select('search', {P}repo_url) | first).split('|')[1] | trim"
        )
    elif r.family == "zypper":
        query = [
            "zypper",
            "--non-interactive",
            "--quiet",
            "search",
            "--details",
            "--match-exact",
            "--repo",
            "nvidia-container-toolkit",
            "nvidia-container-toolkit",
        ]
        # zypper lists the newest first: "  | nvidia-container-toolkit | package | 1.18.0-1 | …"
        pick = (
            f"({P}newest.stdout_lines | select('search', ' package ') | first).split('|')[3] | trim"
        )
    else:
        query = [
            "dnf",
            "-q",
            "--disablerepo=*",
            "--enablerepo=nvidia-container-toolkit",
            "repoquery",
            "--latest-limit=1",
            "--qf",
            "%{version}-%{release}",
            "nvidia-container-toolkit",
        ]
        pick = f"{P}newest.stdout_lines | last"
    # under --check on a host whose new source has no index yet, apt/dnf cannot know the
    # packages: said so instead of failing
    unknown = f"(ansible_check_mode and ({P}refresh | default(false) | bool))"
    t.add(
        "packages: check mode before the new source's index is there",
        "ansible.builtin.debug",
        {
            "msg": J(
                "'a real run refreshes the index of ' + "
                f"{P}repo_url + ', then installs ' + ({P}packages | join(', ')) + ' pinned to ' "
                f"+ ({P}toolkit_version or 'the newest it offers')"
            )
        },
        when=unknown,
    )
    if not r.version:
        t.comment(
            "The plan did not know the version (the repository was not configured yet where it "
            "was exported): the newest this repository offers is used. Export with "
            "--toolkit-version to pin every host to the same one."
        )
        t.add(
            "packages: the versions this repository offers",
            "ansible.builtin.command",
            {"argv": query},
            register=P + "newest",
            changed_when="false",
            when=f"not {P}toolkit_version and not {unknown}",
        )
        t.add(
            "packages: pin the newest",
            "ansible.builtin.set_fact",
            {P + "toolkit_version": J(pick)},
            when=f"not {P}toolkit_version and not {unknown}",
        )
    if r.legacy_packages:
        query = (
            ["dpkg-query", "-W", "-f", "${Package} ${db:Status-Abbrev}\n"]
            if r.family == "apt"
            else ["rpm", "-q", "--qf", "%{NAME} ii\n"]
        )
        t.add(
            "packages: which legacy packages are installed?",
            "ansible.builtin.command",
            {"argv": [*query, *r.legacy_packages]},
            register=P + "legacy_installed",
            changed_when="false",
            failed_when="false",
        )
        some = f"{P}legacy_installed.stdout is search(' ii')"
        t.add(
            "packages: keep a copy of daemon.json (old nvidia-docker2 owns it)",
            "ansible.builtin.copy",
            {
                "src": J(P + "daemon_json"),
                "dest": J(f"'/var/backups/gpuwizard-export' + {P}daemon_json"),
                "remote_src": True,
                "force": False,
            },
            failed_when="false",
            when=some,
        )
        module, args = {
            "apt": ("ansible.builtin.apt", {"purge": False}),
            "dnf": ("ansible.builtin.dnf", {}),
            "zypper": ("ansible.builtin.package", {}),
        }[r.family]
        t.add(
            "packages: remove (never purge) the legacy packages",
            module,
            {"name": J(P + "legacy_packages"), "state": "absent", **args},
            notify="gpuwizard restart docker",
            when=some,
        )
    sep = "-" if r.family == "dnf" else "="
    spec_expr = f"{P}packages | map('regex_replace', '$', '{sep}' + {P}toolkit_version) | list"
    specs = J(spec_expr)
    if r.family == "apt":
        t.add(
            "packages: the four toolkit packages pinned to one version",
            "ansible.builtin.apt",
            {
                "name": specs,
                "allow_downgrade": True,
                "dpkg_options": "force-confold,force-confdef",
                "lock_timeout": 300,
            },
            notify="gpuwizard restart docker",
            when=f"not {unknown}",
        )
    elif r.family == "dnf":
        t.add(
            "packages: the four toolkit packages pinned to one version",
            "ansible.builtin.dnf",
            {"name": specs, "allow_downgrade": True, "state": "present"},
            notify="gpuwizard restart docker",
            when=f"not {unknown}",
        )
    else:
        t.add(
            "packages: which of the four are not at the version",
            "ansible.builtin.command",
            {"argv": ["rpm", "-q", "--qf", "%{NAME} %{VERSION}-%{RELEASE}\\n", *r.packages]},
            register=P + "rpmq",
            changed_when="false",
            failed_when="false",
        )
        t.add(
            "packages: the four toolkit packages pinned to one version (zypper)",
            "ansible.builtin.command",
            {
                "argv": J(
                    "['zypper', '--non-interactive', 'install', '--no-recommends', "
                    f"'--oldpackage'] + ({spec_expr})"
                )
            },
            when=f"not {unknown} and ({P}packages | map('regex_replace', '$', ' ' + "
            f"{P}toolkit_version) | difference({P}rpmq.stdout_lines) | length > 0)",
            notify="gpuwizard restart docker",
        )


def _cdi(r: Recipe, t: Tasks) -> None:
    argv: list[Any] = ["nvidia-ctk", "cdi", "generate", J(f"'--output=' + {TMP} + '/cdi.yaml'")]
    if r.cdi_pass_driver_root:
        argv.append(f"--driver-root={r.cdi_driver_root}")
    for f in r.cdi_flags:
        argv += ["--feature-flag", f]
    extra: dict[str, Any] = {"changed_when": Raw("false")}
    if r.cdi_driver_root != "/":
        extra["environment"] = {
            "PATH": r.cdi_driver_root.rstrip("/") + "/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        }
    t.add(
        "cdi: nvidia-ctk writes the spec for this host's driver",
        "ansible.builtin.command",
        {"argv": argv},
        **extra,
    )
    t.add(
        "cdi: the spec in place (only when it differs)",
        "ansible.builtin.copy",
        {
            "src": J(TMP + " + '/cdi.yaml'"),
            "dest": J(P + "cdi_spec"),
            "remote_src": True,
            "mode": "0644",
        },
    )
    if r.runtime_mode:
        cfg = "/etc/nvidia-container-runtime/config.toml"
        t.add(
            "cdi: a copy of the runtime's config.toml",
            "ansible.builtin.copy",
            {"src": cfg, "dest": J(TMP + " + '/config.toml'"), "remote_src": True},
            changed_when="false",
        )
        t.add(
            f"cdi: the runtime's mode = {r.runtime_mode} (nvidia-ctk, on the copy)",
            "ansible.builtin.command",
            {
                "argv": [
                    "nvidia-ctk",
                    "config",
                    J(f"'--config-file=' + {TMP} + '/config.toml'"),
                    "--set",
                    f"nvidia-container-runtime.mode={r.runtime_mode}",
                    "--in-place",
                ]
            },
            changed_when="false",
        )
        t.add(
            "cdi: config.toml in place (only when it differs)",
            "ansible.builtin.copy",
            {"src": J(TMP + " + '/config.toml'"), "dest": cfg, "remote_src": True, "backup": True},
        )


CHECK_PY = (
    "import json, sys\n"
    "def pairs(items):\n"
    "    seen = {}\n"
    "    for k, v in items:\n"
    "        if k in seen:\n"
    "            sys.exit('the key %r appears twice; dockerd refuses such a file' % k)\n"
    "        seen[k] = v\n"
    "    return seen\n"
    "try:\n"
    "    doc = json.load(open(sys.argv[1], encoding='utf-8'), object_pairs_hook=pairs)\n"
    "except FileNotFoundError:\n"
    "    doc = {}\n"
    "except ValueError as exc:\n"
    "    sys.exit('not valid JSON: %s' % exc)\n"
    "if not isinstance(doc, dict) or not isinstance(doc.get('runtimes', {}), dict):\n"
    "    sys.exit('not a JSON object (or its runtimes is not one)')\n"
    "d = doc.get('default-runtime')\n"
    "known = ('nvidia', 'runc', 'io.containerd.runc.v2', 'io.containerd.runtime.v1.linux')\n"
    "if d is not None and d not in known and d not in doc.get('runtimes', {}):\n"
    "    sys.exit('default-runtime %r names no defined runtime' % d)\n"
)


def _jinja(value: dict[str, Any]) -> str:
    """A JSON object as a Jinja literal (true/false/null spelt as Jinja does)."""
    return json.dumps(value).replace("true", "True").replace("false", "False")


def _daemon_config(r: Recipe, t: Tasks) -> None:
    t.comment(
        "daemon.json: read on each host, checked (valid JSON, no key twice, default-runtime "
        "defined), combined with gpuwizard's keys, and written only when its meaning changes "
        "(the other keys kept, a backup beside it, the new file validated before it replaces "
        "the old one). It is re-indented when written (to_nice_json): keys and values are "
        "kept, the layout is not."
    )
    t.add(
        "daemon-config: can daemon.json be merged?",
        "ansible.builtin.command",
        {"argv": ["python3", "-c", CHECK_PY, J(P + "daemon_json")]},
        register=P + "dj_check",
        changed_when="false",
        failed_when="false",
    )
    t.add(
        "daemon-config: daemon.json can be merged (else it is left untouched)",
        "ansible.builtin.assert",
        {
            "that": [f"{P}dj_check.rc == 0"],
            "fail_msg": J(
                f"{P}daemon_json + ' cannot be merged: ' + {P}dj_check.stderr + '; it was left "
                "untouched. Fix it (dockerd would not start with it either), then run again.'"
            ),
            "quiet": True,
        },
    )
    t.add(
        "daemon-config: read daemon.json (absent: an empty one)",
        "ansible.builtin.slurp",
        {"src": J(P + "daemon_json")},
        register=P + "dj_raw",
        failed_when="false",
    )
    ours = {"args": [], "path": "nvidia-container-runtime"}
    before = "(_raw.content | b64decode | from_json) if _raw.content is defined else {}"
    current = f"(({P}dj_before.runtimes | default({{}})).nvidia | default(none))"
    now = "((_before.runtimes | default({})).nvidia | default(none))"
    t.add(
        "daemon-config: what it holds, and with gpuwizard's keys",
        "ansible.builtin.set_fact",
        {
            P + "dj_before": J("_before"),
            P + "dj_after": J(
                "_before | combine("
                f"{{'runtimes': {{'nvidia': _ours}}}} if ({now} is none or "
                f"({P}replace_runtime and {now} != _ours)) else {{}}, "
                f"{{'default-runtime': 'nvidia'}} if {P}set_default_runtime else {{}}, "
                f"{{'features': {{'cdi': true}}}} if {P}enable_cdi else {{}}, "
                "recursive=true)"
            ),
        },
        vars={"_raw": J(P + "dj_raw"), "_before": J(before), "_ours": Raw(s(ours))},
    )
    equivalent = (
        f"({current}.path | default('') | basename) == 'nvidia-container-runtime' and not "
        f"({current}.runtimeArgs | default([]) or {current}.args | default([]))"
    )
    t.add(
        "daemon-config: no runtime of another program is named nvidia (else left untouched)",
        "ansible.builtin.assert",
        {
            "that": [
                f"{current} is none or {current} == {_jinja(ours)} "
                f"or {P}replace_runtime or ({current} is mapping and {equivalent})"
            ],
            "fail_msg": J(
                f"{P}daemon_json + ' already defines the runtime nvidia as ' + "
                f"({current} | to_json) + ', not nvidia-container-runtime; it was left "
                "untouched. Keep yours (export without the daemon-config step), or export "
                "again with --replace-runtime.'"
            ),
            "quiet": True,
        },
    )
    t.add(
        "daemon-config: its folder",
        "ansible.builtin.file",
        {"path": J(f"{P}daemon_json | dirname"), "state": "directory", "mode": "0755"},
        when=f"{P}dj_raw.content is not defined",
    )
    t.add(
        "daemon-config: write daemon.json (only when its meaning changes; backup beside it)",
        "ansible.builtin.copy",
        {
            "content": J(f"{P}dj_after | to_nice_json(indent=4) + '\n'"),
            "dest": J(P + "daemon_json"),
            "backup": True,
            "validate": "python3 -m json.tool %s",
        },
        when=f"{P}dj_after != {P}dj_before or {P}dj_raw.content is not defined",
        notify="gpuwizard restart docker",
    )


def _restart(r: Recipe, t: Tasks) -> None:
    t.comment(
        "Docker is restarted by the handler `restart Docker`, notified only when daemon.json or "
        "the packages changed; where there is no docker.service it says so instead."
    )
    t.meta("restart: run the notified handlers now", "flush_handlers")


def _gpu_test(r: Recipe, t: Tasks) -> None:
    t.add(
        "gpu-test: is Docker running?",
        "ansible.builtin.command",
        {"argv": ["docker", "info"]},
        register=P + "docker_up",
        changed_when="false",
        failed_when="false",
        when="not ansible_check_mode",  # the test containers need what a real run installs
    )
    passes: list[str] = []
    for n, test in enumerate(r.tests):
        t.add(
            f"gpu-test: {test.reason}",
            "ansible.builtin.command",
            {"argv": list(test.argv)},
            register=f"{P}test_{n}",
            changed_when="false",
            failed_when="false",
            when=f"({P}docker_up.rc | default(1)) == 0",
        )
        passes.append(f"{P}test_{n}.rc | default(1) == 0")
        for m, path in enumerate(test.smi_paths):
            t.add(
                f"gpu-test: {test.reason} (nvidia-smi by its path {path})",
                "ansible.builtin.command",
                {"argv": [*test.argv[:-1], path]},
                register=f"{P}test_{n}_{m}",
                changed_when="false",
                failed_when="false",
                when=f"({P}docker_up.rc | default(1)) == 0 and {P}test_{n}.rc != 0",
            )
            passes.append(f"{P}test_{n}_{m}.rc | default(1) == 0")
    passed = " or ".join(passes)
    t.add(
        "gpu-test: a container reached the GPU",
        "ansible.builtin.assert",
        {
            "that": [passed or "false"],
            "fail_msg": "no test container reached the GPU; gpuwizard doctor on that host "
            "explains why",
            "quiet": True,
        },
        when=Raw(f"({P}docker_up.rc | default(1)) == 0"),
    )


STEPS = {
    "driver": _driver,
    "repository": _repository,
    "packages": _packages,
    "cdi": _cdi,
    "daemon-config": _daemon_config,
    "restart": _restart,
    "gpu-test": _gpu_test,
}
